//! Emulator throughput, measured: messages per second into a queue and back out (peek-lock,
//! accept), events per second into an event hub, the same pre-settled send loop against a
//! bare fe2o3-amqp acceptor on loopback as the baseline, one sender awaiting each disposition,
//! start-up time to the first accepted connection, and the official SDKs' view: the Python
//! client sending one at a time and in batches, receiving with peek-lock, receiving sessions;
//! the JavaScript client sending one at a time (`benches/clients.py`, `tests/node/bench.mjs`;
//! the SDKs come from `scripts/setup-test-env.sh`).
//! Run: `cargo bench -p local-emulator --bench throughput`.

use fe2o3_amqp::acceptor::{ConnectionAcceptor, LinkAcceptor, LinkEndpoint, SessionAcceptor};
use fe2o3_amqp::types::definitions::SenderSettleMode;
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const N: usize = 5_000;
const UNSETTLED_N: usize = 200;
const PAYLOAD: &str =
    "{\"event\":\"contoso_order_placed\",\"id\":\"0190f0aa-0000-7000-8000-000000000000\",\"amount\":42}";

/// Sends `n` messages; pre-settled ones do not wait for the broker.
async fn send_loop(url: &str, target: &str, n: usize, settled: bool) -> anyhow::Result<Duration> {
    let mut conn = Connection::open("bench-client", url).await?;
    let mut session = Session::begin(&mut conn).await?;
    let mode = if settled {
        SenderSettleMode::Settled
    } else {
        SenderSettleMode::Unsettled
    };
    let mut sender = Sender::builder()
        .name("bench-sender")
        .target(target)
        .sender_settle_mode(mode)
        .attach(&mut session)
        .await?;
    let t = Instant::now();
    for _ in 0..n {
        sender.send(PAYLOAD.to_owned()).await?;
    }
    let took = t.elapsed();
    sender.close().await?;
    session.end().await?;
    conn.close().await?;
    Ok(took)
}

async fn receive_loop(url: &str, source: &str) -> anyhow::Result<Duration> {
    let mut conn = Connection::open("bench-receiver", url).await?;
    let mut session = Session::begin(&mut conn).await?;
    let mut receiver = Receiver::attach(&mut session, "bench-receiver", source).await?;
    let t = Instant::now();
    for _ in 0..N {
        let d = receiver.recv::<Body<Value>>().await?;
        receiver.accept(&d).await?;
    }
    let took = t.elapsed();
    receiver.close().await?;
    session.end().await?;
    conn.close().await?;
    Ok(took)
}

/// Waits (bounded) until `done` holds; returns the time since `start`.
async fn until(start: Instant, mut done: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    for _ in 0..6_000 {
        if done() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("not done within 30s")
}

/// A bare fe2o3-amqp acceptor that takes one link; time until it has received `N` messages.
async fn baseline() -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut conn = ConnectionAcceptor::new("baseline").accept(stream).await?;
        let mut session = SessionAcceptor::new().accept(&mut conn).await?;
        if let LinkEndpoint::Receiver(mut r) = LinkAcceptor::new().accept(&mut session).await? {
            for _ in 0..N {
                let d = r.recv::<Body<Value>>().await?;
                r.accept(&d).await?;
            }
            let _ = tx.send(());
        }
        anyhow::Ok(())
    });
    let t = Instant::now();
    let url = format!("amqp://{addr}");
    let client = tokio::spawn(async move { send_loop(&url, "q", N, true).await });
    tokio::time::timeout(Duration::from_secs(60), rx).await??;
    let took = t.elapsed();
    client.abort();
    server.abort();
    Ok(took)
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Runs one of the SDK scripts and reads the JSON object of figures it prints.
async fn client_figures(
    program: &std::path::Path,
    script: &std::path::Path,
    conn: &str,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(program)
            .arg(script)
            .current_dir(script.parent().unwrap_or(std::path::Path::new(".")))
            .env("EMULATOR_CONNECTION_STRING", conn)
            .env("BENCH_MESSAGES", "2000")
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let last = line.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(last)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = Instant::now();
    let emu = local_emulator::Emulator::builder()
        .amqp_port(0)
        .config_file(root.join("tests/config/features.json"))
        .topology(local_emulator::broker::Topology::builtin())
        .start()
        .await?;
    let mut s = TcpStream::connect(emu.amqp_addr()).await?;
    s.write_all(b"AMQP\x00\x01\x00\x00").await?;
    let mut head = [0u8; 8];
    s.read_exact(&mut head).await?;
    let startup = t.elapsed();
    drop(s);

    let url = format!(
        "amqp://RootManageSharedAccessKey:SAS_KEY_VALUE@{}",
        emu.amqp_addr()
    );
    let t = Instant::now();
    send_loop(&url, "queue1", N, true).await?;
    let sent = until(t, || emu.peek("queue1", N).len() >= N).await?;
    let received = receive_loop(&url, "queue1").await?;
    let t = Instant::now();
    send_loop(&url, "eh1/Partitions/0", N, true).await?;
    let events = until(t, || emu.partition_len("eh1", 0) >= N).await?;
    let unsettled = tokio::time::timeout(
        Duration::from_secs(60),
        send_loop(&url, "herald-events", UNSETTLED_N, false),
    )
    .await??;
    // The SDK clients before the baseline: fe2o3's connection tasks outlive the aborted
    // baseline and would take CPU from what follows.
    let python = std::env::var_os("HERALD_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../.venv/bin/python"));
    let mut sdk = serde_json::Map::new();
    let conn = emu.connection_string();
    match client_figures(&python, &root.join("benches/clients.py"), &conn).await {
        Ok(f) => sdk.extend(f),
        Err(e) => println!("Python SDK figures skipped ({e}); run scripts/setup-test-env.sh"),
    }
    match client_figures(
        std::path::Path::new("node"),
        &root.join("tests/node/bench.mjs"),
        &conn,
    )
    .await
    {
        Ok(f) => sdk.extend(f),
        Err(e) => println!("JavaScript SDK figures skipped ({e}); run scripts/setup-test-env.sh"),
    }
    let base = baseline().await?;

    println!(
        "{N} messages of {} bytes, one link each, pre-settled sends, in-memory state",
        PAYLOAD.len()
    );
    println!(
        "start-up to first accepted connection: {:.2} ms",
        startup.as_secs_f64() * 1000.0
    );
    println!(
        "queue send (until all enqueued): {:>9.0} msg/s",
        rate(N, sent)
    );
    println!(
        "queue receive, peek-lock + accept: {:>7.0} msg/s",
        rate(N, received)
    );
    println!(
        "event hub send (until all stored): {:>7.0} events/s",
        rate(N, events)
    );
    println!(
        "fe2o3-amqp acceptor baseline:    {:>9.0} msg/s (same client loop, acceptor accepts each)",
        rate(N, base)
    );
    println!(
        "queue send / baseline: {:.2}",
        rate(N, sent) / rate(N, base)
    );
    println!(
        "one sender awaiting each disposition ({UNSETTLED_N} msgs): {:.0} msg/s (5 ms disposition hold-back, see README)",
        rate(UNSETTLED_N, unsettled)
    );

    let base_rate = rate(N, base);
    println!("official SDKs, 2000 messages each, beside the fe2o3-amqp acceptor baseline:");
    for (name, v) in &sdk {
        let r = v.as_f64().unwrap_or(0.0);
        println!(
            "  {name:<36} {r:>9.0} msg/s   {:.3}x baseline",
            r / base_rate
        );
    }
    emu.shutdown().await;
    Ok(())
}
