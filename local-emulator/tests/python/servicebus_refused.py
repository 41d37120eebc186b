"""Expects the emulator to refuse: sends to EMULATOR_QUEUE with the given connection string and
prints `REFUSED <exception type>: <message>` (exit 0) or `ACCEPTED` (exit 1)."""
import os
import sys

from azure.servicebus import ServiceBusClient, ServiceBusMessage

conn = os.environ["EMULATOR_CONNECTION_STRING"]
queue = os.environ.get("EMULATOR_QUEUE", "queue1")
try:
    with ServiceBusClient.from_connection_string(conn, retry_total=0) as client:
        with client.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("should not arrive"))
except Exception as e:  # the SDK's own error types differ per refusal
    print(f"REFUSED {type(e).__name__}: {e}", flush=True)
    sys.exit(0)
print("ACCEPTED", flush=True)
sys.exit(1)
