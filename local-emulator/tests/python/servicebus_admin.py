"""The Service Bus administration API with the official ServiceBusAdministrationClient: queues,
topics, subscriptions and rules created, read, updated, listed and deleted, runtime counts,
and the messaging client using what was created.

Reads EMULATOR_CONNECTION_STRING and EMULATOR_CERTIFICATE (the emulator's self-signed
certificate, trusted through `connection_verify`). Prints one `OK <step>` per step that
passed and exits non-zero on the first failure.
"""
import datetime
import os

from azure.core.exceptions import ClientAuthenticationError, ResourceExistsError, ResourceNotFoundError
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.management import ServiceBusAdministrationClient, SqlRuleAction, SqlRuleFilter
from steps import ok, run

CONN = os.environ["EMULATOR_CONNECTION_STRING"]
CERT = os.environ["EMULATOR_CERTIFICATE"]
WAIT = 5
Q = "made-by-python"
T = "made-topic"



def main():
    admin = ServiceBusAdministrationClient.from_connection_string(CONN, connection_verify=CERT)
    ns = admin.get_namespace_properties()
    assert ns.name, ns
    ok("namespace properties over HTTPS")

    created = admin.create_queue(
        Q,
        max_delivery_count=4,
        lock_duration=datetime.timedelta(seconds=30),
        requires_duplicate_detection=True,
        duplicate_detection_history_time_window=datetime.timedelta(minutes=2),
    )
    assert created.name == Q and created.max_delivery_count == 4, created
    got = admin.get_queue(Q)
    assert got.lock_duration == datetime.timedelta(seconds=30), got.lock_duration
    assert got.requires_duplicate_detection and not got.requires_session
    try:
        admin.create_queue(Q)
        raise AssertionError("a queue was created twice")
    except ResourceExistsError:
        pass
    got.max_delivery_count = 7
    admin.update_queue(got)
    assert admin.get_queue(Q).max_delivery_count == 7
    assert Q in [q.name for q in admin.list_queues()]
    ok("queue created, read, updated and listed")

    with ServiceBusClient.from_connection_string(CONN) as client:
        with client.get_queue_sender(Q) as s:
            s.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
            later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            s.schedule_messages(ServiceBusMessage("later"), later)
        with client.get_queue_receiver(Q, max_wait_time=WAIT) as r:
            m = r.receive_messages(max_message_count=1, max_wait_time=WAIT)[0]
            r.dead_letter_message(m, reason="test")
        rt = admin.get_queue_runtime_properties(Q)
        counts = (rt.active_message_count, rt.dead_letter_message_count, rt.scheduled_message_count, rt.total_message_count)
        assert counts == (1, 1, 1, 3), counts
        assert rt.size_in_bytes > 0 and rt.created_at_utc is not None
        ok("runtime counts")

        admin.create_topic(T)
        admin.create_subscription(T, "big")
        admin.create_rule(T, "big", "over-100", filter=SqlRuleFilter("Total > 100"), action=SqlRuleAction("SET Tier = 'gold'"))
        admin.delete_rule(T, "big", "$Default")
        rules = list(admin.list_rules(T, "big"))
        assert [r.name for r in rules] == ["over-100"], [r.name for r in rules]
        assert rules[0].filter.sql_expression == "Total > 100", rules[0].filter
        assert rules[0].action.sql_expression == "SET Tier = 'gold'", rules[0].action
        assert admin.get_rule(T, "big", "over-100").filter.sql_expression == "Total > 100"
        assert [s.name for s in admin.list_subscriptions(T)] == ["big"]
        with client.get_topic_sender(T) as s:
            s.send_messages(ServiceBusMessage("small", application_properties={"Total": 5}))
            s.send_messages(ServiceBusMessage("large", application_properties={"Total": 500}))
        assert admin.get_topic_runtime_properties(T).subscription_count == 1
        assert admin.get_subscription_runtime_properties(T, "big").active_message_count == 1
        with client.get_subscription_receiver(T, "big", max_wait_time=WAIT) as r:
            got = r.receive_messages(max_message_count=5, max_wait_time=WAIT)
            assert [str(g) for g in got] == ["large"], [str(g) for g in got]
            props = {k.decode() if isinstance(k, bytes) else k: v for k, v in got[0].application_properties.items()}
            tier = props.get("Tier")
            assert (tier.decode() if isinstance(tier, bytes) else tier) == "gold", props
            r.complete_message(got[0])
        ok("topic, subscription and SQL rule with an action, used by the messaging client")

    admin.delete_subscription(T, "big")
    admin.delete_topic(T)
    admin.delete_queue(Q)
    for get in (lambda: admin.get_queue(Q), lambda: admin.get_topic(T)):
        try:
            get()
            raise AssertionError("a deleted entity is still there")
        except ResourceNotFoundError:
            pass
    ok("deleted")

    wrong = CONN.replace("SAS_KEY_VALUE", "not-the-key")
    try:
        ServiceBusAdministrationClient.from_connection_string(wrong, connection_verify=CERT).get_queue("queue1")
        raise AssertionError("a wrong key was accepted")
    except ClientAuthenticationError:
        pass
    ok("a wrong key is refused")


if __name__ == "__main__":
    run(main)
