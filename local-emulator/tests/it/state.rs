//! State across restarts (`--data-dir`), the HTTP side port and the webhook sink.

use crate::support::{amqp, start, start_with};
use local_emulator::sink::signature::sign;
use local_emulator::Emulator;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_enqueued_before_a_restart_with_data_dir_are_still_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = start_with(Emulator::builder().data_dir(dir.path())).await;
    amqp::send(&emu, "queue1", &["kept-1", "kept-2"])
        .await
        .expect("sent");
    amqp::send(&emu, "eh1/Partitions/0", &["event"])
        .await
        .expect("event sent");
    emu.shutdown().await;

    let again = start_with(Emulator::builder().data_dir(dir.path())).await;
    let msgs = again.peek("queue1", 10);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].seq, 2);
    assert_eq!(again.partition_len("eh1", 0), 1);
    amqp::send(&again, "queue1", &["after"])
        .await
        .expect("sent after restart");
    assert_eq!(again.peek("queue1", 10).last().map(|m| m.seq), Some(3));
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_port_lists_entities_peeks_and_purges() {
    let emu = start().await;
    amqp::send(&emu, "queue1", &["hello"]).await.expect("sent");
    let base = format!("http://{}", emu.http_addr());
    let http = reqwest::Client::new();
    let health: Value = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let ents: Value = http
        .get(format!("{base}/entities"))
        .send()
        .await
        .expect("entities")
        .json()
        .await
        .expect("json");
    let q = ents["entities"]
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["path"] == "queue1")
        .cloned()
        .expect("queue1");
    assert_eq!(q["count"], 1);
    let peek: Value = http
        .get(format!("{base}/messages/queue1"))
        .send()
        .await
        .expect("peek")
        .json()
        .await
        .expect("json");
    assert_eq!(peek["messages"][0]["body"], "hello");
    let purged: Value = http
        .delete(format!("{base}/messages/queue1"))
        .send()
        .await
        .expect("purge")
        .json()
        .await
        .expect("json");
    assert_eq!(purged["purged"], 1);
    assert!(emu.peek("queue1", 10).is_empty());
    let missing = http
        .get(format!("{base}/messages/nope"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_sink_verifies_signatures_and_answers_the_status_it_is_told() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let emu = start_with(Emulator::builder().sink_secret(secret)).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", emu.http_addr());
    let set: reqwest::Response = http
        .put(format!("{base}/sink-behaviour"))
        .json(&serde_json::json!({"status": 503, "count": 1}))
        .send()
        .await
        .expect("behaviour set");
    assert!(set.status().is_success());
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let body = br#"{"type":"x"}"#;
    let post = |sig: String| {
        http.post(emu.sink_url() + "/hooks/a")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.to_vec())
            .send()
    };
    assert_eq!(
        post(sign(secret, "msg_1", ts, body))
            .await
            .expect("first")
            .status(),
        503
    );
    assert_eq!(
        post(sign(secret, "msg_1", ts, body))
            .await
            .expect("second")
            .status(),
        200
    );
    assert_eq!(
        post("v1,bm90LWEtc2lnbmF0dXJl".into())
            .await
            .expect("third")
            .status(),
        200
    );
    let recs: Value = http
        .get(format!("{base}/sink-requests"))
        .send()
        .await
        .expect("records")
        .json()
        .await
        .expect("json");
    let recs = recs["requests"].as_array().expect("list").clone();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["verdict"]["verdict"], "valid");
    assert_eq!(recs[0]["status"], 503);
    assert_eq!(recs[0]["path"], "/hooks/a");
    assert_eq!(recs[2]["verdict"]["verdict"], "invalid");
    assert_eq!(emu.sink_records().len(), 3);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_amqp_port_is_reported_with_how_to_pick_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let err = match Emulator::builder().amqp_port(port).start().await {
        Ok(_) => panic!("started on a busy port"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("port {port}")) && err.contains("--port"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_made_through_the_administration_api_survives_a_restart_with_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = start_with(Emulator::builder().data_dir(dir.path())).await;
    let cert = std::fs::read(emu.certificate_path()).expect("certificate written");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("PEM"))
        .build()
        .expect("client");
    let url = |emu: &local_emulator::RunningEmulator| {
        format!(
            "https://localhost:{}/kept-queue?api-version=2021-05",
            emu.amqp_addr().port()
        )
    };
    let token = emu.sas_token("https://localhost/", std::time::Duration::from_secs(600));
    let body = r#"<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"><RequiresSession>true</RequiresSession></QueueDescription></content></entry>"#;
    let made = http
        .put(url(&emu))
        .header("Authorization", &token)
        .body(body)
        .send()
        .await
        .expect("PUT");
    assert_eq!(made.status(), 201, "{:?}", made.text().await);
    let unsigned = http.get(url(&emu)).send().await.expect("GET");
    assert_eq!(
        unsigned.status(),
        401,
        "a request without a token is refused"
    );
    emu.shutdown().await;

    let again = start_with(Emulator::builder().data_dir(dir.path())).await;
    assert_eq!(
        again.certificate_path(),
        dir.path().join("emulator-cert.pem"),
        "the certificate is kept with the data, so clients trust it once"
    );
    let got = http
        .get(url(&again))
        .header("Authorization", &token)
        .send()
        .await
        .expect("GET");
    assert_eq!(got.status(), 200);
    let text = got.text().await.expect("body");
    assert!(
        text.contains("<RequiresSession>true</RequiresSession>"),
        "{text}"
    );
    again.shutdown().await;
}
