//! Retention under load: SQLite with every window at one minute, ingesting (and delivering to
//! one webhook subscription) until a million events are accepted and at least 210 s have
//! passed, twice — with pruning off, then on. Prints the store's size at intervals (it levels off once pruning catches up), and
//! ingest throughput and p99 over the part of the runs where pruning removes as much as
//! arrives, beside the same part of the run with pruning off.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::Receiver;
use crate::wrk::{self, Load};
use crate::{ms, Table, CONNECTIONS, EVENT};

/// Every retention window, as Herald's configuration says it.
const WINDOW: &str = "1m";
/// Segments that start this long after the run began are measured: the window, and a pass.
const STEADY_AFTER: Duration = Duration::from_secs(75);
/// wrk runs in segments of this length, so the size can be printed between them.
const SEGMENT: Duration = Duration::from_secs(10);
/// A run lasts at least this long, so the size is seen to level off after the window.
const AT_LEAST: Duration = Duration::from_secs(210);

/// One run: the size at each segment's end and the load of the segments after
/// [`STEADY_AFTER`].
struct Run {
    steady: Vec<Load>,
    final_bytes: u64,
    peak_bytes: u64,
    stats: String,
}

/// Runs the phase: `events` events with pruning off, then on. `HERALD_BENCH_PRUNING=on` runs
/// only the run with pruning (to profile it).
pub async fn retention(t: &mut Table, receiver: &Receiver, events: u64) {
    if std::env::var("HERALD_BENCH_PRUNING").is_ok_and(|v| v == "on") {
        run(receiver, events, true).await;
        return;
    }
    let off = run(receiver, events, false).await;
    let on = run(receiver, events, true).await;
    let (off_load, on_load) = (combine(&off.steady), combine(&on.steady));
    println!(
        "  `herald store stats` after the run with pruning:\n{}",
        on.stats
    );
    t.line(format!(
        "| SQLite, {events} events, {WINDOW} retention: store size at the end, pruning / no pruning | {} / {} (peak {}) | {:.3}× | |",
        mib(on.final_bytes),
        mib(off.final_bytes),
        mib(on.peak_bytes),
        on.final_bytes as f64 / off.final_bytes.max(1) as f64
    ));
    let worst = |r: &Run| r.steady.iter().map(|l| l.p99).max().unwrap_or_default();
    t.line(format!(
        "| SQLite ingest while delivering and pruning (after {} s) / same, pruning off | {:.0} req/s, p99 {:.2} ms, worst segment {:.2} ms (off: {:.0} req/s, p99 {:.2} ms, worst {:.2} ms) | {:.3}× (p99 {:.2}×) | |",
        STEADY_AFTER.as_secs(),
        on_load.rate(),
        ms(on_load.p99),
        ms(worst(&on)),
        off_load.rate(),
        ms(off_load.p99),
        ms(worst(&off)),
        on_load.rate() / off_load.rate().max(1e-9),
        ms(on_load.p99) / ms(off_load.p99).max(1e-9),
    ));
}

async fn run(receiver: &Receiver, events: u64, prune: bool) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("retention.db");
    let extra = format!(
        "[retention]\nprune = {prune}\nsucceeded = \"{WINDOW}\"\ndead_lettered = \"{WINDOW}\"\nevents = \"{WINDOW}\"\nidempotency = \"{WINDOW}\"\ninterval = \"5s\"\n"
    );
    let h = Herald::start_with(dir.path(), &StoreAt::Sqlite(db.clone()), &extra);
    h.subscribe(receiver.addr, 1).await;
    println!(
        "  retention run, pruning {}:",
        if prune { "on" } else { "off" }
    );
    let started = Instant::now();
    let (mut accepted, mut steady, mut peak) = (0u64, Vec::new(), 0u64);
    while accepted < events || started.elapsed() < AT_LEAST {
        let at = started.elapsed();
        let url = h.url(EVENT);
        let load = tokio::task::spawn_blocking(move || wrk::post(&url, KEY, CONNECTIONS, SEGMENT))
            .await
            .expect("wrk");
        accepted += load.ok;
        let bytes = size(&db);
        peak = peak.max(bytes);
        println!(
            "    {:>4} s: {accepted:>8} events accepted, store {}, {:.0} req/s, p99 {:.2} ms",
            started.elapsed().as_secs(),
            mib(bytes),
            load.rate(),
            ms(load.p99)
        );
        if at >= STEADY_AFTER {
            steady.push(load);
        }
    }
    let stats = h.store_stats();
    h.stop();
    Run {
        steady,
        final_bytes: size(&db),
        peak_bytes: peak,
        stats,
    }
}

/// The database file and its WAL, in bytes.
fn size(db: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    len(db) + len(Path::new(&wal))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Segments one after another as one load (p99: the median of the segments' p99s, so one
/// checkpoint does not stand for the whole run).
fn combine(loads: &[Load]) -> Load {
    let mut p99: Vec<Duration> = loads.iter().map(|l| l.p99).collect();
    p99.sort();
    let mut p50: Vec<Duration> = loads.iter().map(|l| l.p50).collect();
    p50.sort();
    Load {
        ok: loads.iter().map(|l| l.ok).sum(),
        failed: loads.iter().map(|l| l.failed).sum(),
        elapsed: loads.iter().map(|l| l.elapsed).sum(),
        p50: p50.get(p50.len() / 2).copied().unwrap_or_default(),
        p99: p99.get(p99.len() / 2).copied().unwrap_or_default(),
    }
}
