//! The phases that run Herald under load: delivering (one or more instances, one or more
//! subscriptions), draining a backlog, and latency at low load.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::Receiver;
use crate::store::{self, PgWork};
use crate::wrk::{self, Load};
use crate::{ms, Table, CONNECTIONS, EVENT, PATIENCE};

/// Load on instances over `stores` (one per instance, sharing a database when the same),
/// each with `subscriptions` webhook subscriptions: ingest while delivering (beside
/// `ingest_baseline`), deliveries completed during the load, and end to end (beside
/// `delivery_baseline`). With `tail`, a live tail is open on the first instance during the
/// load, and what it got is reported beside what happened on every instance. Returns the
/// end-to-end deliveries/s and the accepted events.
#[allow(clippy::too_many_arguments)]
pub async fn delivering(
    t: &mut Table,
    label: &str,
    stores: &[StoreAt],
    receiver: &Receiver,
    subscriptions: usize,
    load_for: Duration,
    ingest_baseline: f64,
    delivery_baseline: f64,
    pg: Option<&str>,
    tail: bool,
) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let instances: Vec<Herald> = stores
        .iter()
        .map(|s| Herald::start(dir.path(), s))
        .collect();
    instances[0].subscribe(receiver.addr, subscriptions).await;
    // Let the other instances hear of the subscriptions (LISTEN/NOTIFY).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db_before = match pg {
        Some(url) => Some(PgWork::now(url).await),
        None => None,
    };
    let open_tail = if tail {
        let t = crate::console::Tail::open(&instances[0]).await;
        // The other instances hear the tail's ask (LISTEN/NOTIFY).
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some(t)
    } else {
        None
    };
    let cpu_before: Vec<Duration> = instances.iter().map(Herald::cpu).collect();
    let before = receiver.received();
    let started = Instant::now();
    // One wrk per instance, the connections shared out.
    let per = (CONNECTIONS / instances.len() as u32).max(1);
    let loads: Vec<Load> = std::thread::scope(|s| {
        let runs: Vec<_> = instances
            .iter()
            .map(|h| {
                let url = h.url(EVENT);
                s.spawn(move || wrk::post(&url, KEY, per, load_for))
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("wrk")).collect()
    });
    let during = receiver.received() - before;
    let load = combine(&loads);
    let expected = load.ok * subscriptions as u64;
    let rss = instances.iter().map(|h| h.memory().0).fold(0.0, f64::max);
    t.load(
        &format!(
            "{label}: ingest while delivering / {}",
            if pg.is_some() {
                "bare INSERT loop"
            } else {
                "bare handler"
            }
        ),
        &load,
        ingest_baseline,
        rss,
    );
    t.line(format!(
        "| {label}: deliveries completed during the load / deliveries accepted | {during} of {expected} | {:.3}× | |",
        during as f64 / expected.max(1) as f64
    ));
    let last = receiver.wait_for(before + expected, PATIENCE).await;
    let e2e = match last {
        Some(at) => expected as f64 / (at - started).as_secs_f64(),
        None => {
            println!("  (not every delivery arrived within {PATIENCE:?})");
            (receiver.received() - before) as f64 / started.elapsed().as_secs_f64()
        }
    };
    let rss = instances.iter().map(|h| h.memory().0).fold(0.0, f64::max);
    t.rate(
        &format!(
            "{label}: end to end, accepted → received / {}",
            if subscriptions > 1 {
                "one subscription's end to end"
            } else {
                "bare sender"
            }
        ),
        e2e,
        "deliveries/s",
        delivery_baseline,
        rss,
    );
    if let Some(open) = open_tail {
        // Attempts are told once recorded, a moment after the receiver has them.
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Every event accepted and every attempt, on every instance, is one happening.
        let happened = load.ok + expected;
        let (got, missed) = open.close();
        t.line(format!(
            "| {label}: happenings the live tail on one instance got / events accepted and attempts on all instances | {got} of {happened} ({missed} told missed) | {:.3}× | |",
            got as f64 / happened.max(1) as f64
        ));
    }
    if let (Some(url), Some(before)) = (pg, db_before) {
        // Backends report their statistics when idle for a while.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let spent = PgWork::now(url).await.since(before);
        let herald_cpu: Duration = instances
            .iter()
            .zip(&cpu_before)
            .map(|(h, b)| h.cpu().saturating_sub(*b))
            .sum();
        let per = |v: f64| v / expected.max(1) as f64;
        t.line(format!(
            "| {label}: the database per delivery | {:.3} transactions, {:.2} rows written, {:.1} µs PostgreSQL CPU (Herald: {:.1} µs) | | |",
            per(spent.transactions as f64),
            per(spent.rows as f64),
            per(spent.cpu.as_secs_f64() * 1e6),
            per(herald_cpu.as_secs_f64() * 1e6),
        ));
    }
    for h in instances {
        h.stop();
    }
    (e2e, load.ok)
}

