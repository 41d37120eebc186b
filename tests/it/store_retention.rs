//! Retention in the store contract, on SQLite and PostgreSQL: what pruning removes and what it
//! never touches, idempotency windows, two instances pruning at once, and (SQLite) the space
//! given back to the file system.

use std::sync::Arc;
use std::time::Duration;

use herald::model::*;
use herald::store::*;
use time::OffsetDateTime;

use crate::store_contract::{
    contract, endpoint, lease_req, new_event, now, postgres, result, sqlite, subscription,
    TestStore,
};

/// Cutoffs that make everything finished expire, except dead letters (kept an hour more).
fn all_but_dead_letters() -> Cutoffs {
    let later = now() + Duration::from_secs(3600);
    Cutoffs {
        succeeded: later,
        dead_lettered: now() - Duration::from_secs(3600),
        events: later,
        idempotency: later,
    }
}

/// Stores `n` events of `sub` and takes each delivery to `next` (leased, then recorded).
async fn finished(s: &dyn Store, sub: &Subscription, n: usize, next: NextState) -> Vec<EventId> {
    let events: Vec<NewEvent> = (0..n).map(|_| new_event(sub, None)).collect();
    let ids = events.iter().map(|e| e.event.id).collect();
    s.ingest(events).await.unwrap();
    let owner = s.lease_owner();
    let skip: Vec<EndpointId> = Vec::new();
    let leased = s
        .lease(lease_req(&owner, &skip, n as u32, n as u32))
        .await
        .unwrap();
    assert_eq!(leased.len(), n);
    let results: Vec<_> = leased.iter().map(|d| result(d, next.clone())).collect();
    s.record(&owner, None, &results).await.unwrap();
    ids
}

/// Runs pruning batches of `limit` until one removes nothing; what they removed in all.
async fn prune_all(s: &dyn Store, cutoffs: &Cutoffs, limit: u32) -> Removed {
    let mut removed = Removed::default();
    loop {
        let step = s.prune_deliveries(cutoffs, limit).await.unwrap();
        removed += step;
        if step.deliveries == 0 {
            break;
        }
    }
    let mut after: Option<String> = None;
    loop {
        let scan = s
            .prune_events(cutoffs, after.as_deref(), limit)
            .await
            .unwrap();
        removed.events += scan.removed;
        match scan.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    removed
}

pub async fn pruning_removes_finished_work_and_never_what_is_still_going(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let succeeded = finished(s, &sub, 3, NextState::Succeeded).await;
    let dead = finished(s, &sub, 2, NextState::DeadLettered("gave up".into())).await;
    let retrying = finished(
        s,
        &sub,
        2,
        NextState::RetryAt(now() - Duration::from_secs(60)),
    )
    .await;
    // Pending (never sent) and in flight (leased, no result yet).
    let pending = new_event(&sub, None);
    s.ingest(vec![pending.clone()]).await.unwrap();
    let in_flight = new_event(&sub, None);
    s.ingest(vec![in_flight.clone()]).await.unwrap();
    let owner = s.lease_owner();
    let skip: Vec<EndpointId> = Vec::new();
    let leased = s.lease(lease_req(&owner, &skip, 1, 1)).await.unwrap();
    assert_eq!(leased.len(), 1);
    // An event nobody subscribed to.
    let mut lonely = new_event(&sub, None);
    lonely.deliveries.clear();
    s.ingest(vec![lonely.clone()]).await.unwrap();
    assert_eq!(
        s.records().retention_state().await.unwrap().horizons,
        Horizons::default()
    );

    let removed = prune_all(s, &all_but_dead_letters(), 2).await;
    assert_eq!(
        removed,
        Removed {
            deliveries: 3,
            attempts: 3,
            events: 4
        },
        "the succeeded deliveries, their attempts, their events and the lonely event"
    );
    for id in &succeeded {
        assert!(
            s.records().event(&Scope::All, *id).await.unwrap().is_none(),
            "{id} is pruned"
        );
    }
    assert!(s
        .records()
        .event(&Scope::All, lonely.event.id)
        .await
        .unwrap()
        .is_none());
    for id in dead.iter().chain(&retrying) {
        let (_, deliveries) = s
            .records()
            .event(&Scope::All, *id)
            .await
            .unwrap()
            .expect("kept");
        assert_eq!(deliveries.len(), 1);
    }
    for e in [&pending, &in_flight] {
        assert!(
            s.records()
                .event(&Scope::All, e.event.id)
                .await
                .unwrap()
                .is_some(),
            "unfinished work is kept"
        );
    }
    let horizons = s.records().retention_state().await.unwrap().horizons;
    assert!(horizons.deliveries.is_some() && horizons.events.is_some());
    assert_eq!(
        horizons.dead_letters, None,
        "no dead letter was removed yet"
    );
    // Nothing left to remove under the same cutoffs.
    assert_eq!(
        prune_all(s, &all_but_dead_letters(), 100).await,
        Removed::default()
    );

    // Dead letters stay replayable inside their window; once it is over they go too.
    let cutoffs = Cutoffs {
        dead_lettered: now() + Duration::from_secs(3600),
        ..all_but_dead_letters()
    };
    let removed = prune_all(s, &cutoffs, 100).await;
    assert_eq!((removed.deliveries, removed.events), (2, 2));
    assert!(s
        .records()
        .retention_state()
        .await
        .unwrap()
        .horizons
        .dead_letters
        .is_some());
    for e in [&pending, &in_flight] {
        assert!(s
            .records()
            .event(&Scope::All, e.event.id)
            .await
            .unwrap()
            .is_some());
    }
    for id in &retrying {
        assert!(
            s.records().event(&Scope::All, *id).await.unwrap().is_some(),
            "a retrying delivery is never pruned"
        );
    }
    let counts: std::collections::HashMap<_, _> =
        s.records().counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get(&DeliveryStatus::Pending), Some(&3));
    assert_eq!(counts.get(&DeliveryStatus::InFlight), Some(&1));
    assert_eq!(counts.get(&DeliveryStatus::Succeeded), None);
}

