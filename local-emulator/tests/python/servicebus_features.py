"""Service Bus deferral, duplicate detection and SQL rule actions with the official
azure-servicebus client.

Reads EMULATOR_CONNECTION_STRING; the entities come from tests/config/features.json. Prints one
`OK <step>` per step that passed and exits non-zero on the first failure.
"""
import os

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusMessageState
from azure.servicebus.exceptions import MessageNotFoundError
from steps import ok, run

CONN = os.environ["EMULATOR_CONNECTION_STRING"]
WAIT = 5



def text(v):
    return v.decode() if isinstance(v, bytes) else v


def props(m):
    return {text(k): text(v) for k, v in (m.application_properties or {}).items()}


def main():
    no_retry = ServiceBusClient.from_connection_string(CONN, retry_total=0)
    with no_retry, ServiceBusClient.from_connection_string(CONN) as client:
        with client.get_queue_sender("deferrals") as s:
            s.send_messages([ServiceBusMessage(f"d{i}") for i in range(3)])
        with client.get_queue_receiver("deferrals", max_wait_time=WAIT) as r:
            first = r.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            assert str(first) == "d0", str(first)
            seq = first.sequence_number
            r.defer_message(first)
            nxt = r.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            assert str(nxt) == "d1", f"the deferred message left the queue's order: {nxt}"
            r.complete_message(nxt)
            peeked = {p.sequence_number: p for p in r.peek_messages(max_message_count=10, sequence_number=seq)}
            assert peeked[seq].state == ServiceBusMessageState.DEFERRED, peeked[seq].state
            ok("defer takes a message out of the queue's order")

            deferred = r.receive_deferred_messages([seq])
            assert [str(d) for d in deferred] == ["d0"], deferred
            assert deferred[0].lock_token is not None and deferred[0].locked_until_utc is not None
            r.abandon_message(deferred[0])
            again = r.receive_deferred_messages([seq])
            assert [str(d) for d in again] == ["d0"], "an abandoned deferred message stays deferred"
            assert again[0].delivery_count > deferred[0].delivery_count
            r.complete_message(again[0])
            try:
                no_retry.get_queue_receiver("deferrals").__enter__().receive_deferred_messages([seq])
                raise AssertionError("a completed deferred message was received again")
            except MessageNotFoundError:
                pass
            last = r.receive_messages(max_message_count=1, max_wait_time=WAIT)
            assert [str(m) for m in last] == ["d2"], last
            r.complete_message(last[0])
            ok("receive deferred by sequence number, abandon, complete")

        with client.get_queue_sender("dedup") as s:
            for _ in range(3):
                s.send_messages(ServiceBusMessage("once", message_id="order-42"))
            s.send_messages(ServiceBusMessage("other", message_id="order-43"))
        with client.get_queue_receiver("dedup", max_wait_time=WAIT) as r:
            got = []
            while True:
                batch = r.receive_messages(max_message_count=10, max_wait_time=2)
                if not batch:
                    break
                for m in batch:
                    got.append(str(m))
                    r.complete_message(m)
            assert got == ["once", "other"], got
        ok("duplicate detection keeps one message per id")

        with client.get_topic_sender("orders") as s:
            s.send_messages(ServiceBusMessage("big", subject="order", application_properties={"Total": 150, "Internal": "x"}))
            s.send_messages(ServiceBusMessage("small", subject="order", application_properties={"Total": 5}))
        with client.get_subscription_receiver("orders", "relabel", max_wait_time=WAIT) as r:
            got = r.receive_messages(max_message_count=5, max_wait_time=WAIT)
            assert [str(m) for m in got] == ["big"], [str(m) for m in got]
            m = got[0]
            assert m.subject == "priority", m.subject
            p = props(m)
            assert p.get("Tier") == "gold", p
            assert p.get("RuleName") == "mark-priority", p
            assert "Internal" not in p, p
            assert p.get("Total") == 150, p
            r.complete_message(m)
        ok("rule action sets and removes properties")


if __name__ == "__main__":
    run(main)
