//! Claims-based security: each bad credential is refused and the client sees why.

use crate::support::{amqp, run_python, start};
use std::time::Duration;

fn sas_connection_string(port: u16, token: &str) -> String {
    format!(
        "Endpoint=sb://localhost:{port};SharedAccessSignature={token};UseDevelopmentEmulator=true;"
    )
}

async fn refused(conn: &str) -> String {
    let run = run_python("servicebus_refused.py", conn, &[]).await;
    assert!(
        run.success,
        "expected a refusal\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_as_unauthorized() {
    let emu = start().await;
    let conn = emu
        .connection_string()
        .replace("SAS_KEY_VALUE", "not-the-key");
    let out = refused(&conn).await;
    assert!(
        out.to_lowercase().contains("unauthorized") || out.contains("Authentication"),
        "{out}"
    );
    assert!(emu.peek("queue1", 10).is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_as_unauthorized() {
    let emu = start().await;
    let port = emu.amqp_addr().port();
    let token = local_emulator::server::cbs::sas_token(
        &format!("sb://localhost:{port}/queue1"),
        local_emulator::DEFAULT_KEY_NAME,
        local_emulator::DEFAULT_KEY,
        1_000_000_000,
    );
    let out = refused(&sas_connection_string(port, &token)).await;
    assert!(
        out.contains("ServiceBusAuthenticationError")
            || out.to_lowercase().contains("unauthorized"),
        "{out}"
    );
    assert!(emu.peek("queue1", 10).is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_another_entity_is_refused_as_unauthorized() {
    let emu = start().await;
    let port = emu.amqp_addr().port();
    let token = emu.sas_token(
        &format!("sb://localhost:{port}/herald-events"),
        Duration::from_secs(600),
    );
    let out = refused(&sas_connection_string(port, &token)).await;
    assert!(out.to_lowercase().contains("unauthorized"), "{out}");
    assert!(emu.peek("queue1", 10).is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_amqp_client_with_a_token_for_another_entity_cannot_attach() {
    let emu = start().await;
    let token = emu.sas_token("sb://localhost/herald-events", Duration::from_secs(600));
    let err = amqp::send_with_token(&emu, "queue1", &token, &["x"])
        .await
        .expect_err("refused");
    assert!(
        format!("{err:?}").to_lowercase().contains("unauthorized"),
        "{err:?}"
    );
    emu.shutdown().await;
}