pub async fn an_idempotency_key_is_honoured_inside_its_window_and_free_after_it(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    // Accepted 25 hours ago: outside the store's 24-hour window.
    let mut old = new_event(&sub, Some(("k-old", 1)));
    let mut event: Event = (*old.event).clone();
    event.received_at = now() - Duration::from_secs(25 * 3600);
    old.event = Arc::new(OutgoingEvent::new(event));
    let recent = new_event(&sub, Some(("k-new", 1)));
    s.ingest(vec![old.clone(), recent.clone()]).await.unwrap();

    let again = s
        .ingest(vec![
            new_event(&sub, Some(("k-old", 2))),
            new_event(&sub, Some(("k-new", 1))),
        ])
        .await
        .unwrap();
    assert!(
        matches!(again[0], IngestOutcome::Created { id, .. } if id != old.event.id),
        "a key past its window makes a new event: {again:?}"
    );
    assert_eq!(
        again[1],
        IngestOutcome::Replayed {
            id: recent.event.id,
            deliveries: 1
        }
    );
    // The new holder of the old key now answers for it.
    let third = s
        .ingest(vec![new_event(&sub, Some(("k-old", 2)))])
        .await
        .unwrap();
    assert!(
        matches!(third[0], IngestOutcome::Replayed { .. }),
        "{third:?}"
    );

    // Pruning keeps an event whose key is still honoured, even past the events cutoff.
    let cutoffs = Cutoffs {
        idempotency: now() - Duration::from_secs(24 * 3600),
        ..all_but_dead_letters()
    };
    let mut lonely = new_event(&sub, Some(("k-lonely", 1)));
    lonely.deliveries.clear();
    s.ingest(vec![lonely.clone()]).await.unwrap();
    prune_all(s, &cutoffs, 10).await;
    assert!(s
        .records()
        .event(&Scope::All, lonely.event.id)
        .await
        .unwrap()
        .is_some());
    prune_all(s, &all_but_dead_letters(), 10).await;
    assert!(s
        .records()
        .event(&Scope::All, lonely.event.id)
        .await
        .unwrap()
        .is_none());
}

