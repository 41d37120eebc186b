//! The operator console's pages with a million deliveries in the store (phase `console`):
//! each page asked for one after another by a signed-in operator, p50 and p99, beside
//! `GET /healthz` of the same Herald in the same run (a handler that reads nothing), against
//! the target of 50 ms at p99. The store holds `n` deliveries of `n` events as a month of
//! traffic leaves them (most succeeded, some dead-lettered with an attempt each, some held,
//! some waiting for a retry), spread over the last `n` × 2 seconds, plus an hour of activity.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::Row;

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::Receiver;
use crate::{ms, Table};

/// Requests per page.
const ASKS: usize = 200;

pub async fn pages(t: &mut Table, dir: &Path, receiver: &Receiver, n: u64) {
    let at = StoreAt::Sqlite(dir.join("console.db"));
    let h = Herald::start(dir, &at);
    h.subscribe(receiver.addr, 2).await;
    h.stop();
    let built = build(&at, n).await;
    let h = Herald::start(dir, &at);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = sign_in(&http, &h).await;
    let ids = sample_ids(&at).await;
    let healthz = timed(&http, &h.url("/healthz"), None, ASKS).await;
    t.line(format!(
        "| console, {n} deliveries in the store (built in {:.0} s): GET /healthz (baseline) | p50 {:.2} ms, p99 {:.2} ms | 1.000× | {:.0} MiB |",
        built.as_secs_f64(),
        ms(healthz.0),
        ms(healthz.1),
        h.memory().0
    ));
    let pages = [
        ("overview", "/console".to_owned()),
        ("catalog", "/console/catalog".to_owned()),
        ("endpoints", "/console/endpoints".to_owned()),
        (
            "one endpoint",
            format!("/console/endpoints/{}", ids.endpoint),
        ),
        ("deliveries, newest", "/console/deliveries".to_owned()),
        (
            "deliveries, a page deep in the middle",
            format!("/console/deliveries?after=0.{}", ids.middle),
        ),
        (
            "deliveries, succeeded",
            "/console/deliveries?status=succeeded".to_owned(),
        ),
        (
            "deliveries, to one endpoint",
            format!("/console/deliveries?endpoint={}", ids.endpoint),
        ),
        (
            "deliveries, one event name (1 in 100)",
            "/console/deliveries?event=contoso_VendorPaymentPosted".to_owned(),
        ),
        (
            "deliveries, a 10-minute window a week back",
            format!(
                "/console/deliveries?from={}&to={}",
                ids.window.0, ids.window.1
            ),
        ),
        ("dead letters", "/console/dead-letters".to_owned()),
        (
            "one delivery with its attempt",
            format!("/console/deliveries/{}", ids.dead),
        ),
    ];
    for (name, path) in pages {
        let (p50, p99) = timed(&http, &h.url(&path), Some(&cookie), ASKS).await;
        let verdict = if p99 < Duration::from_millis(50) {
            "under"
        } else {
            "OVER"
        };
        t.line(format!(
            "| console: {name} | p50 {:.2} ms, p99 {:.2} ms ({verdict} the 50 ms target) | {:.1}× /healthz p99 | {:.0} MiB |",
            ms(p50),
            ms(p99),
            ms(p99) / ms(healthz.1).max(1e-6),
            h.memory().0
        ));
    }
    h.stop();
}

