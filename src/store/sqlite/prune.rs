//! Pruning on SQLite, run by the writer thread: each step removes at most `limit` rows, inside
//! the round's group commit when there is one (its pages are written with it, at no commit
//! of their own) or in a short transaction of its own, so ingestion never waits behind a
//! long delete; what it frees is given back to the file system by incremental vacuum in
//! small steps. The writer's connection does not check foreign keys (see `writer.rs`): the
//! steps remove attempts before their delivery and an event only once no delivery is left.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::model::{DeliveryId, EventId};
use crate::store::{Cutoffs, EventScan, Removed, StoreError};

/// A pruning step done inside a group commit, waiting for the commit's outcome to answer.
pub(super) type Settle = Box<dyn FnOnce(Option<&Arc<StoreError>>) + Send>;

/// A pruning step (see [`super::prune`]), with where to send what it removed.
pub(super) enum PruneStep {
    /// Expired finished deliveries, at most `limit`.
    Deliveries {
        cutoffs: Cutoffs,
        limit: u32,
        reply: oneshot::Sender<Result<Removed, StoreError>>,
    },
    /// Up to `limit` expired events after `after` to look at.
    Events {
        cutoffs: Cutoffs,
        after: Option<String>,
        limit: u32,
        reply: oneshot::Sender<Result<EventScan, StoreError>>,
    },
}

/// Answers `step` with `error` without running it.
pub(super) fn ride_failed(step: PruneStep, error: StoreError) {
    match step {
        PruneStep::Deliveries { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        PruneStep::Events { reply, .. } => {
            let _ = reply.send(Err(error));
        }
    }
}

/// Runs `step` inside the current transaction, under a savepoint so that its failure undoes
/// only its own work; returns how to answer it once the commit is known.
pub(super) fn ride(conn: &Connection, step: PruneStep) -> Settle {
    fn settled<T: Send + 'static>(
        reply: oneshot::Sender<Result<T, StoreError>>,
        result: Result<T, StoreError>,
    ) -> Settle {
        Box::new(move |failed| {
            let _ = reply.send(match failed {
                None => result,
                Some(cause) => Err(StoreError::GroupCommit(cause.clone())),
            });
        })
    }
    fn saved<T>(
        conn: &Connection,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        conn.execute_batch("SAVEPOINT prune")?;
        let result = work();
        if let Err(e) = result {
            // An error such as a full disk may have rolled the whole transaction back; then
            // the round fails with this cause (its COMMIT finds no transaction).
            if conn.is_autocommit() {
                return Err(e);
            }
            let undone = conn.execute_batch("ROLLBACK TO prune");
            conn.execute_batch("RELEASE prune")?;
            undone?;
            return Err(e);
        }
        conn.execute_batch("RELEASE prune")?;
        result
    }
    match step {
        PruneStep::Deliveries {
            cutoffs,
            limit,
            reply,
        } => settled(
            reply,
            saved(conn, || remove_deliveries(conn, cutoffs, limit)),
        ),
        PruneStep::Events {
            cutoffs,
            after,
            limit,
            reply,
        } => settled(
            reply,
            saved(conn, || {
                remove_events(conn, cutoffs, after.as_deref(), limit)
            }),
        ),
    }
}