pub async fn two_instances_pruning_at_once_remove_each_row_once(t: TestStore) {
    let s = t.store.clone();
    let ep = endpoint(s.as_ref(), "ep").await;
    let sub = subscription(s.as_ref(), ep.id, "sub").await;
    for _ in 0..4 {
        finished(s.as_ref(), &sub, 500, NextState::Succeeded).await;
    }
    let other = open(&t.settings).await.expect("a second instance opens");
    let cutoffs = all_but_dead_letters();
    let (a, b) = tokio::join!(
        prune_all(s.as_ref(), &cutoffs, 50),
        prune_all(other.as_ref(), &cutoffs, 50)
    );
    let mut total = a;
    total += b;
    assert_eq!(
        total,
        Removed {
            deliveries: 2000,
            attempts: 2000,
            events: 2000
        },
        "{a:?} + {b:?}"
    );
    let stats = s.stats().await.unwrap();
    let table = |name: &str| stats.tables.iter().find(|t| t.table == name).cloned();
    assert!(table("deliveries").is_some_and(|t| t.bytes > 0));
    assert!(stats.total_bytes > 0);
}

pub async fn a_pass_is_kept_for_every_instance_to_read(t: TestStore) {
    let s = t.store.as_ref();
    assert_eq!(s.records().retention_state().await.unwrap().last_pass, None);
    let report = PassReport {
        instance: "i-1".into(),
        started_at: OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap(),
        duration_ms: 12,
        removed: Removed {
            deliveries: 3,
            attempts: 4,
            events: 5,
        },
        reclaimed_bytes: 4096,
    };
    s.records().save_pass(&report).await.unwrap();
    assert_eq!(
        s.records().retention_state().await.unwrap().last_pass,
        Some(report)
    );
}

