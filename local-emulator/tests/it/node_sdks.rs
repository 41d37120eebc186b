//! The official JavaScript SDK (`@azure/service-bus`, run by Node.js) against the emulator.

use crate::support::{assert_steps, run_node, start, start_features};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_service_bus_sessions_rule_manager_and_deferral() {
    let emu = start_features().await;
    let run = run_node("servicebus.mjs", &emu.connection_string(), &[]).await;
    assert_steps(
        &run,
        &[
            "session receiver in order, lock renewal and state",
            "next available session",
            "rule manager adds and lists rules",
            "rules with actions select and change messages",
            "rule manager removes rules",
            "defer and receive by sequence number",
            "abandon with properties to modify",
        ],
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_administration_client_manages_queues_topics_subscriptions_and_rules() {
    let emu = start().await;
    let cert = emu.certificate_path().display().to_string();
    let run = run_node(
        "admin.mjs",
        &emu.connection_string(),
        &[("NODE_EXTRA_CA_CERTS", &cert)],
    )
    .await;
    assert_steps(
        &run,
        &[
            "queue created, read, updated and listed",
            "runtime counts",
            "topic, subscription with a SQL default rule, rules listed",
            "deleted",
        ],
    );
    emu.shutdown().await;
}
