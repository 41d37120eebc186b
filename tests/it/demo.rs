//! `herald demo` as a new user runs it: the emulator starts in-process, one `curl`-like POST,
//! and the Python lines the demo prints read the event from the queue, the topic
//! subscription and the event hub with the official SDKs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{purchase, python, wait_for};

/// Kills the demo when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_delivers_to_its_webhook_queue_topic_and_hub_and_its_python_lines_read_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--emulator-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env_remove("HERALD_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("herald demo starts");
    let stdout = child.stdout.take().expect("piped");
    let _child = Child(child);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let text = || lines.lock().unwrap().join("\n");
    wait_for(Duration::from_secs(30), "the demo to start", || async {
        text().contains("Press Ctrl-C to stop.").then_some(())
    })
    .await;
    let out = text();
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_else(|| panic!("the demo prints {label}:\n{out}"))
    };
    let url = field("API ");
    let key = field("API key ");
    let (status, body) = crate::support::process::post(
        &reqwest::Client::new(),
        &url,
        "/v1/events/contoso_CustomerPurchase",
        purchase(42.5),
    )
    .await;
    // The demo's key, not the tests' admin key, opens its API.
    assert_eq!(status, 401, "{body}");
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/events/contoso_CustomerPurchase"))
        .bearer_auth(&key)
        .json(&purchase(42.5))
        .send()
        .await
        .expect("posted");
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(
        body["deliveries"], 4,
        "webhook, queue, topic and hub: {body}"
    );
    wait_for(Duration::from_secs(20), "the webhook to arrive", || async {
        text()
            .contains("webhook received, signature valid")
            .then_some(())
    })
    .await;

    let snippet: String = out
        .lines()
        .skip_while(|l| !l.starts_with("python3 - <<'PY'"))
        .skip(1)
        .take_while(|l| *l != "PY")
        .collect::<Vec<_>>()
        .join("\n");
    assert!(snippet.contains("ServiceBusClient"), "{out}");
    let event_id = body["id"].as_str().expect("id").to_owned();
    let py = tokio::task::spawn_blocking(move || {
        let mut p = Command::new(python())
            .arg("-c")
            .arg(&snippet)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        // The snippet stops by itself after reading for a few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while p.try_wait().expect("python").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the demo's Python lines did not finish"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p.wait_with_output().expect("output")
    })
    .await
    .expect("joined");
    let printed = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&py.stderr)
    );
    for source in [
        "queue contoso_CustomerPurchase msg_",
        "topic contoso_CustomerPurchase msg_",
        "hub ",
    ] {
        assert!(printed.contains(source), "missing {source}: {printed}");
    }
    assert!(
        printed.contains(&event_id),
        "CloudEvents id on the messages: {printed}"
    );
}
