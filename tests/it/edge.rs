//! The listening socket's limits: clients that dribble their headers or their body, or say
//! nothing, are cut off within their timeouts while others are served; the connection cap
//! holds; wrong API keys from one address are slowed down.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestApp, ADMIN_KEY};

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// What a cut may take beyond its timeout (timer granularity, a loaded machine).
const SLACK: Duration = Duration::from_secs(4);

async fn app(extra: &str) -> TestApp {
    TestApp::builder()
        .config(&format!(
            "[server]\nheader_timeout = \"2s\"\nbody_timeout = \"2s\"\n{extra}"
        ))
        .build()
        .await
}

/// Writes `chunks` one at a time, `every` apart, while reading what the server says; returns
/// what it said and how long after the first byte it closed the connection.
async fn dribble(
    addr: std::net::SocketAddr,
    chunks: Vec<Vec<u8>>,
    every: Duration,
) -> (String, Duration) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for chunk in chunks {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Then nothing more, but the socket stays open.
        std::future::pending::<()>().await;
    });
    let mut said = Vec::new();
    let limit = HEADER_TIMEOUT.max(BODY_TIMEOUT) + SLACK + Duration::from_secs(5);
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => said.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    assert!(
        closed.is_ok(),
        "the connection was still open after {limit:?}"
    );
    (String::from_utf8_lossy(&said).into_owned(), start.elapsed())
}

#[tokio::test]
async fn clients_that_dribble_or_say_nothing_are_cut_off_while_others_are_served() {
    let app = app("").await;
    let addr: std::net::SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    // A header line every 500 ms, never the blank line that ends them.
    let headers: Vec<Vec<u8>> = std::iter::once(b"GET /healthz HTTP/1.1\r\n".to_vec())
        .chain((0..40).map(|i| format!("X-Slow-{i}: 1\r\n").into_bytes()))
        .collect();
    // Headers at once, then the body a byte every 500 ms.
    let mut body: Vec<Vec<u8>> = vec![format!(
        "POST /v1/events/contoso_CustomerPurchase HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    .into_bytes()];
    body.extend((0..40).map(|_| b" ".to_vec()));
    let slow_headers = tokio::spawn(dribble(addr, headers, Duration::from_millis(500)));
    let slow_body = tokio::spawn(dribble(addr, body, Duration::from_millis(500)));
    let silent = tokio::spawn(dribble(addr, Vec::new(), Duration::from_millis(500)));

    // Meanwhile, others are served at once.
    for _ in 0..5 {
        let (status, _) = app.get("/v1/catalog").await;
        assert_eq!(status, 200);
    }

    let (said, took) = slow_headers.await.unwrap();
    assert!(
        took < HEADER_TIMEOUT + SLACK,
        "slow headers cut after {took:?}: {said}"
    );
    let (said, took) = slow_body.await.unwrap();
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(took < BODY_TIMEOUT + SLACK, "slow body cut after {took:?}");
    let (_, took) = silent.await.unwrap();
    assert!(
        took < HEADER_TIMEOUT + SLACK,
        "a silent client cut after {took:?}"
    );

    // A kept-alive connection left idle is closed too.
    let (said, took) = dribble(
        addr,
        vec![b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()],
        Duration::from_millis(10),
    )
    .await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    assert!(
        took < HEADER_TIMEOUT + SLACK,
        "idle connection cut after {took:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_for_a_place_and_is_then_served() {
    let app = app("max_connections = 2").await;
    let addr: std::net::SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    // Two silent connections take both places.
    let a = TcpStream::connect(addr).await.unwrap();
    let b = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let (status, _) = app.get_public("/healthz").await;
    assert_eq!(status, 200);
    let waited = start.elapsed();
    assert!(
        waited >= HEADER_TIMEOUT - Duration::from_millis(500),
        "served after {waited:?}: the cap let a third connection in"
    );
    drop((a, b));
    app.stop().await;
}

#[tokio::test]
async fn wrong_api_keys_from_one_address_are_answered_429_after_the_limit() {
    let app = app("").await;
    let mut statuses = Vec::new();
    for i in 0..25 {
        let r = app
            .http
            .get(format!("{}/v1/catalog", app.url))
            .bearer_auth(format!("hk_guess_{i}"))
            .send()
            .await
            .unwrap();
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").cloned()));
    }
    assert!(
        statuses[..20].iter().all(|(s, _)| *s == 401),
        "{statuses:?}"
    );
    assert!(
        statuses[20..].iter().all(|(s, r)| *s == 429 && r.is_some()),
        "{statuses:?}"
    );
    // The right key from that address waits too: nothing is learnt by guessing on.
    let r = app
        .http
        .get(format!("{}/v1/catalog", app.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    app.stop().await;
}