/// The sum of several wrk runs at once (latency: the worst of their percentiles).
fn combine(loads: &[Load]) -> Load {
    Load {
        ok: loads.iter().map(|l| l.ok).sum(),
        failed: loads.iter().map(|l| l.failed).sum(),
        elapsed: loads.iter().map(|l| l.elapsed).max().unwrap_or_default(),
        p50: loads.iter().map(|l| l.p50).max().unwrap_or_default(),
        p99: loads.iter().map(|l| l.p99).max().unwrap_or_default(),
    }
}

/// A backlog of `n` due deliveries written while Herald is stopped, then drained: deliveries/s
/// from Herald's start to the last one received (beside `baseline`, the first drain's rate).
pub async fn drain(
    t: &mut Table,
    label: &str,
    at: &StoreAt,
    receiver: &Receiver,
    n: u64,
    baseline: Option<f64>,
) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Herald::start(dir.path(), at);
    h.subscribe(receiver.addr, 1).await;
    h.stop();
    let built = store::build_backlog(at, n).await;
    let before = receiver.received();
    let started = Instant::now();
    let h = Herald::start(dir.path(), at);
    let last = receiver.wait_for(before + n, PATIENCE).await;
    let rate = match last {
        Some(at) => n as f64 / (at - started).as_secs_f64(),
        None => (receiver.received() - before) as f64 / started.elapsed().as_secs_f64(),
    };
    t.rate(
        &format!(
            "{label}: drain of {n} due deliveries (built in {:.1} s) / the first drain",
            built.as_secs_f64()
        ),
        rate,
        "deliveries/s",
        baseline.unwrap_or(rate),
        h.memory().0,
    );
    h.stop();
    rate
}

/// Latency at 100 events/s: from the request's start and from its 202 to the receiver having
/// the event, p50 and p99 over 500 events.
pub async fn low_load(t: &mut Table, at: &StoreAt, receiver: &Receiver) {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Herald::start(dir.path(), at);
    h.subscribe(receiver.addr, 1).await;
    receiver.probe(true);
    let http = reqwest::Client::new();
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..500 {
        tick.tick().await;
        let start = Instant::now();
        let r = http
            .post(h.url(EVENT))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(wrk::PURCHASE)
            .send()
            .await
            .expect("Herald answers");
        let accepted = Instant::now();
        let body: Value = r.json().await.expect("JSON answer");
        sent.push((
            body["id"].as_str().unwrap_or_default().to_owned(),
            start,
            accepted,
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after_202 = Vec::new();
    let mut after_start = Vec::new();
    for (id, start, accepted) in &sent {
        if let Some(arrived) = receiver.arrival(id) {
            after_202.push(arrived.saturating_duration_since(*accepted));
            after_start.push(arrived - *start);
        }
    }
    receiver.probe(false);
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    t.line(format!(
        "| SQLite at 100 events/s: receiver has the event ({} of 500) | after the 202: p50 {:.2} ms, p99 {:.2} ms; after the request started: p50 {:.2} ms, p99 {:.2} ms | | {:.0} MiB |",
        after_202.len(),
        ms(pct(&mut after_202, 0.5)),
        ms(pct(&mut after_202, 0.99)),
        ms(pct(&mut after_start, 0.5)),
        ms(pct(&mut after_start, 0.99)),
        h.memory().0
    ));
    h.stop();
}
