"""Event Hubs epoch (owner level) receivers with the official azure-eventhub client: a higher
owner level takes the partition from a lower one, which is told so; a lower one is refused.

Reads EMULATOR_CONNECTION_STRING and EMULATOR_HUB. Prints one `OK <step>` per step that passed
and exits non-zero on the first failure.
"""
import os
import threading
import time

from azure.eventhub import EventHubConsumerClient
from steps import ok, run

CONN = os.environ["EMULATOR_CONNECTION_STRING"]
HUB = os.environ.get("EMULATOR_HUB", "eh1")
errors = {}
lock = threading.Lock()



def reader(name, level):
    client = EventHubConsumerClient.from_connection_string(CONN, consumer_group="$Default", eventhub_name=HUB, retry_total=0)

    def on_error(_partition, err):
        with lock:
            errors.setdefault(name, []).append(str(err))

    t = threading.Thread(
        target=client.receive,
        kwargs={
            "on_event": lambda _p, _e: None,
            "on_error": on_error,
            "partition_id": "0",
            "owner_level": level,
            "starting_position": "-1",
        },
        daemon=True,
    )
    t.start()
    return client


def wait_for_error(name, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            if errors.get(name):
                return errors[name][0]
        time.sleep(0.1)
    raise AssertionError(f"{name} got no error within {timeout}s: {errors}")


def main():
    low = reader("low", 1)
    time.sleep(2)
    with lock:
        assert not errors, errors
    high = reader("high", 2)
    err = wait_for_error("low")
    assert "epoch" in err, err
    ok("a higher owner level takes the partition")
    lower = reader("lower", 1)
    err = wait_for_error("lower")
    assert "epoch" in err, err
    with lock:
        assert "high" not in errors, errors
    ok("a lower owner level is refused")
    for c in (low, high, lower):
        c.close()


if __name__ == "__main__":
    run(main)
