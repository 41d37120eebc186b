//! What the operator console reads and keeps: sign-in sessions, the activity per minute that
//! its charts draw, counts that stop at a cap, and pages of deliveries by keyset (never an
//! offset, never a full count), so a page costs the same with a million deliveries as with ten.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::routes::{Kept, ANY_KEPT, KEPT_COLUMNS, KEPT_JOIN};
use super::rows::{delivery_from_row, millis, Columns};
use super::sql::on_every_backend;
use super::StoreError;
use crate::model::{
    ActivityRow, Browse, BrowsePage, Counts, Cursor, Delivery, DeliveryId, DeliveryStatus,
    EndpointId, EventId, Scope,
};

/// A console session as stored: only hashes of the cookie's token and of the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie's token, hex.
    pub token_hash: String,
    /// SHA-256 of the API key signed in with, hex.
    pub key_hash: String,
    /// The token every form of the session carries.
    pub csrf: String,
    /// When it was opened.
    pub created_at: OffsetDateTime,
    /// When it ends, however much it is used.
    pub expires_at: OffsetDateTime,
    /// When it ends unless it is used before (moved on by [`ConsoleRecords::touch_session`]);
    /// `expires_at` when sessions have no idle timeout.
    pub idle_until: OffsetDateTime,
}

/// The console's records.
#[async_trait]
pub trait ConsoleRecords: Send + Sync {
    /// Keeps a new session (and forgets the expired ones).
    async fn open_session(&self, s: &SessionRecord) -> Result<(), StoreError>;
    /// The session of a token hash, unless it expired or went idle by `now`.
    async fn session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Moves a session's idle end on to `idle_until` (never past its `expires_at`, never
    /// back).
    async fn touch_session(
        &self,
        token_hash: &str,
        idle_until: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Ends a session; whether there was one to end (two requests ending one session: one
    /// of them is told it did).
    async fn close_session(&self, token_hash: &str) -> Result<bool, StoreError>;

    /// Adds counts to their minutes (each instance adds what it counted), and forgets the
    /// minutes before `forget_before`.
    async fn add_activity(
        &self,
        rows: &[ActivityRow],
        forget_before: i64,
    ) -> Result<(), StoreError>;
    /// The counts of the minutes from `since` on, by minute and endpoint.
    async fn activity(&self, since: i64) -> Result<Vec<ActivityRow>, StoreError>;

    /// How many deliveries have `status` (and, when given, are due by `due_by`), counting up
    /// to `cap` at most: the cost is bounded by the cap, whatever the store holds.
    async fn count_up_to(
        &self,
        status: DeliveryStatus,
        due_by: Option<OffsetDateTime>,
        cap: u32,
    ) -> Result<u64, StoreError>;
    /// One page of deliveries of events of `scope`.
    async fn browse(&self, scope: &Scope, q: &Browse) -> Result<BrowsePage, StoreError>;
}

/// A value bound to a statement built at run time.
enum Bind {
    Text(String),
    Int(i64),
}

/// The order a page goes in, each served by an index so a page reads about as many rows as it
/// shows, however many the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Newest first by id (the primary key, or the index on endpoint and id).
    Id,
    /// With a status: by the time of the last change (the index on status and
    /// `next_attempt_at`).
    Changed,
    /// With an event name: by the time the event was accepted (the index on the events' name
    /// and time), its deliveries by id.
    Event,
}

impl Order {
    fn of(q: &Browse) -> Order {
        match (&q.event_name, q.status) {
            (Some(_), _) => Order::Event,
            (None, Some(_)) => Order::Changed,
            (None, None) => Order::Id,
        }
    }

    /// The column a cursor's time is of.
    fn time(self) -> Option<&'static str> {
        match self {
            Order::Id => None,
            Order::Changed => Some("d.next_attempt_at"),
            Order::Event => Some("e.received_at"),
        }
    }
}

/// The conditions of `q` on the event (its time range on `timed`, bound with `bound`; its name;
/// the scope's solutions), added to `conditions` with their values.
fn event_conditions(
    scope: &Scope,
    q: &Browse,
    timed: &str,
    bound: impl Fn(&mut Vec<Bind>, OffsetDateTime) -> String,
    binds: &mut Vec<Bind>,
    conditions: &mut Vec<String>,
) {
    let push = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if let Some(from) = q.from {
        let p = bound(binds, from);
        conditions.push(format!("{timed} >= {p}"));
    }
    if let Some(to) = q.to {
        let p = bound(binds, to);
        conditions.push(format!("{timed} < {p}"));
    }
    if let Some(name) = &q.event_name {
        let p = push(binds, Bind::Text(name.clone()));
        conditions.push(format!("e.name = {p}"));
    }
    if let Some(solutions) = scope.solutions() {
        let list: Vec<String> = solutions
            .iter()
            .map(|s| push(binds, Bind::Text(s.clone())))
            .collect();
        if list.is_empty() {
            conditions.push("1 = 0".into());
        } else {
            conditions.push(format!("e.solution IN ({})", list.join(", ")));
        }
    }
}

