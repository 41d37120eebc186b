//! Shared test plumbing: the emulator started in-process on free ports, the Python interpreter
//! of the test environment, and bounded waits.

pub mod amqp;

use local_emulator::{Emulator, EmulatorBuilder, RunningEmulator};
use std::path::PathBuf;
use std::time::Duration;

/// An emulator on free ports with the built-in entities.
pub async fn start() -> RunningEmulator {
    start_with(Emulator::builder()).await
}

/// An emulator on free ports serving `tests/config/features.json`: session queues and
/// subscriptions, duplicate detection, a queue for deferral, a subscription with a rule action.
pub async fn start_features() -> RunningEmulator {
    start_with(Emulator::builder().config_file(features_config())).await
}

/// The path of `tests/config/features.json`.
pub fn features_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/config/features.json")
}

/// An emulator on free ports from a builder.
pub async fn start_with(b: EmulatorBuilder) -> RunningEmulator {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(Duration::from_secs(10), b.amqp_port(0).http_port(0).start())
        .await
        .expect("emulator starts within 10s")
        .expect("emulator starts")
}

/// The Python of the test environment: `HERALD_TEST_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HERALD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python test environment: HERALD_TEST_PYTHON is unset and {} does not exist; run scripts/test.sh \
         (or scripts/setup-test-env.sh) to create it",
        venv.display()
    );
    venv
}

/// Output of a Python or Node.js script.
pub struct PyRun {
    /// Exit status was success.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `tests/python/<script>` with `EMULATOR_CONNECTION_STRING` and extra variables.
pub async fn run_python(script: &str, conn: &str, env: &[(&str, &str)]) -> PyRun {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&path);
    run_script(cmd, script, conn, env).await
}

/// Runs `tests/node/<script>` with Node.js and the SDKs `scripts/setup-test-env.sh` installed
/// beside it, with `EMULATOR_CONNECTION_STRING` and extra variables.
pub async fn run_node(script: &str, conn: &str, env: &[(&str, &str)]) -> PyRun {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/@azure/service-bus").exists(),
        "the JavaScript SDKs are not installed in {}: run scripts/test.sh (or scripts/setup-test-env.sh)",
        dir.display()
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join(script)).current_dir(&dir);
    run_script(cmd, script, conn, env).await
}

async fn run_script(
    mut cmd: tokio::process::Command,
    script: &str,
    conn: &str,
    env: &[(&str, &str)],
) -> PyRun {
    cmd.env("EMULATOR_CONNECTION_STRING", conn)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} finished within 180s"))
        .unwrap_or_else(|e| panic!("{script} runs: {e}"));
    PyRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a script succeeded and printed each `OK <step>`.
pub fn assert_steps(run: &PyRun, steps: &[&str]) {
    assert!(
        run.success,
        "script failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    for s in steps {
        assert!(
            run.stdout.contains(&format!("OK {s}")),
            "step '{s}' missing\nstdout:\n{}",
            run.stdout
        );
    }
}
