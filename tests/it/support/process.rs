//! Herald as a child process (`herald serve`), for crash and cluster tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::ADMIN_KEY;

/// A running `herald serve`.
pub struct HeraldProcess {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl HeraldProcess {
    /// Starts `herald serve --config CONFIG` with debug logs to `log`, and waits until it
    /// prints where it listens.
    pub fn start(config: &Path, log: PathBuf, env: &[(&str, String)]) -> HeraldProcess {
        Self::start_under(&[], config, log, env)
    }

    /// Like [`HeraldProcess::start`], with `wrapper` (a program and its arguments) running
    /// `herald` as its last arguments, e.g. in a mount namespace of its own.
    pub fn start_under(
        wrapper: &[&str],
        config: &Path,
        log: PathBuf,
        env: &[(&str, String)],
    ) -> HeraldProcess {
        let herald = env!("CARGO_BIN_EXE_herald");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(herald);
                c
            }
            None => Command::new(herald),
        };
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "debug,sqlx=warn,hyper=info,reqwest=info")
            .env("HERALD_API_KEY", ADMIN_KEY)
            .env("HERALD_ENCRYPTION_KEYS", super::ENCRYPTION_KEY)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("herald starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "Herald did not start; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        HeraldProcess { child, url, log }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        // Never leave a child behind when a test fails.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs JSON with the admin key; `(0, Null)` when the request got no answer.
pub async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    match http
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// GETs JSON with the admin key; `(0, Null)` when the request got no answer.
pub async fn get(http: &reqwest::Client, base: &str, path: &str) -> (u16, serde_json::Value) {
    match http
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}
