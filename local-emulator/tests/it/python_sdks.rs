//! The official Python SDKs (`azure-servicebus`, `azure-eventhub`) against the emulator.

use crate::support::{assert_steps, run_python, start, start_features};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_service_bus_queue_peek_lock_dead_letter_schedule_and_topic_filters() {
    let emu = start().await;
    let run = run_python("servicebus_flow.py", &emu.connection_string(), &[]).await;
    assert_steps(
        &run,
        &[
            "send",
            "peek-lock complete",
            "abandon redelivers with a higher delivery count",
            "renew lock",
            "dead-letter and read the dead-letter queue",
            "peek",
            "schedule",
            "topic with two subscriptions, one filtered",
            "receive and delete",
        ],
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_event_hubs_batch_properties_and_positions() {
    let emu = start().await;
    let run = run_python(
        "eventhubs_flow.py",
        &emu.connection_string(),
        &[("EMULATOR_HUB", "eh1")],
    )
    .await;
    assert_steps(
        &run,
        &[
            "hub properties",
            "send batch with a partition key",
            "partition properties",
            "receive from the earliest position",
            "receive from a sequence number",
            "partition key delivered",
        ],
    );
    assert_eq!(emu.partition_len("eh1", 0) + emu.partition_len("eh1", 1), 8);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_service_bus_sessions_in_order_exclusive_with_state_renewal_and_expiry() {
    let emu = start_features().await;
    let run = run_python("servicebus_sessions.py", &emu.connection_string(), &[]).await;
    assert_steps(
        &run,
        &[
            "send to two sessions interleaved",
            "session receiver gets only its session, in order, and holds it exclusively",
            "session lock renewal",
            "session state",
            "next available session",
            "no session available times out",
            "refusals as Service Bus gives them",
            "an expired session lock gives the session's messages back",
            "session subscription of a topic",
        ],
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_service_bus_deferral_duplicate_detection_and_rule_actions() {
    let emu = start_features().await;
    let run = run_python("servicebus_features.py", &emu.connection_string(), &[]).await;
    assert_steps(
        &run,
        &[
            "defer takes a message out of the queue's order",
            "receive deferred by sequence number, abandon, complete",
            "duplicate detection keeps one message per id",
            "rule action sets and removes properties",
        ],
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_event_hubs_higher_owner_level_takes_the_partition_and_a_lower_is_refused() {
    let emu = start().await;
    let run = run_python(
        "eventhubs_epoch.py",
        &emu.connection_string(),
        &[("EMULATOR_HUB", "eh1")],
    )
    .await;
    assert_steps(
        &run,
        &[
            "a higher owner level takes the partition",
            "a lower owner level is refused",
        ],
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_administration_client_manages_entities_over_https_with_runtime_counts() {
    let emu = start().await;
    let cert = emu.certificate_path().display().to_string();
    let run = run_python(
        "servicebus_admin.py",
        &emu.connection_string(),
        &[("EMULATOR_CERTIFICATE", &cert)],
    )
    .await;
    assert_steps(
        &run,
        &[
            "namespace properties over HTTPS",
            "queue created, read, updated and listed",
            "runtime counts",
            "topic, subscription and SQL rule with an action, used by the messaging client",
            "deleted",
            "a wrong key is refused",
        ],
    );
    emu.shutdown().await;
}
