"""Reads what Herald delivered to Service Bus and Event Hubs with the official Azure SDKs
(`azure-servicebus`, `azure-eventhub`), as a subscriber would, and checks every message
against what Herald says it sent: message id (the delivery id), subject, content type,
correlation id, CloudEvents application properties, promoted parameters and body. It also
checks that nothing else arrived (so a filtered subscription really blocked what it should).

Input (JSON file): {"connection_string", "wait", "queues": [{"path", "expect": [...]}],
"subscriptions": [{"topic", "subscription", "expect": [...]}], "hubs": [{"name", "expect"}]}
where each expected message is {"message_id", "event_id", "type", "source", "correlation_id",
"dataschema", "properties": {...}, "data": {...}, "partition_key"?}.
"""
import json
import sys
import threading
import time

from azure.eventhub import EventHubConsumerClient
from azure.servicebus import ServiceBusClient

doc = json.load(open(sys.argv[1]))
CONN = doc["connection_string"]
WAIT = doc.get("wait", 10)


def text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else v


def norm(d):
    return {text(k): text(v) for k, v in (d or {}).items()}


def check(where, got, expected):
    """got: list of dicts with message_id, subject, content_type, correlation_id, props, body."""
    want = {e["message_id"]: e for e in expected}
    ids = [g["message_id"] for g in got]
    assert sorted(ids) == sorted(want), f"{where}: got message ids {ids}, expected {sorted(want)}"
    for g in got:
        e = want[g["message_id"]]
        assert g["subject"] == e["type"], (where, g["subject"], e["type"])
        assert g["content_type"] == "application/json", (where, g["content_type"])
        assert g["correlation_id"] == e["correlation_id"], (where, g["correlation_id"])
        p = g["props"]
        assert p.get("cloudEvents:specversion") == "1.0", (where, p)
        assert p.get("cloudEvents:id") == e["event_id"], (where, p)
        assert p.get("cloudEvents:type") == e["type"], (where, p)
        assert p.get("cloudEvents:source") == e["source"], (where, p)
        assert p.get("cloudEvents:dataschema") == e["dataschema"], (where, p)
        assert "cloudEvents:time" in p, (where, p)
        for k, v in e["properties"].items():
            assert p.get(k) == v, f"{where}: application property {k} = {p.get(k)!r}, expected {v!r}"
        assert json.loads(g["body"]) == e["data"], (where, g["body"])
        if "partition_key" in e:
            assert g.get("partition_key") == e["partition_key"], (where, g.get("partition_key"))
    print(f"OK {where}: {len(got)} messages", flush=True)


def receive_all(receiver, count):
    got = []
    # Keep reading for a moment after the expected count, so extras are seen too.
    while True:
        batch = receiver.receive_messages(max_message_count=50, max_wait_time=WAIT if len(got) < count else 2)
        if not batch:
            return got
        for m in batch:
            got.append({
                "message_id": text(m.message_id),
                "subject": text(m.subject),
                "content_type": text(m.content_type),
                "correlation_id": text(m.correlation_id),
                "props": norm(m.application_properties),
                "body": b"".join(m.body).decode(),
            })
            receiver.complete_message(m)


with ServiceBusClient.from_connection_string(CONN) as client:
    for q in doc.get("queues", []):
        with client.get_queue_receiver(q["path"], max_wait_time=WAIT) as r:
            check(f"queue {q['path']}", receive_all(r, len(q["expect"])), q["expect"])
    for s in doc.get("subscriptions", []):
        with client.get_subscription_receiver(s["topic"], s["subscription"], max_wait_time=WAIT) as r:
            check(f"subscription {s['topic']}/{s['subscription']}", receive_all(r, len(s["expect"])), s["expect"])

for h in doc.get("hubs", []):
    got = []
    lock = threading.Lock()
    done = threading.Event()
    want = len(h["expect"])

    def on_event(ctx, event):
        if event is None:
            return
        raw = event.raw_amqp_message
        with lock:
            got.append({
                "message_id": text(event.message_id),
                "subject": text(raw.properties.subject),
                "content_type": text(event.content_type),
                "correlation_id": text(event.correlation_id),
                "props": norm(event.properties),
                "body": event.body_as_str(),
                "partition_key": text(event.partition_key),
            })
            if len(got) >= want:
                done.set()

    consumer = EventHubConsumerClient.from_connection_string(CONN, consumer_group="$Default", eventhub_name=h["name"])
    t = threading.Thread(target=consumer.receive, kwargs=dict(on_event=on_event, starting_position="-1", max_wait_time=1), daemon=True)
    t.start()
    done.wait(WAIT * 3)
    # A moment more for extras.
    time.sleep(2)
    consumer.close()
    t.join(10)
    check(f"event hub {h['name']}", got, h["expect"])
