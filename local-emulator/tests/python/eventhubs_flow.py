"""Event Hubs interop: the official azure-eventhub client against the emulator.

Reads EMULATOR_CONNECTION_STRING and EMULATOR_HUB; prints `OK <step>` per passed step and
exits non-zero on the first failure.
"""
import os
import threading
import uuid

from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from steps import ok, run

CONN = os.environ["EMULATOR_CONNECTION_STRING"]
HUB = os.environ.get("EMULATOR_HUB", "eh1")



def receive(consumer, partition, starting, want, timeout=15):
    got = []
    done = threading.Event()

    def on_event(ctx, event):
        if event is None:
            return
        got.append(event)
        if len(got) >= want:
            done.set()

    t = threading.Thread(
        target=consumer.receive,
        kwargs=dict(on_event=on_event, partition_id=partition, starting_position=starting, max_wait_time=1),
        daemon=True,
    )
    t.start()
    done.wait(timeout)
    consumer.close()
    t.join(10)
    return got


def main():
    run = str(uuid.uuid4())
    producer = EventHubProducerClient.from_connection_string(CONN, eventhub_name=HUB)
    with producer:
        props = producer.get_eventhub_properties()
        assert props["eventhub_name"] == HUB, props
        assert list(props["partition_ids"]) == ["0", "1"], props
        ok("hub properties")

        batch = producer.create_batch(partition_key="pk-" + run)
        for i in range(5):
            batch.add(EventData(f"{run}:{i}"))
        producer.send_batch(batch)
        ok("send batch with a partition key")

        pid = None
        for p in ("0", "1"):
            info = producer.get_partition_properties(p)
            assert info["eventhub_name"] == HUB and info["id"] == p, info
            if not info["is_empty"]:
                pid = p
        assert pid is not None
        info = producer.get_partition_properties(pid)
        assert info["last_enqueued_sequence_number"] >= 4, info
        ok("partition properties")

        batch = producer.create_batch(partition_id="0")
        for i in range(3):
            ev = EventData(f"p0:{run}:{i}")
            ev.properties = {"k": i}
            batch.add(ev)
        producer.send_batch(batch)
        last = producer.get_partition_properties("0")["last_enqueued_sequence_number"]

    consumer = EventHubConsumerClient.from_connection_string(CONN, consumer_group="$Default", eventhub_name=HUB)
    events = receive(consumer, "0", "-1", last + 1)
    bodies = [e.body_as_str() for e in events]
    assert [b for b in bodies if b.startswith("p0:" + run)] == [f"p0:{run}:{i}" for i in range(3)], bodies
    assert events[0].sequence_number == 0, events[0].sequence_number
    assert all(e.offset is not None and e.enqueued_time is not None for e in events)
    ok("receive from the earliest position")

    consumer = EventHubConsumerClient.from_connection_string(CONN, consumer_group="$Default", eventhub_name=HUB)
    events = receive(consumer, "0", last - 1, 1)
    assert [e.sequence_number for e in events] == [last], [e.sequence_number for e in events]
    assert events[0].body_as_str() == f"p0:{run}:2"
    assert events[0].properties[b"k"] == 2, events[0].properties
    ok("receive from a sequence number")

    consumer = EventHubConsumerClient.from_connection_string(CONN, consumer_group="$Default", eventhub_name=HUB)
    keyed = receive(consumer, pid, "-1", 5)
    def text(k):
        return k.decode() if isinstance(k, bytes) else k

    mine = [e for e in keyed if e.body_as_str().startswith(run)]
    assert mine and all(text(e.partition_key) == "pk-" + run for e in mine), [e.partition_key for e in keyed]
    ok("partition key delivered")


if __name__ == "__main__":
    run(main)