/// The statement of `q`: its SQL and values (see [`Order`]).
fn browse_sql(scope: &Scope, q: &Browse) -> (String, Vec<Bind>) {
    let order = Order::of(q);
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    let push = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if let Some(s) = q.status {
        let p = push(&mut binds, Bind::Text(s.as_str().into()));
        conditions.push(format!("d.status = {p}"));
    }
    if let Some(e) = q.endpoint_id {
        let p = push(&mut binds, Bind::Text(e.to_string()));
        conditions.push(format!("d.endpoint_id = {p}"));
    }
    // A time range is a range of ids (UUIDv7: the time comes first), or of the events' time
    // when pages go by it.
    let bound = |binds: &mut Vec<Bind>, t: OffsetDateTime| match order {
        Order::Event => push(binds, Bind::Int(millis(t))),
        _ => push(
            binds,
            Bind::Text(DeliveryId::first_at(millis(t)).to_string()),
        ),
    };
    let timed = if order == Order::Event {
        "e.received_at"
    } else {
        "d.id"
    };
    event_conditions(scope, q, timed, bound, &mut binds, &mut conditions);
    if let Some(c) = q.after {
        let id = push(&mut binds, Bind::Text(c.id.to_string()));
        match order.time() {
            Some(t) => {
                let at = push(&mut binds, Bind::Int(c.at));
                conditions.push(format!("({t} < {at} OR ({t} = {at} AND d.id < {id}))"));
            }
            None => conditions.push(format!("d.id < {id}")),
        }
    }
    let order_by = match order.time() {
        Some(t) => format!("{t} DESC, d.id DESC"),
        None => "d.id DESC".to_owned(),
    };
    let limit = push(&mut binds, Bind::Int(i64::from(q.limit.clamp(1, 500)) + 1));
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (
        format!(
            "SELECT d.*, e.name AS event_name, e.received_at AS event_at
             FROM deliveries d JOIN events e ON e.id = d.event_id
             {filter} ORDER BY {order_by} LIMIT {limit}"
        ),
        binds,
    )
}

/// The statement for the deliveries kept in events' rows that `q` may show (`None` when its
/// status is one they never have): the events, in the page's order, at most a page and one
/// of them; which of their deliveries match exactly is decided on reading them.
fn kept_sql(scope: &Scope, q: &Browse) -> (Option<String>, Vec<Bind>) {
    let order = Order::of(q);
    let mut binds = Vec::new();
    let mut conditions = vec!["e.routes IS NOT NULL".to_owned()];
    let push = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    match q.status {
        None => {}
        Some(DeliveryStatus::Succeeded) => conditions.push("e.handoff_seq <= h.through".into()),
        Some(DeliveryStatus::InFlight) => conditions.push("e.handoff_seq > h.through".into()),
        Some(_) => return (None, binds),
    }
    if let Some(e) = q.endpoint_id {
        let p = push(&mut binds, Bind::Text(format!("%:{e} %")));
        conditions.push(format!("e.routes LIKE {p}"));
    }
    // Ids of an event's deliveries share its id's time.
    let timed = if order == Order::Event {
        "e.received_at"
    } else {
        "e.id"
    };
    let bound = |binds: &mut Vec<Bind>, t: OffsetDateTime| match order {
        Order::Event => push(binds, Bind::Int(millis(t))),
        _ => push(binds, Bind::Text(EventId::first_at(millis(t)).to_string())),
    };
    event_conditions(scope, q, timed, bound, &mut binds, &mut conditions);
    // The event holding the cursor's delivery may hold later ones: `<=` here, exact on reading.
    if let Some(c) = q.after {
        let id = push(
            &mut binds,
            Bind::Text(
                c.id.route()
                    .map_or(c.id.to_string(), |(e, _)| e.to_string()),
            ),
        );
        match order {
            Order::Id => conditions.push(format!("e.id <= {id}")),
            _ => {
                let at = push(&mut binds, Bind::Int(c.at));
                conditions.push(format!(
                    "(e.received_at < {at} OR (e.received_at = {at} AND e.id <= {id}))"
                ));
            }
        }
    }
    let order_by = match order {
        Order::Id => "e.id DESC",
        _ => "e.received_at DESC, e.id DESC",
    };
    let limit = push(&mut binds, Bind::Int(i64::from(q.limit.clamp(1, 500)) + 1));
    (
        Some(format!(
            "SELECT {KEPT_COLUMNS}, e.name FROM {KEPT_JOIN} WHERE {} ORDER BY {order_by} LIMIT {limit}",
            conditions.join(" AND ")
        )),
        binds,
    )
}