/// A live tail open on an instance during a load: what it got.
pub struct Tail {
    happenings: std::sync::Arc<std::sync::atomic::AtomicU64>,
    lagged: std::sync::Arc<std::sync::atomic::AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Tail {
    /// Signs in on `h` and opens its live tail, read as fast as it comes.
    pub async fn open(h: &Herald) -> Tail {
        use std::sync::atomic::{AtomicU64, Ordering};
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let cookie = sign_in(&http, h).await;
        let mut stream = http
            .get(h.url("/console/tail/stream"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("the live tail");
        assert_eq!(stream.status(), 200, "the live tail opens");
        let (happenings, lagged) = (
            std::sync::Arc::new(AtomicU64::new(0)),
            std::sync::Arc::new(AtomicU64::new(0)),
        );
        let (h2, l2) = (happenings.clone(), lagged.clone());
        let reader = tokio::spawn(async move {
            let mut rest = String::new();
            let mut lagging = false;
            while let Ok(Some(chunk)) = stream.chunk().await {
                rest.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = rest.find('\n') {
                    let line: String = rest.drain(..=end).collect();
                    let line = line.trim_end();
                    if line == "event: happening" {
                        h2.fetch_add(1, Ordering::Relaxed);
                    } else if line == "event: lagged" {
                        lagging = true;
                    } else if let Some(n) = line.strip_prefix("data: ").filter(|_| lagging) {
                        l2.fetch_add(n.trim().parse().unwrap_or(0), Ordering::Relaxed);
                        lagging = false;
                    }
                }
            }
        });
        Tail {
            happenings,
            lagged,
            reader,
        }
    }

    /// Happenings received, and those the tail said it missed.
    pub fn close(self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        self.reader.abort();
        (
            self.happenings.load(Ordering::Relaxed),
            self.lagged.load(Ordering::Relaxed),
        )
    }
}

/// Signs in through the form, as a browser does; returns the session cookie.
async fn sign_in(http: &reqwest::Client, h: &Herald) -> String {
    let form = http
        .get(h.url("/console/sign-in"))
        .send()
        .await
        .expect("sign-in page");
    let pre = cookie_of(&form, "herald_sign_in");
    let html = form.text().await.expect("page");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the form's token")
        .to_owned();
    let done = http
        .post(h.url("/console/sign-in"))
        .header("cookie", format!("herald_sign_in={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("csrf", csrf.as_str()),
                    ("api_key", KEY),
                    ("next", "/console"),
                ])
                .finish(),
        )
        .send()
        .await
        .expect("signed in");
    assert_eq!(done.status(), 303, "signing in redirects");
    format!("herald_session={}", cookie_of(&done, "herald_session"))
}

fn cookie_of(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// p50 and p99 of `asks` GETs of `url`, one after another (after a few to warm up).
async fn timed(
    http: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    asks: usize,
) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(asks);
    for i in 0..asks + 5 {
        let mut r = http.get(url);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        let start = Instant::now();
        let answer = r.send().await.expect("answer");
        let status = answer.status();
        let body = answer.bytes().await.expect("body");
        assert!(
            status.is_success(),
            "{url}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if i >= 5 {
            took.push(start.elapsed());
        }
    }
    took.sort();
    (
        took[took.len() / 2],
        took[(took.len() * 99).div_ceil(100) - 1],
    )
}

/// What the pages are asked about.
struct Ids {
    endpoint: String,
    middle: String,
    dead: String,
    window: (String, String),
}

async fn sample_ids(at: &StoreAt) -> Ids {
    let pool = pool(at).await;
    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .expect(sql)
                .get::<String, _>(0)
        }
    };
    let endpoint = one("SELECT id FROM endpoints ORDER BY name LIMIT 1").await;
    let middle = one("SELECT id FROM deliveries ORDER BY id LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM deliveries)").await;
    let dead = one("SELECT id FROM deliveries WHERE status = 'dead_lettered' LIMIT 1").await;
    let week = time::OffsetDateTime::now_utc() - time::Duration::days(7);
    let f = |t: time::OffsetDateTime| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    };
    pool.close().await;
    Ids {
        endpoint,
        middle,
        dead,
        window: (f(week), f(week + time::Duration::minutes(10))),
    }
}