pub async fn pruning_beside_ingestion_removes_only_what_expired(t: TestStore) {
    let s = t.store.clone();
    let ep = endpoint(s.as_ref(), "ep").await;
    let sub = subscription(s.as_ref(), ep.id, "sub").await;
    finished(s.as_ref(), &sub, 600, NextState::Succeeded).await;
    // Ingestion goes on while pruning runs (on SQLite the steps ride in its group commits).
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (s, sub) = (s.clone(), sub.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    s.ingest(vec![new_event(&sub, None), new_event(&sub, None)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let removed = prune_all(s.as_ref(), &all_but_dead_letters(), 25).await;
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!((removed.deliveries, removed.attempts), (600, 600));
    let counts: std::collections::HashMap<_, _> =
        s.records().counts().await.unwrap().into_iter().collect();
    assert_eq!(
        counts.get(&DeliveryStatus::Pending),
        Some(&400),
        "{counts:?}"
    );
    assert_eq!(counts.get(&DeliveryStatus::Succeeded), None);
}

/// An id is made a moment apart from the time its row stores, and may fall in a later
/// millisecond: the horizons still cover every row removed, so looking it up by its id says
/// "pruned" (410), not "never existed" (404).
pub async fn the_horizons_cover_the_ids_of_what_was_removed(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let mut new = new_event(&sub, None);
    let stored = new.event.received_at;
    let stored_ms = (stored.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut event = new.event.event.clone();
    event.id = EventId::first_at(stored_ms + 3);
    new.event = Arc::new(OutgoingEvent::new(event));
    new.deliveries[0].id = DeliveryId::first_at(stored_ms + 5);
    let (event_id, delivery_id) = (new.event.id, new.deliveries[0].id);
    s.ingest(vec![new]).await.unwrap();
    let owner = s.lease_owner();
    let skip: Vec<EndpointId> = Vec::new();
    let leased = s.lease(lease_req(&owner, &skip, 1, 1)).await.unwrap();
    assert_eq!(leased.len(), 1);
    s.record(&owner, None, &[result(&leased[0], NextState::Succeeded)])
        .await
        .unwrap();
    let removed = prune_all(s, &all_but_dead_letters(), 10).await;
    assert_eq!((removed.deliveries, removed.events), (1, 1));
    let horizons = s.records().retention_state().await.unwrap().horizons;
    let covers = |horizon: Option<OffsetDateTime>, made: Option<i64>| {
        let horizon = horizon.expect("a horizon once something was removed");
        (horizon.unix_timestamp_nanos() / 1_000_000) as i64 >= made.unwrap()
    };
    assert!(
        covers(horizons.deliveries, delivery_id.unix_millis()),
        "{horizons:?} covers {delivery_id} (stored at {stored})"
    );
    assert!(
        covers(horizons.events, event_id.unix_millis()),
        "{horizons:?} covers {event_id} (stored at {stored})"
    );
}

contract!(
    the_horizons_cover_the_ids_of_what_was_removed,
    pruning_beside_ingestion_removes_only_what_expired,
    pruning_removes_finished_work_and_never_what_is_still_going,
    an_idempotency_key_is_honoured_inside_its_window_and_free_after_it,
    two_instances_pruning_at_once_remove_each_row_once,
    a_pass_is_kept_for_every_instance_to_read,
);

/// SQLite gives the pages pruning freed back to the file system, a few at a time.
#[tokio::test]
async fn sqlite_gives_pruned_pages_back_to_the_file_system() {
    let t = sqlite().await;
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    for _ in 0..6 {
        finished(s, &sub, 500, NextState::Succeeded).await;
    }
    let full = s.stats().await.unwrap();
    prune_all(s, &all_but_dead_letters(), 500).await;
    let pruned = s.stats().await.unwrap();
    assert!(
        pruned.free_bytes.unwrap() > full.free_bytes.unwrap(),
        "pruning freed pages: {full:?} → {pruned:?}"
    );
    let mut given_back = 0;
    loop {
        let bytes = s.reclaim(64).await.unwrap();
        if bytes == 0 {
            break;
        }
        given_back += bytes;
    }
    let after = s.stats().await.unwrap();
    assert!(given_back > 0);
    assert!(
        after.total_bytes < pruned.total_bytes,
        "{pruned:?} → {after:?}"
    );
    // What stays free is the slack kept for the next inserts: at most a quarter of what is
    // in use, or 256 pages.
    let used = after.total_bytes - after.free_bytes.unwrap();
    assert!(
        after.free_bytes.unwrap() <= (used / 4).max(256 * 4096),
        "{after:?}"
    );
    let rows =
        |st: &StoreStats, name: &str| st.tables.iter().find(|t| t.table == name).map(|t| t.rows);
    assert_eq!(rows(&full, "events"), Some(3000));
    assert_eq!(rows(&after, "events"), Some(0));
    assert_eq!(rows(&after, "attempts"), Some(0));
}

/// A database made before incremental vacuum keeps its mode (its free pages are reused) until
/// `herald store compact` converts it.
#[tokio::test]
async fn an_older_sqlite_database_is_converted_by_compact() {
    let t = sqlite().await;
    let StoreUrl::Sqlite(path) = t.settings.url.clone() else {
        unreachable!("an SQLite test store")
    };
    drop(t.store);
    let mode = |path: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(mode(&path), 2, "a new database is made incremental");
    // An older Herald's database: no auto-vacuum.
    let old = path.with_file_name("old.db");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch("CREATE TABLE before_herald (x INTEGER)")
            .unwrap();
    }
    let settings = StoreSettings {
        url: StoreUrl::Sqlite(old.clone()),
        ..t.settings.clone()
    };
    drop(open(&settings).await.expect("an older database opens"));
    assert_eq!(mode(&old), 0);
    herald::store::sqlite::compact(&old).expect("compact converts it");
    assert_eq!(mode(&old), 2);
    drop(open(&settings).await.expect("and opens after"));
}
