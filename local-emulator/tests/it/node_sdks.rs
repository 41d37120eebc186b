//! The official JavaScript SDK (`@azure/service-bus`, run by Node.js) against the emulator.

use crate::support::{assert_steps, run_node, start_features};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_service_bus_sessions_rule_manager_and_deferral() {
    let emu = start_features().await;
    let run = run_node("servicebus.mjs", &emu.connection_string()).await;
    assert_steps(
        &run,
        &[
            "session receiver in order, lock renewal and state",
            "next available session",
            "rule manager adds and lists rules",
            "rules with actions select and change messages",
            "rule manager removes rules",
            "defer and receive by sequence number",
        ],
    );
    emu.shutdown().await;
}