on_every_backend!(ConsoleRecords {
    async fn open_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query::<DB>("DELETE FROM console_sessions WHERE expires_at <= $1 OR idle_until <= $1")
            .bind(millis(s.created_at))
            .execute(&self.pool)
            .await?;
        sqlx::query::<DB>(
            "INSERT INTO console_sessions (token_hash, key_hash, csrf, created_at, expires_at, idle_until)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.token_hash.clone())
        .bind(s.key_hash.clone())
        .bind(s.csrf.clone())
        .bind(millis(s.created_at))
        .bind(millis(s.expires_at))
        .bind(millis(s.idle_until.min(s.expires_at)))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query::<DB>(
            "SELECT * FROM console_sessions WHERE token_hash = $1 AND expires_at > $2 AND idle_until > $2",
        )
        .bind(token_hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            token_hash: row.text("token_hash")?,
            key_hash: row.text("key_hash")?,
            csrf: row.text("csrf")?,
            created_at: super::rows::from_millis(row.int("created_at")?),
            expires_at: super::rows::from_millis(row.int("expires_at")?),
            idle_until: super::rows::from_millis(row.int("idle_until")?),
        }))
    }

    async fn touch_session(
        &self,
        token_hash: &str,
        idle_until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query::<DB>(
            "UPDATE console_sessions SET idle_until = CASE WHEN $2 < expires_at THEN $2 ELSE expires_at END
             WHERE token_hash = $1 AND idle_until < $2",
        )
        .bind(token_hash)
        .bind(millis(idle_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn close_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query::<DB>("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn add_activity(
        &self,
        rows: &[ActivityRow],
        forget_before: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in rows {
            let c = &r.counts;
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            sqlx::query::<DB>(
                "INSERT INTO activity (minute, endpoint_id, events, succeeded, failed, dead_lettered, total_ms, max_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (minute, endpoint_id) DO UPDATE SET
                   events = activity.events + excluded.events,
                   succeeded = activity.succeeded + excluded.succeeded,
                   failed = activity.failed + excluded.failed,
                   dead_lettered = activity.dead_lettered + excluded.dead_lettered,
                   total_ms = activity.total_ms + excluded.total_ms,
                   max_ms = CASE WHEN excluded.max_ms > activity.max_ms THEN excluded.max_ms ELSE activity.max_ms END",
            )
            .bind(r.minute)
            .bind(r.endpoint_id.map(|e| e.to_string()).unwrap_or_default())
            .bind(n(c.events))
            .bind(n(c.succeeded))
            .bind(n(c.failed))
            .bind(n(c.dead_lettered))
            .bind(n(c.total_ms))
            .bind(n(c.max_ms))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query::<DB>("DELETE FROM activity WHERE minute < $1")
            .bind(forget_before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn activity(&self, since: i64) -> Result<Vec<ActivityRow>, StoreError> {
        let rows = sqlx::query::<DB>(
            "SELECT * FROM activity WHERE minute >= $1 ORDER BY minute, endpoint_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let endpoint = row.text("endpoint_id")?;
            let n = |col: &str| -> Result<u64, StoreError> { Ok(row.int(col)?.max(0) as u64) };
            out.push(ActivityRow {
                minute: row.int("minute")?,
                endpoint_id: if endpoint.is_empty() {
                    None
                } else {
                    Some(endpoint.parse::<EndpointId>().map_err(|_| {
                        super::rows::corrupt("activity endpoint", endpoint.clone())
                    })?)
                },
                counts: Counts {
                    events: n("events")?,
                    succeeded: n("succeeded")?,
                    failed: n("failed")?,
                    dead_lettered: n("dead_lettered")?,
                    total_ms: n("total_ms")?,
                    max_ms: n("max_ms")?,
                },
            });
        }
        Ok(out)
    }

    async fn count_up_to(
        &self,
        status: DeliveryStatus,
        due_by: Option<OffsetDateTime>,
        cap: u32,
    ) -> Result<u64, StoreError> {
        let row = sqlx::query::<DB>(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM deliveries
               WHERE status = $1 AND (CAST($2 AS BIGINT) IS NULL OR next_attempt_at <= $2) LIMIT $3) c",
        )
        .bind(status.as_str())
        .bind(due_by.map(millis))
        .bind(i64::from(cap))
        .fetch_one(&self.pool)
        .await?;
        let rows = row.int("n")?.max(0) as u64;
        // And those kept in their events' rows (succeeded or in flight), up to the cap too.
        let settled = match status {
            DeliveryStatus::Succeeded => "e.handoff_seq <= h.through",
            DeliveryStatus::InFlight => "e.handoff_seq > h.through",
            _ => return Ok(rows),
        };
        let kept = sqlx::query::<DB>(&format!(
            "SELECT COALESCE(SUM(n), 0) AS n FROM (
               SELECT LENGTH(e.routes) - LENGTH(REPLACE(e.routes, ' ', '')) - 1 AS n
               FROM handoffs h JOIN events e ON e.handoff = h.id
               WHERE e.routes IS NOT NULL AND {settled} LIMIT $1) c"
        ))
        .bind(i64::from(cap))
        .fetch_one(&self.pool)
        .await?
        .int("n")?
        .max(0) as u64;
        Ok((rows + kept).min(u64::from(cap)))
    }

    async fn browse(&self, scope: &Scope, q: &Browse) -> Result<BrowsePage, StoreError> {
        let (sql, binds) = browse_sql(scope, q);
        let mut query = sqlx::query::<DB>(&sql);
        for b in binds {
            query = match b {
                Bind::Text(s) => query.bind(s),
                Bind::Int(n) => query.bind(n),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let limit = q.limit.clamp(1, 500) as usize;
        let order = Order::of(q);
        // (order key, delivery, event name) of the rows and of the deliveries kept in their
        // events' rows, merged: the page is the first `limit` of both.
        let mut found: Vec<((i64, DeliveryId), Delivery, String)> = Vec::new();
        for row in &rows {
            let d = delivery_from_row(row)?;
            let at = match order {
                Order::Id => 0,
                Order::Changed => millis(d.next_attempt_at),
                Order::Event => row.int("event_at")?,
            };
            found.push(((at, d.id), d, row.text("event_name")?));
        }
        let (sql, binds) = kept_sql(scope, q);
        let any_kept = sqlx::query::<DB>(ANY_KEPT).fetch_one(&self.pool).await?.int("n")? > 0;
        if let Some(sql) = sql.filter(|_| any_kept) {
            let mut query = sqlx::query::<DB>(&sql);
            for b in binds {
                query = match b {
                    Bind::Text(s) => query.bind(s),
                    Bind::Int(n) => query.bind(n),
                };
            }
            for row in query.fetch_all(&self.pool).await? {
                let Some(kept) = Kept::from_row(&row)? else { continue };
                let name = row.text("name")?;
                let at = match order {
                    Order::Id => 0,
                    _ => millis(kept.received_at),
                };
                for d in kept.deliveries() {
                    let key = (at, d.id);
                    let wanted = q.endpoint_id.is_none_or(|e| d.endpoint_id == e)
                        && q.status.is_none_or(|s| d.status == s)
                        && q.after.is_none_or(|c| key < (c.at, c.id));
                    if wanted {
                        found.push((key, d, name.clone()));
                    }
                }
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        let more = found.len() > limit;
        found.truncate(limit);
        let mut page = BrowsePage::default();
        if more {
            if let Some(((at, id), _, _)) = found.last() {
                page.next = Some(Cursor { at: *at, id: *id });
            }
        }
        page.rows = found.into_iter().map(|(_, d, name)| (d, name)).collect();
        Ok(page)
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_page_goes_by_the_time_of_the_last_change() {
        let q = Browse {
            status: Some(DeliveryStatus::DeadLettered),
            after: Some(Cursor {
                at: 5,
                id: DeliveryId::new(),
            }),
            limit: 50,
            ..Default::default()
        };
        let (sql, binds) = browse_sql(&Scope::All, &q);
        assert!(sql.contains("ORDER BY d.next_attempt_at DESC, d.id DESC LIMIT $4"));
        assert!(sql.contains("d.next_attempt_at < $3 OR (d.next_attempt_at = $3 AND d.id < $2)"));
        assert_eq!(binds.len(), 4);
    }

    #[test]
    fn without_a_status_a_page_goes_by_id() {
        let (sql, _) = browse_sql(
            &Scope::All,
            &Browse {
                limit: 10,
                ..Default::default()
            },
        );
        assert!(sql.contains("ORDER BY d.id DESC LIMIT $1") && !sql.contains("WHERE"));
    }
}