/// Removes up to `limit` finished deliveries older than their cutoff, with their attempts,
/// and moves the horizons past them.
pub(super) fn remove_deliveries(
    conn: &Connection,
    cutoffs: Cutoffs,
    limit: u32,
) -> Result<Removed, StoreError> {
    // Through deliveries_due (status, next_attempt_at): a finished delivery's
    // next_attempt_at is its finishing time, never later than finished_at.
    let mut find = conn.prepare_cached(
        "SELECT id, created_at FROM deliveries
             WHERE status = ?1 AND next_attempt_at < ?2 AND finished_at < ?2
             ORDER BY next_attempt_at LIMIT ?3",
    )?;
    let mut attempts = conn.prepare_cached("DELETE FROM attempts WHERE delivery_id = ?1")?;
    let mut delivery = conn.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?;
    let mut removed = Removed::default();
    let (mut newest, mut newest_dead) = (0i64, 0i64);
    for (status, cutoff, dead_letter) in cutoffs.finished() {
        let left = u64::from(limit).saturating_sub(removed.deliveries);
        if left == 0 {
            break;
        }
        let doomed: Vec<(String, i64)> = find
            .query_map(params![status, cutoff, left as i64], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        for (id, created) in doomed {
            removed.attempts += attempts.execute([&id])? as u64;
            removed.deliveries += delivery.execute([&id])? as u64;
            let made = made_at(
                id.parse::<DeliveryId>().ok().and_then(|i| i.unix_millis()),
                created,
            );
            newest = newest.max(made);
            if dead_letter {
                newest_dead = newest_dead.max(made);
            }
        }
    }
    let left = u64::from(limit).saturating_sub(removed.deliveries);
    if left > 0 {
        // Succeeded deliveries kept in their events' rows (settled under their hand-off's
        // mark): they go when their event's routes are cleared, found through events_handoff
        // oldest first, and leave that index with them (`handoff` cleared too).
        let kept: Vec<(String, i64, i64)> = conn
            .prepare_cached(
                "SELECT e.id, e.received_at, LENGTH(e.routes) - LENGTH(REPLACE(e.routes, ' ', '')) - 1
                 FROM handoffs h JOIN events e ON e.handoff = h.id AND e.handoff_seq <= h.through
                 WHERE e.received_at < ?1 AND e.routes IS NOT NULL
                 ORDER BY e.handoff, e.handoff_seq LIMIT ?2",
            )?
            .query_map(params![cutoffs.finished()[0].1, left as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut clear = conn.prepare_cached(
            "UPDATE events SET routes = NULL, handoff = NULL, handoff_seq = NULL WHERE id = ?1",
        )?;
        for (id, received, n) in kept {
            clear.execute([&id])?;
            removed.deliveries += n.max(0) as u64;
            newest = newest.max(made_at(
                id.parse::<EventId>().ok().and_then(|i| i.unix_millis()),
                received,
            ));
        }
    }
    if removed.deliveries > 0 {
        conn.prepare_cached(
            "UPDATE retention SET deliveries_through = max(deliveries_through, ?1),
                   dead_letters_through = max(dead_letters_through, ?2) WHERE id = 1",
        )?
        .execute(params![newest, newest_dead])?;
    }
    Ok(removed)
}

/// Looks at up to `limit` events after `after` accepted before the events cutoff and removes
/// those with no delivery left and no idempotency key still honoured.
pub(super) fn remove_events(
    conn: &Connection,
    cutoffs: Cutoffs,
    after: Option<&str>,
    limit: u32,
) -> Result<EventScan, StoreError> {
    let (events_before, keys_since) = cutoffs.events_millis();
    // Ids are time-ordered, so the primary key walks the events oldest first and stops at
    // the cutoff.
    let bound = EventId::first_at(events_before).to_string();
    let mut scan = conn.prepare_cached(
        "SELECT id, received_at, idempotency_key IS NOT NULL FROM events
             WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ?3",
    )?;
    let mut delete = conn.prepare_cached(
        "DELETE FROM events WHERE id = ?1 AND routes IS NULL
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = ?1)",
    )?;
    let seen: Vec<(String, i64, bool)> = scan
        .query_map(
            params![after.unwrap_or(""), bound, i64::from(limit)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?
        .collect::<Result<_, _>>()?;
    let mut result = EventScan::default();
    let mut newest = 0i64;
    for (id, received, keyed) in &seen {
        if *received >= events_before || (*keyed && *received >= keys_since) {
            continue;
        }
        if delete.execute([id])? > 0 {
            result.removed += 1;
            newest = newest.max(made_at(
                id.parse::<EventId>().ok().and_then(|i| i.unix_millis()),
                *received,
            ));
        }
    }
    if result.removed > 0 {
        conn.prepare_cached(
            "UPDATE retention SET events_through = max(events_through, ?1) WHERE id = 1",
        )?
        .execute([newest])?;
    }
    result.next = (seen.len() as u64 == u64::from(limit))
        .then(|| seen.last().map(|(id, _, _)| id.clone()))
        .flatten();
    Ok(result)
}

/// When a removed row was made, as a lookup of its id will see it: the later of its stored
/// time and its id's time. The id (UUIDv7) is made a moment apart from the stored time, and
/// may fall in the next millisecond; a horizon from the stored time alone would then call
/// that very row "never existed" (404) instead of "pruned" (410).
fn made_at(id_millis: Option<i64>, stored: i64) -> i64 {
    id_millis.map_or(stored, |made| made.max(stored))
}

/// Free pages always kept, at the least: what a few group commits use, so they need not grow
/// the file again at once.
const MIN_SLACK_PAGES: i64 = 256;

/// Gives up to `max_pages` free pages back to the file system (incremental vacuum, which
/// moves pages from the end of the file into free ones and truncates it); returns the bytes
/// given back. Nothing on a database made without incremental auto-vacuum.
///
/// Free pages up to a quarter of the pages in use (at least [`MIN_SLACK_PAGES`]) are kept:
/// while events keep coming, what pruning frees is reused by the next inserts, and moving
/// pages to give it back only for the file to grow again would cost writes for nothing. What
/// a burst left behind, once pruned, is given back.
pub(super) fn reclaim(conn: &Connection, max_pages: u32) -> Result<u64, StoreError> {
    let pragma = |name: &str| -> Result<i64, StoreError> {
        Ok(conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))?)
    };
    if pragma("auto_vacuum")? != 2 {
        return Ok(0);
    }
    let (pages, before, page_size) = (
        pragma("page_count")?,
        pragma("freelist_count")?,
        pragma("page_size")?,
    );
    let slack = ((pages - before) / 4).max(MIN_SLACK_PAGES);
    let excess = (before - slack).min(i64::from(max_pages));
    if excess <= 0 {
        return Ok(0);
    }
    // The pragma returns a row per step; stepping through them runs it.
    let mut vacuum = conn.prepare(&format!("PRAGMA incremental_vacuum({excess})"))?;
    let mut rows = vacuum.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    let after = pragma("freelist_count")?;
    // The file shrinks when the WAL is checkpointed; a passive checkpoint does it now, as far
    // as readers let it (it never waits for them), rather than at the WAL's next autocheckpoint.
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(((before - after).max(0) * page_size) as u64)
}

/// Whether `conn`'s database was made with incremental auto-vacuum.
pub(super) fn incremental(conn: &Connection) -> Result<bool, StoreError> {
    let mode: Option<i64> = conn
        .query_row("PRAGMA auto_vacuum", [], |row| row.get(0))
        .optional()?;
    Ok(mode == Some(2))
}
