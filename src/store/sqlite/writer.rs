//! Group commit: one task owns the write connection, takes every ingestion job waiting in
//! its queue, writes them all in one transaction and answers them after one fsync.
//! With N concurrent requests, N events share one `COMMIT`, so durability does not cap
//! throughput at one request per fsync.

use sqlx::{Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::store::rows::millis;
use crate::store::{IngestOutcome, NewEvent, StoreError};

/// Jobs taken into one transaction at most (bounds the transaction's size and latency).
const MAX_JOBS_PER_COMMIT: usize = 512;

/// Events to store and where to send the outcome.
pub(super) struct Job {
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
}

pub(super) async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    while rx.recv_many(&mut jobs, MAX_JOBS_PER_COMMIT).await > 0 {
        let events: Vec<&NewEvent> = jobs.iter().flat_map(|j| &j.events).collect();
        metrics::histogram!("herald_store_group_commit_events").record(events.len() as f64);
        match write(&mut conn, &events).await {
            Ok(mut outcomes) => {
                for job in jobs.drain(..) {
                    let rest = outcomes.split_off(job.events.len());
                    let _ = job.reply.send(Ok(std::mem::replace(&mut outcomes, rest)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let text = e.to_string();
                for job in jobs.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Database(sqlx::Error::Protocol(
                            text.clone(),
                        ))));
                }
            }
        }
    }
}

async fn write(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<Vec<IngestOutcome>, StoreError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    match insert_all(conn, events).await {
        Ok(outcomes) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(outcomes)
        }
        Err(e) => {
            // The transaction is abandoned; the insert error is what matters.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

async fn insert_all(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(events.len());
    for new in events {
        let e = &new.event;
        if let Some((key, fingerprint)) = &new.idempotency {
            let seen = sqlx::query("SELECT id, fingerprint, delivery_count FROM events WHERE solution = ? AND idempotency_key = ?")
                .bind(&e.solution)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = seen {
                let id = crate::store::rows::parse_id(&row, "id")?;
                let same: Vec<u8> = row.try_get("fingerprint")?;
                outcomes.push(if same == fingerprint.as_slice() {
                    IngestOutcome::Replayed {
                        id,
                        deliveries: row.try_get::<i64, _>("delivery_count")? as u32,
                    }
                } else {
                    IngestOutcome::KeyReused { id }
                });
                continue;
            }
        }
        let params = serde_json::to_string(&e.params).map_err(|source| StoreError::Corrupt {
            what: "event params",
            source,
        })?;
        let received = millis(e.received_at);
        sqlx::query(
            "INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.id.to_string())
        .bind(&e.name)
        .bind(&e.solution)
        .bind(params)
        .bind(&e.correlation_id)
        .bind(&e.caller)
        .bind(received)
        .bind(new.idempotency.as_ref().map(|(k, _)| k.as_str()))
        .bind(new.idempotency.as_ref().map(|(_, f)| f.as_slice()))
        .bind(new.deliveries.len() as i64)
        .execute(&mut *conn)
        .await?;
        for d in &new.deliveries {
            sqlx::query(
                "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at)
                 VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            )
            .bind(d.id.to_string())
            .bind(e.id.to_string())
            .bind(d.subscription_id.to_string())
            .bind(d.endpoint_id.to_string())
            .bind(received)
            .bind(received)
            .bind(received)
            .execute(&mut *conn)
            .await?;
        }
        outcomes.push(IngestOutcome::Created {
            id: e.id,
            deliveries: new.deliveries.len() as u32,
        });
    }
    Ok(outcomes)
}
