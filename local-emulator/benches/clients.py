"""The emulator as the official Python SDK sees it: one-at-a-time sends (each awaiting its
settlement), batched sends, peek-lock receive + complete, and session receive + complete.
Reads EMULATOR_CONNECTION_STRING and BENCH_MESSAGES; prints one JSON object of figures."""
import json
import os
import time

from azure.servicebus import ServiceBusClient, ServiceBusMessage

CONN = os.environ["EMULATOR_CONNECTION_STRING"]
N = int(os.environ.get("BENCH_MESSAGES", "2000"))
BODY = '{"event":"contoso_order_placed","id":"0190f0aa-0000-7000-8000-000000000000","amount":42}'
SESSIONS = 10


def timed(f):
    t = time.perf_counter()
    n = f()
    return n / (time.perf_counter() - t)


def drain(receiver, n):
    got = 0
    while got < n:
        # Never ask for more than is left: a batch short of its count waits out max_wait_time.
        batch = receiver.receive_messages(max_message_count=min(100, n - got), max_wait_time=5)
        assert batch, f"only {got} of {n} received"
        for m in batch:
            receiver.complete_message(m)
        got += len(batch)
    return got


with ServiceBusClient.from_connection_string(CONN) as client:
    out = {}
    with client.get_queue_sender("queue1") as s:
        s.send_messages(ServiceBusMessage(BODY))  # opens the link

        def one_at_a_time():
            for _ in range(N):
                s.send_messages(ServiceBusMessage(BODY))
            return N

        out["python_send_one_at_a_time"] = timed(one_at_a_time)

        def batched():
            for _ in range(N // 100):
                s.send_messages([ServiceBusMessage(BODY) for _ in range(100)])
            return N // 100 * 100

        out["python_send_batches_of_100"] = timed(batched)
    total = 1 + N + N // 100 * 100
    with client.get_queue_receiver("queue1", max_wait_time=5, prefetch_count=100) as r:
        out["python_peek_lock_receive_complete"] = timed(lambda: drain(r, total))
    with client.get_queue_sender("sessions") as s:
        per = N // SESSIONS
        for i in range(SESSIONS):
            for _ in range(per // 100):
                s.send_messages([ServiceBusMessage(BODY, session_id=f"s{i}") for _ in range(100)])

    # Receiving inside each accepted session, apart from accepting and closing it (Python's
    # client spends about a second closing each receiver, whatever the broker does).
    inside = 0.0
    got = 0
    t_all = time.perf_counter()
    for i in range(SESSIONS):
        with client.get_queue_receiver("sessions", session_id=f"s{i}", max_wait_time=5, prefetch_count=100) as r:
            t = time.perf_counter()
            got += drain(r, per // 100 * 100)
            inside += time.perf_counter() - t
    out["python_session_receive_complete"] = got / inside
    out["python_session_receive_complete_with_accept_and_close"] = got / (time.perf_counter() - t_all)
    print(json.dumps(out))
