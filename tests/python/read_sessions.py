"""Reads what Herald delivered to session-enabled and duplicate-detecting Service Bus queues
with the official azure-servicebus client, as a subscriber would.

Input (JSON file): {"connection_string", "sessions": [{"queue", "session_id", "expect":
[message ids in order]}], "queues": [{"queue", "expect": [message ids]}]}. A session receiver
must get exactly its session's messages in that order; a plain receiver exactly those ids,
each once. Prints `OK <what>` per check.
"""
import json
import sys

from azure.servicebus import ServiceBusClient

doc = json.load(open(sys.argv[1]))
WAIT = doc.get("wait", 10)


def read(receiver, expected):
    got = []
    while len(got) < expected:
        batch = receiver.receive_messages(max_message_count=expected - len(got), max_wait_time=WAIT)
        if not batch:
            break
        for m in batch:
            got.append(m)
            receiver.complete_message(m)
    # A moment more, so extras (a duplicate) are seen too.
    for m in receiver.receive_messages(max_message_count=10, max_wait_time=2):
        got.append(m)
        receiver.complete_message(m)
    return got


with ServiceBusClient.from_connection_string(doc["connection_string"]) as client:
    for s in doc.get("sessions", []):
        with client.get_queue_receiver(s["queue"], session_id=s["session_id"], max_wait_time=WAIT) as r:
            got = read(r, len(s["expect"]))
            ids = [m.message_id for m in got]
            assert ids == s["expect"], f"session {s['session_id']}: got {ids}, expected {s['expect']}"
            assert all(m.session_id == s["session_id"] for m in got), [m.session_id for m in got]
        print(f"OK session {s['session_id']}: {len(got)} messages in order", flush=True)
    for q in doc.get("queues", []):
        with client.get_queue_receiver(q["queue"], max_wait_time=WAIT) as r:
            got = read(r, len(q["expect"]))
            ids = [m.message_id for m in got]
            assert sorted(ids) == sorted(q["expect"]), f"queue {q['queue']}: got {ids}, expected {q['expect']}"
        print(f"OK queue {q['queue']}: {len(got)} messages, each once", flush=True)
