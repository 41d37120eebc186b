//! Bad input over the wire: the offender's connection or link closes with an AMQP error and
//! everyone else is still served.

use crate::support::{amqp, run_python, start};
use local_emulator::server::codec::Value;
use local_emulator::server::frame::{self, read_frame, AMQP};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn opened(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    s.write_all(b"AMQP\x00\x01\x00\x00").await.expect("header");
    let mut head = [0u8; 8];
    s.read_exact(&mut head).await.expect("header back");
    assert_eq!(&head, b"AMQP\x00\x01\x00\x00");
    let mut out = Vec::new();
    frame::write_frame(&mut out, AMQP, 0, &frame::open("raw-test", 65_536, 10), &[]);
    s.write_all(&out).await.expect("open");
    let f = read_frame(&mut s, 1 << 20).await.expect("open back");
    assert_eq!(
        f.body.and_then(|b| b.descriptor_code()),
        Some(frame::code::OPEN)
    );
    s
}

/// Reads frames until `close` and returns its error condition.
async fn close_condition(s: &mut TcpStream) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        for _ in 0..100 {
            let f = read_frame(s, 1 << 20).await.expect("frame before close");
            if let Some(b) = f
                .body
                .filter(|b| b.descriptor_code() == Some(frame::code::CLOSE))
            {
                return b.field(0).field(0).as_str().unwrap_or_default().to_owned();
            }
        }
        panic!("no close within 100 frames")
    })
    .await
    .expect("close arrives within 5s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_closes_that_connection_with_a_decode_error_and_others_are_served() {
    let emu = start().await;
    let mut bystander = opened(emu.amqp_addr().port()).await;
    let mut s = opened(emu.amqp_addr().port()).await;
    s.write_all(&[0, 0, 0, 12, 2, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc])
        .await
        .expect("garbage");
    assert_eq!(close_condition(&mut s).await, "amqp:decode-error");
    amqp::send(&emu, "queue1", &["still here"])
        .await
        .expect("others are served");
    let mut out = Vec::new();
    frame::write_frame(&mut out, AMQP, 0, &frame::begin(0, 0, 100), &[]);
    bystander.write_all(&out).await.expect("begin");
    let f = read_frame(&mut bystander, 1 << 20)
        .await
        .expect("begin back");
    assert_eq!(
        f.body.and_then(|b| b.descriptor_code()),
        Some(frame::code::BEGIN)
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_whose_string_runs_past_its_frame_is_answered_with_a_decode_error_and_the_socket_closed(
) {
    let emu = start().await;
    let mut s = TcpStream::connect(emu.amqp_addr()).await.expect("connects");
    s.write_all(b"AMQP\x00\x01\x00\x00").await.expect("header");
    let mut head = [0u8; 8];
    s.read_exact(&mut head).await.expect("header back");
    // An open (descriptor 0x10) whose container id says 200 bytes and has 3.
    let body = [
        0x00, 0x53, 0x10, 0xc0, 0x06, 0x01, 0xa1, 0xc8, b'a', b'b', b'c',
    ];
    let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend([2, AMQP, 0, 0]);
    out.extend(body);
    s.write_all(&out).await.expect("bad open");
    let f = read_frame(&mut s, 1 << 20).await.expect("open back");
    assert_eq!(
        f.body.and_then(|b| b.descriptor_code()),
        Some(frame::code::OPEN)
    );
    assert_eq!(close_condition(&mut s).await, "amqp:decode-error");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the socket closes within 5s");
    assert!(read.is_ok_and(|n| n == 0), "nothing after the close");
    amqp::send(&emu, "queue1", &["still here"])
        .await
        .expect("others are served");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_over_the_negotiated_size_closes_the_connection_with_a_framing_error() {
    let emu = start().await;
    let mut s = opened(emu.amqp_addr().port()).await;
    let size: u32 = 64 * 1024 * 1024;
    let mut head = size.to_be_bytes().to_vec();
    head.extend([2, 0, 0, 0]);
    s.write_all(&head).await.expect("oversize header");
    assert_eq!(
        close_condition(&mut s).await,
        "amqp:connection:framing-error"
    );
    amqp::send(&emu, "queue1", &["still here"])
        .await
        .expect("others are served");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_missing_entity_is_refused_with_not_found() {
    let emu = start().await;
    let run = run_python(
        "servicebus_refused.py",
        &emu.connection_string(),
        &[("EMULATOR_QUEUE", "no-such-queue")],
    )
    .await;
    assert!(
        run.success,
        "expected a refusal\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.to_lowercase().contains("could not be found")
            || run.stdout.contains("not-found"),
        "{}",
        run.stdout
    );
    amqp::send(&emu, "queue1", &["still here"])
        .await
        .expect("others are served");
    assert_eq!(emu.peek("queue1", 10).len(), 1);
    let _ = Value::Null;
    emu.shutdown().await;
}

/// Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz targets' entry points:
/// every input that once found a problem, and the seeds, must run clean.
#[test]
fn fuzz_corpora_replay_without_a_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    type Target = fn(&[u8]);
    let targets: [(&str, Target); 3] = [
        ("frames", local_emulator::fuzzing::frames),
        ("codec", local_emulator::fuzzing::codec),
        ("sql", local_emulator::fuzzing::sql),
    ];
    for (name, run) in targets {
        let mut n = 0;
        for entry in std::fs::read_dir(root.join(name)).expect("corpus folder") {
            let path = entry.expect("corpus entry").path();
            if std::env::var_os("FUZZ_REPLAY_VERBOSE").is_some() {
                eprintln!("replaying {}", path.display());
            }
            run(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
        assert!(n > 0, "the {name} corpus is empty");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_coordinator_link_is_refused_as_not_implemented() {
    let emu = start().await;
    let mut s = opened(emu.amqp_addr().port()).await;
    let mut out = Vec::new();
    frame::write_frame(&mut out, AMQP, 0, &frame::begin(0, 0, 100), &[]);
    let coordinator = Value::described_list(0x30, vec![Value::Null]);
    let attach = Value::described_list(
        frame::code::ATTACH,
        vec![
            Value::str("txn"),
            Value::Uint(0),
            Value::Bool(false),
            Value::Null,
            Value::Null,
            Value::described_list(frame::code::SOURCE, vec![Value::str("me")]),
            coordinator,
        ],
    );
    frame::write_frame(&mut out, AMQP, 0, &attach, &[]);
    s.write_all(&out).await.expect("begin and attach");
    let condition = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let f = read_frame(&mut s, 1 << 20).await.expect("frame");
            if let Some(b) = f
                .body
                .filter(|b| b.descriptor_code() == Some(frame::code::DETACH))
            {
                return b.field(2).field(0).as_str().unwrap_or_default().to_owned();
            }
        }
    })
    .await
    .expect("detach within 5s");
    assert_eq!(condition, "amqp:not-implemented");
    emu.shutdown().await;
}
