"""Service Bus interop: the official azure-servicebus client against the emulator.

Reads the connection string from EMULATOR_CONNECTION_STRING, prints one `OK <step>` line per
step that passed, and exits non-zero (with a traceback) on the first failure.
"""
import datetime
import os
import uuid

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from steps import ok, run

CONN = os.environ["EMULATOR_CONNECTION_STRING"]
QUEUE = os.environ.get("EMULATOR_QUEUE", "queue1")
WAIT = 5



def drain(receiver):
    while receiver.receive_messages(max_message_count=50, max_wait_time=1):
        pass


def main():
    with ServiceBusClient.from_connection_string(CONN) as client:
        sender = client.get_queue_sender(QUEUE)
        receiver = client.get_queue_receiver(QUEUE, max_wait_time=WAIT)
        with sender, receiver:
            run_id = str(uuid.uuid4())
            sender.send_messages([ServiceBusMessage(f"m{i}", application_properties={"run": run_id, "i": i}) for i in range(4)])
            ok("send")

            msgs = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
            assert len(msgs) == 1, msgs
            m = msgs[0]
            assert str(m) == "m0", str(m)
            assert m.sequence_number is not None and m.sequence_number > 0, m.sequence_number
            assert m.lock_token is not None and m.locked_until_utc is not None
            receiver.complete_message(m)
            ok("peek-lock complete")

            m = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            assert str(m) == "m1", str(m)
            first_count = m.delivery_count
            receiver.abandon_message(m)
            again = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            assert str(again) == "m1", str(again)
            assert again.delivery_count > first_count, (first_count, again.delivery_count)
            ok("abandon redelivers with a higher delivery count")

            before = again.locked_until_utc
            new_until = receiver.renew_message_lock(again)
            assert new_until >= before, (before, new_until)
            receiver.complete_message(again)
            ok("renew lock")

            m = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            assert str(m) == "m2"
            receiver.dead_letter_message(m, reason="bad-input", error_description="cannot parse")
            with client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=WAIT) as dlq:
                dead = dlq.receive_messages(max_message_count=1, max_wait_time=WAIT)
                assert len(dead) == 1, dead
                assert str(dead[0]) == "m2", str(dead[0])
                assert dead[0].dead_letter_reason == "bad-input", dead[0].dead_letter_reason
                assert dead[0].dead_letter_error_description == "cannot parse"
                dlq.complete_message(dead[0])
            ok("dead-letter and read the dead-letter queue")

            peeked = receiver.peek_messages(max_message_count=5)
            assert any(str(p) == "m3" for p in peeked), [str(p) for p in peeked]
            ok("peek")

            m = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            receiver.complete_message(m)

            when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
            seqs = sender.schedule_messages(ServiceBusMessage("scheduled"), when)
            assert len(seqs) == 1 and seqs[0] > 0, seqs
            early = receiver.receive_messages(max_message_count=1, max_wait_time=1)
            assert not early, [str(e) for e in early]
            later = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT + 3)
            assert len(later) == 1 and str(later[0]) == "scheduled", later
            receiver.complete_message(later[0])
            ok("schedule")

        with client.get_topic_sender("topic1") as tsender:
            tsender.send_messages(ServiceBusMessage("for-all"))
            tsender.send_messages(ServiceBusMessage("filtered", application_properties={"prop1": "value1"}))
        with client.get_subscription_receiver("topic1", "subscription1", max_wait_time=WAIT) as s1:
            got = []
            while len(got) < 2:
                batch = s1.receive_messages(max_message_count=2, max_wait_time=WAIT)
                assert batch, got
                for b in batch:
                    got.append(str(b))
                    s1.complete_message(b)
            assert sorted(got) == ["filtered", "for-all"], got
        with client.get_subscription_receiver("topic1", "subscription2", max_wait_time=WAIT) as s2:
            batch = s2.receive_messages(max_message_count=5, max_wait_time=WAIT)
            assert [str(b) for b in batch] == ["filtered"], [str(b) for b in batch]
            s2.complete_message(batch[0])
            assert not s2.receive_messages(max_message_count=5, max_wait_time=1)
        ok("topic with two subscriptions, one filtered")

        with client.get_queue_receiver(QUEUE, receive_mode="receiveanddelete", max_wait_time=WAIT) as rd:
            with client.get_queue_sender(QUEUE) as s:
                s.send_messages(ServiceBusMessage("rd"))
            got = rd.receive_messages(max_message_count=1, max_wait_time=WAIT)
            assert [str(g) for g in got] == ["rd"], got
        ok("receive and delete")


if __name__ == "__main__":
    run(main)
