"""Service Bus sessions with the official azure-servicebus client: two sessions interleaved and
received per session in order, the next available session, session state, lock renewal, an
exclusive lock, lock expiry, and the refusals Service Bus gives.

Reads EMULATOR_CONNECTION_STRING; the entities come from tests/config/features.json. Prints one
`OK <step>` per step that passed and exits non-zero on the first failure.
"""
import os
import time

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)
from steps import ok, run

CONN = os.environ["EMULATOR_CONNECTION_STRING"]
QUEUE = "sessions"
WAIT = 5



def receive_all(receiver, expected):
    got = []
    while len(got) < expected:
        batch = receiver.receive_messages(max_message_count=expected - len(got), max_wait_time=WAIT)
        assert batch, f"only {len(got)} of {expected} arrived: {[str(m) for m in got]}"
        for m in batch:
            got.append(m)
    return got


def main():
    # Refusals are retried by the SDK's policy as they would be against Service Bus; a client
    # without retries sees them at once.
    no_retry = ServiceBusClient.from_connection_string(CONN, retry_total=0)
    with no_retry, ServiceBusClient.from_connection_string(CONN) as client:
        with client.get_queue_sender(QUEUE) as sender:
            for i in range(3):
                for s in ("cart-a", "cart-b"):
                    sender.send_messages(ServiceBusMessage(f"{s}-{i}", session_id=s))
        ok("send to two sessions interleaved")

        with client.get_queue_receiver(QUEUE, session_id="cart-b", max_wait_time=WAIT) as rb:
            assert rb.session.session_id == "cart-b", rb.session.session_id
            got = receive_all(rb, 3)
            assert [str(m) for m in got] == ["cart-b-0", "cart-b-1", "cart-b-2"], [str(m) for m in got]
            assert all(m.session_id == "cart-b" for m in got)
            assert rb.session.locked_until_utc is not None
            for m in got:
                rb.complete_message(m)
            assert not rb.receive_messages(max_message_count=1, max_wait_time=1), "only cart-b's messages"

            try:
                with no_retry.get_queue_receiver(QUEUE, session_id="cart-b", max_wait_time=2) as other:
                    other.receive_messages(max_message_count=1, max_wait_time=1)
                raise AssertionError("a second receiver locked a locked session")
            except SessionCannotBeLockedError:
                pass
            ok("session receiver gets only its session, in order, and holds it exclusively")

            before = rb.session.locked_until_utc
            time.sleep(0.05)
            after = rb.session.renew_lock()
            assert after > before, (before, after)
            ok("session lock renewal")

            assert rb.session.get_state() is None
            rb.session.set_state(b"checkpoint-2")
            assert rb.session.get_state() == b"checkpoint-2"
        with client.get_queue_receiver(QUEUE, session_id="cart-b", max_wait_time=WAIT) as rb:
            assert rb.session.get_state() == b"checkpoint-2", "state outlives the receiver"
            rb.session.set_state(None)
            assert rb.session.get_state() is None
        ok("session state")

        with client.get_queue_receiver(QUEUE, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=WAIT) as ra:
            assert ra.session.session_id == "cart-a", ra.session.session_id
            got = receive_all(ra, 3)
            assert [str(m) for m in got] == ["cart-a-0", "cart-a-1", "cart-a-2"], [str(m) for m in got]
            for m in got:
                ra.complete_message(m)
        ok("next available session")

        start = time.monotonic()
        try:
            with no_retry.get_queue_receiver(QUEUE, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as none:
                none.receive_messages(max_message_count=1, max_wait_time=1)
            raise AssertionError("a receiver got a session although none had messages")
        except OperationTimeoutError:
            pass
        assert 1.5 < time.monotonic() - start < 15, "waited for the receiver's own timeout"
        ok("no session available times out")

        with no_retry.get_queue_sender(QUEUE) as sender:
            try:
                sender.send_messages(ServiceBusMessage("no session"))
                raise AssertionError("a message without a session id was accepted")
            except ServiceBusError as e:
                assert "SessionId" in str(e), str(e)
        try:
            with no_retry.get_queue_receiver(QUEUE, max_wait_time=2) as plain:
                plain.receive_messages(max_message_count=1, max_wait_time=1)
            raise AssertionError("a non-session receiver attached to a session queue")
        except ServiceBusError as e:
            assert "sessions" in str(e), str(e)
        try:
            with no_retry.get_queue_receiver("deferrals", session_id="x", max_wait_time=2) as wrong:
                wrong.receive_messages(max_message_count=1, max_wait_time=1)
            raise AssertionError("a session receiver attached to a queue without sessions")
        except ServiceBusError as e:
            assert "RequiresSession" in str(e), str(e)
        ok("refusals as Service Bus gives them")

        with client.get_queue_sender("short-sessions") as sender:
            sender.send_messages(ServiceBusMessage("held", session_id="s1"))
        with client.get_queue_receiver("short-sessions", session_id="s1", max_wait_time=WAIT) as r1:
            held = r1.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            time.sleep(3)
            try:
                r1.complete_message(held)
                raise AssertionError("settled a message of a session whose lock expired")
            except (SessionLockLostError, ServiceBusError):
                pass
        with client.get_queue_receiver("short-sessions", session_id="s1", max_wait_time=WAIT) as r2:
            again = r2.receive_messages(max_message_count=1, max_wait_time=WAIT)
            assert [str(m) for m in again] == ["held"], again
            assert again[0].delivery_count >= 1, again[0].delivery_count
            r2.complete_message(again[0])
        ok("an expired session lock gives the session's messages back")

        with client.get_topic_sender("orders") as sender:
            sender.send_messages(ServiceBusMessage("t-1", session_id="order-7"))
            sender.send_messages(ServiceBusMessage("t-2", session_id="order-7"))
        with client.get_subscription_receiver("orders", "by-session", session_id="order-7", max_wait_time=WAIT) as sr:
            got = receive_all(sr, 2)
            assert [str(m) for m in got] == ["t-1", "t-2"], [str(m) for m in got]
            for m in got:
                sr.complete_message(m)
        ok("session subscription of a topic")


if __name__ == "__main__":
    run(main)