async fn pool(at: &StoreAt) -> sqlx::SqlitePool {
    let StoreAt::Sqlite(path) = at else {
        panic!("the console phase runs on SQLite")
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("sqlite")
}

/// Writes `n` events and their deliveries, time-ordered ids (UUIDv7 layout: the millisecond
/// first) two seconds apart going back from now, alternating between the two endpoints;
/// states: 1 in 20 dead-lettered (with its attempt), 1 in 50 held, 1 in 100 waiting for a
/// retry an hour from now, the rest succeeded. 1 event in 100 is a vendor payment.
async fn build(at: &StoreAt, n: u64) -> Duration {
    let started = Instant::now();
    let pool = pool(at).await;
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut tx = pool.begin().await.expect("begin");
    let subs: Vec<(String, String)> =
        sqlx::query("SELECT id, endpoint_id FROM subscriptions ORDER BY name")
            .fetch_all(&mut *tx)
            .await
            .expect("subscriptions")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(subs.len(), 2);
    // An id of the `prefix` kind made at `ms`, with `i` as its random part.
    let id = |prefix: &str| format!("printf('{prefix}%012x7%019x', ?2 - (?1 - i) * 2000, i)");
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, delivery_count)
         SELECT {}, CASE WHEN i % 100 = 7 THEN 'contoso_VendorPaymentPosted' ELSE 'contoso_CustomerPurchase' END,
           'contoso', ?3, 'bench', 'bench', ?2 - (?1 - i) * 2000, 1 FROM n",
        id("evt_")
    ))
    .bind(n as i64)
    .bind(now)
    .bind(crate::wrk::PURCHASE)
    .execute(&mut *tx)
    .await
    .expect("events");
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at, last_error, created_at, updated_at, finished_at)
         SELECT {}, {}, CASE WHEN i % 2 = 0 THEN ?3 ELSE ?5 END, CASE WHEN i % 2 = 0 THEN ?4 ELSE ?6 END,
           CASE WHEN i % 20 = 3 THEN 'dead_lettered' WHEN i % 50 = 11 THEN 'held' WHEN i % 100 = 13 THEN 'pending' ELSE 'succeeded' END,
           CASE WHEN i % 100 = 13 THEN 2 ELSE 1 END,
           CASE WHEN i % 100 = 13 THEN ?2 + 3600000 ELSE ?2 - (?1 - i) * 2000 + 40 END,
           CASE WHEN i % 20 = 3 THEN 'receiver answered 400' END,
           ?2 - (?1 - i) * 2000, ?2 - (?1 - i) * 2000 + 40,
           CASE WHEN i % 20 = 3 OR (i % 50 <> 11 AND i % 100 <> 13) THEN ?2 - (?1 - i) * 2000 + 40 END
         FROM n",
        id("msg_"),
        id("evt_")
    ))
    .bind(n as i64)
    .bind(now)
    .bind(&subs[0].0)
    .bind(&subs[0].1)
    .bind(&subs[1].0)
    .bind(&subs[1].1)
    .execute(&mut *tx)
    .await
    .expect("deliveries");
    sqlx::query(
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
         SELECT id, 1, created_at, 12, 'permanent', 400, 'receiver answered 400',
           '{\"target\":\"POST http://127.0.0.1/hook\",\"headers\":[[\"content-type\",\"application/cloudevents+json\"],[\"webhook-signature\",\"v1,••••••\"]],\"response\":\"HTTP 400 Bad Request\"}'
         FROM deliveries WHERE status = 'dead_lettered'",
    )
    .execute(&mut *tx)
    .await
    .expect("attempts");
    let minute = now / 60_000;
    for (_, ep) in &subs {
        sqlx::query(
            "WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i + 1 < 60)
             INSERT INTO activity (minute, endpoint_id, events, succeeded, failed, dead_lettered, total_ms, max_ms)
             SELECT ?1 - i, ?2, 0, 1500, 80, 75, 1580 * 12, 480 FROM m",
        )
        .bind(minute)
        .bind(ep)
        .execute(&mut *tx)
        .await
        .expect("activity");
    }
    sqlx::query(
        "WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i + 1 < 60)
         INSERT INTO activity (minute, endpoint_id, events) SELECT ?1 - i, '', 1580 FROM m",
    )
    .bind(minute)
    .execute(&mut *tx)
    .await
    .expect("activity");
    tx.commit().await.expect("commit");
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    pool.close().await;
    started.elapsed()
}
