//! Herald as its users run it: the release `herald serve` binary in a process of its own,
//! on a configuration written for the run, so wrk, Herald and the receiver are three
//! processes sharing the machine and Herald's memory is its own (`/proc/{pid}/status`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The API key of every bench instance.
pub const KEY: &str = "hk_bench_key_0123456789";
/// The key every bench instance seals endpoint settings with (instances of a cluster share it).
const ENCRYPTION_KEY: &str = "bench-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// One running `herald serve`.
pub struct Herald {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    http: reqwest::Client,
    /// Its configuration file.
    config: std::path::PathBuf,
}

/// The store of an instance: an SQLite file, or a PostgreSQL schema.
#[derive(Debug, Clone)]
pub enum StoreAt {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

impl Herald {
    /// Starts an instance on `store`, writing its configuration into `dir`.
    pub fn start(dir: &Path, store: &StoreAt) -> Herald {
        Self::start_with(dir, store, "")
    }

    /// Starts an instance on `store` with `extra` configuration (TOML sections) appended.
    pub fn start_with(dir: &Path, store: &StoreAt, extra: &str) -> Herald {
        let store_lines = match store {
            StoreAt::Sqlite(path) => format!("url = \"sqlite://{}\"", path.display()),
            StoreAt::Postgres { url, schema } => {
                format!("url = \"{url}\"\nschema = \"{schema}\"\nmax_connections = 16")
            }
        };
        let config = dir.join(format!("herald-{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(
            &config,
            format!(
                r#"api_key = "{KEY}"
encryption_keys = "{ENCRYPTION_KEY}"
[server]
listen = "127.0.0.1:0"
[store]
{store_lines}
[webhooks]
allow_networks = ["127.0.0.0/8"]
[delivery]
max_in_flight = 256
endpoint_concurrency = 64
{extra}
"#
            ),
        )
        .expect("bench configuration");
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn,herald::server=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald serve starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = Vec::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "herald serve stopped before listening:\n{}",
                    seen.join("\n")
                );
            };
            let line = plain(&line);
            if line.contains("Herald is listening") {
                let at = line.find("addr=").expect("the address is logged") + 5;
                let addr = line[at..].split_whitespace().next().expect("address");
                break addr.parse().expect("a socket address");
            }
            seen.push(line);
        };
        // Keep reading its log, so a full pipe never blocks it; warnings are shown.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("  herald: {line}");
                }
            }
        });
        Herald {
            child,
            addr,
            http: reqwest::Client::new(),
            config,
        }
    }

    /// Runs `herald store stats` on this instance's configuration; returns what it printed.
    pub fn store_stats(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["store", "stats", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .output()
            .expect("herald store stats runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The URL of `path` on this instance.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Peak and current resident memory, in MiB.
    pub fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// CPU time this process has used so far.
    pub fn cpu(&self) -> Duration {
        process_cpu(self.child.id())
    }

    /// Creates `endpoints` webhook endpoints to `receiver`, each with a subscription to the
    /// purchase event.
    pub async fn subscribe(&self, receiver: SocketAddr, endpoints: usize) {
        for i in 0..endpoints {
            let secret = herald::destinations::webhook::Secret::generate().expose();
            self.post(
                "/v1/endpoints",
                json!({"name": format!("bench-{i}"), "kind": "webhook",
                       "url": format!("http://{receiver}/hook/{i}"), "secret": secret}),
            )
            .await;
            self.post(
                "/v1/subscriptions",
                json!({"name": format!("bench-{i}"), "event": "contoso_CustomerPurchase",
                       "endpoint": format!("bench-{i}")}),
            )
            .await;
        }
    }

    /// Posts `body` to `path` as the admin and expects a success.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("Herald answers");
        let status = r.status();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// Stops it (SIGTERM) and waits for it to exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `line` without its terminal colours (ANSI escape sequences).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence ends with its first letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The user and system CPU time of process `pid` so far.
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) are at fixed places.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line (11 and 12 counted after the name),
    // in ticks of 10 ms (USER_HZ is 100 on Linux).
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 10)
}
