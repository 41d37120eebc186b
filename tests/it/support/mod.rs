//! Test support: Herald started in-process on port 0 with a fresh SQLite store, a webhook
//! receiver that records what it gets, and helpers to wait for conditions under a timeout.

pub mod otlp;
pub mod plugins;
pub mod postgres;
pub mod process;
pub mod receiver;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald::config::Config;
use herald::server::Running;
use serde_json::{json, Value};

pub use receiver::Receiver;

/// The API key every test app accepts (full access).
pub const ADMIN_KEY: &str = "hk_test_admin_key_0123456789";

/// The key test apps seal endpoint settings with (`ID:BASE64`).
pub const ENCRYPTION_KEY: &str = "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// [`ENCRYPTION_KEY`] as a key ring, for stores opened directly.
pub fn test_keys() -> std::sync::Arc<herald::store::sealing::KeyRing> {
    std::sync::Arc::new(
        herald::store::sealing::KeyRing::parse(&[ENCRYPTION_KEY.to_owned()])
            .expect("the test key is well formed"),
    )
}

/// Waits until `check` returns `Some`, polling every 20 ms, for at most `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Herald started for one test.
pub struct TestApp {
    pub running: Running,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// Builds a [`TestApp`].
pub struct TestAppBuilder {
    toml: String,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            toml: String::new(),
        }
    }

    pub async fn start() -> TestApp {
        Self::builder().build().await
    }

    /// A request with the admin key.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_KEY)
    }

    /// POSTs JSON with the admin key; returns status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GETs JSON with the admin key.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GETs JSON without a key.
    pub async fn get_public(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers a webhook endpoint to `url` with `secret` and subscribes `event` to it.
    pub async fn subscribe_webhook(
        &self,
        name: &str,
        url: &str,
        secret: &str,
        event: &str,
    ) -> (String, String) {
        let (status, ep) = self
            .post("/v1/endpoints", &json!({"name": name, "kind": "webhook", "url": url, "secret": secret, "timeout": "5s"}))
            .await;
        assert_eq!(status, 201, "endpoint created: {ep}");
        let endpoint_id = ep["endpoint"]["id"].as_str().unwrap().to_owned();
        let (status, sub) = self
            .post(
                "/v1/subscriptions",
                &json!({"name": name, "event": event, "endpoint": endpoint_id}),
            )
            .await;
        assert_eq!(status, 201, "subscription created: {sub}");
        (endpoint_id, sub["id"].as_str().unwrap().to_owned())
    }

    /// Sends a valid `contoso_CustomerPurchase`; returns the event id.
    pub async fn send_purchase(&self, total: f64) -> String {
        let (status, body) = self
            .post("/v1/events/contoso_CustomerPurchase", &purchase(total))
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await;
        self.dir
    }
}

/// Valid parameters of `contoso_CustomerPurchase`.
pub fn purchase(total: f64) -> Value {
    json!({
        "CustomerId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10",
        "Total": total,
        "Currency": "EUR",
        "PurchasedOn": "2026-11-22T10:30:00Z",
        "Items": ["SKU-1", "SKU-2"],
    })
}

impl TestAppBuilder {
    /// Extra configuration (TOML), merged over the test defaults.
    pub fn config(mut self, toml: &str) -> Self {
        self.toml.push('\n');
        self.toml.push_str(toml);
        self
    }

    pub async fn build(self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let toml = format!(
            r#"
api_key = "{ADMIN_KEY}"
encryption_keys = "{ENCRYPTION_KEY}"
[store]
url = "sqlite://{db}"
[webhooks]
allow_networks = ["127.0.0.0/8", "::1/128"]
timeout = "5s"
[delivery]
retry_schedule = ["100ms", "200ms"]
poll_interval = "100ms"
[endpoint_health]
probe_interval = "200ms"
probe_interval_max = "1s"
"#,
            db = dir.path().join("herald.db").display(),
        );
        let config = Config::from_toml(&[&toml, &self.toml])
            .unwrap_or_else(|e| panic!("test configuration: {e}\n{}", self.toml));
        let catalog = herald::server::load_catalog(&config).expect("catalog");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let running = herald::server::start(config, catalog, Some(listener))
            .await
            .expect("Herald starts");
        let url = format!("http://{}", running.addr);
        TestApp {
            running,
            url,
            http: reqwest::Client::new(),
            dir,
        }
    }
}

/// The Python interpreter of the test virtual environment (made by scripts/test.sh).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("HERALD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the Python test environment is missing: run scripts/test.sh (or scripts/setup-test-env.sh) first"
    );
    venv
}

/// Runs tests/python/`script` on `input` (written to a JSON file given as its argument);
/// panics with its output unless it succeeds; returns its standard output.
pub fn run_python(script: &str, input: &Value) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("input.json");
    std::fs::write(&file, input.to_string()).expect("input written");
    let out = std::process::Command::new(python())
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/python")
                .join(script),
        )
        .arg(&file)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The PostgreSQL server the tests use.
pub fn pg_url() -> String {
    std::env::var("HERALD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}
