//! Emulator throughput, measured: messages per second through a queue (send, then receive in
//! peek-lock with accept), events per second into an event hub, the same send loop against a
//! bare fe2o3-amqp acceptor on loopback as the baseline, and start-up time to the first
//! accepted connection. Run: `cargo bench -p local-emulator --bench throughput`.

use fe2o3_amqp::acceptor::{ConnectionAcceptor, LinkAcceptor, LinkEndpoint, SessionAcceptor};
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const N: usize = 5_000;
const PAYLOAD: &str = "{\"event\":\"contoso_order_placed\",\"id\":\"0190f0aa-0000-7000-8000-000000000000\",\"amount\":42}";

async fn send_loop(url: &str, target: &str) -> anyhow::Result<Duration> {
    let mut conn = Connection::open("bench-client", url).await?;
    let mut session = Session::begin(&mut conn).await?;
    let mut sender = Sender::attach(&mut session, "bench-sender", target).await?;
    let t = Instant::now();
    for _ in 0..N {
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

/// A bare fe2o3-amqp acceptor that accepts every message of one link.
async fn baseline() -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut conn = ConnectionAcceptor::new("baseline").accept(stream).await?;
        let mut session = SessionAcceptor::new().accept(&mut conn).await?;
        if let LinkEndpoint::Receiver(mut r) = LinkAcceptor::new().accept(&mut session).await? {
            while let Ok(d) = r.recv::<Body<Value>>().await {
                r.accept(&d).await?;
            }
        }
        anyhow::Ok(())
    });
    let took = send_loop(&format!("amqp://{addr}"), "q").await?;
    server.abort();
    Ok(took)
}

fn rate(d: Duration) -> f64 {
    N as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let t = Instant::now();
    let emu = local_emulator::Emulator::builder()
        .amqp_port(0)
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
    let sent = send_loop(&url, "queue1").await?;
    let received = receive_loop(&url, "queue1").await?;
    let events = send_loop(&url, "eh1").await?;
    let base = baseline().await?;

    println!(
        "messages per run: {N}, payload {} bytes, one link, each send awaits its disposition",
        PAYLOAD.len()
    );
    println!(
        "start-up to first accepted connection: {:.2} ms",
        startup.as_secs_f64() * 1000.0
    );
    println!("queue send:            {:>9.0} msg/s", rate(sent));
    println!("queue receive+accept:  {:>9.0} msg/s", rate(received));
    println!("event hub send:        {:>9.0} events/s", rate(events));
    println!(
        "fe2o3-amqp baseline:   {:>9.0} msg/s (bare acceptor, same send loop)",
        rate(base)
    );
    println!("queue send / baseline: {:.2}", rate(sent) / rate(base));
    emu.shutdown().await;
    Ok(())
}
