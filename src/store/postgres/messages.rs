//! The instances of a PostgreSQL store tell each other with `LISTEN/NOTIFY`: work became due,
//! endpoints or subscriptions changed, and the live tail's relay. A lost `LISTEN` connection
//! is opened again; meanwhile every handler is called once a second, since anything may have
//! happened while nobody listened.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgPool;

use crate::store::messages::{Messages, Watchers};
use crate::store::StoreError;

/// The channel new work is announced on.
const CHANNEL: &str = "herald_work";
/// The channel changes of endpoints and subscriptions are announced on.
const CHANGES: &str = "herald_changes";
/// What happened on one instance, for the live tails open on the others.
const TAIL: &str = "herald_tail";
/// An instance with a live tail open asks the others to tell it what happens.
const TAIL_WANTED: &str = "herald_tail_wanted";

/// `LISTEN/NOTIFY` on the store's database.
pub struct PgMessages {
    pool: PgPool,
    options: PgConnectOptions,
    /// Signals the announcer task that new work was made due.
    announce: Arc<tokio::sync::Notify>,
}

impl PgMessages {
    /// Messages over `pool`; `options` open the `LISTEN` connection.
    pub fn start(pool: PgPool, options: PgConnectOptions) -> Self {
        let announce = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(announce_work(pool.clone(), announce.clone()));
        PgMessages {
            pool,
            options,
            announce,
        }
    }

    /// `NOTIFY channel, payload`: every instance listening hears it.
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Messages for PgMessages {
    fn shared(&self) -> bool {
        true
    }

    fn watch(&self, watchers: Watchers) {
        let options = self.options.clone();
        tokio::spawn(async move {
            // Reconnects after the database goes away; polling covers the gaps.
            loop {
                if let Err(e) = listen(&options, &watchers).await {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting (polling meanwhile)");
                }
                // Anything may have happened while nobody listened.
                (watchers.on_work)();
                (watchers.on_change)();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn changed(&self) -> Result<(), StoreError> {
        self.notify(CHANGES, "").await
    }

    fn work(&self) {
        self.announce.notify_one();
    }

    async fn tell_tails(&self, text: &str) -> Result<(), StoreError> {
        self.notify(TAIL, text).await
    }

    async fn want_tail(&self, asker: &str) -> Result<(), StoreError> {
        self.notify(TAIL_WANTED, asker).await
    }
}

/// Announces new work to the other instances, one `NOTIFY` for however many commits happened
/// while the previous one was sent. A `NOTIFY` inside each ingest transaction would take
/// PostgreSQL's global notification lock at every commit and serialize them.
async fn announce_work(pool: PgPool, signal: Arc<tokio::sync::Notify>) {
    loop {
        signal.notified().await;
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
        {
            // The other instances' polling picks the work up.
            tracing::debug!(error = %e, "could not announce new work");
        }
    }
}

async fn listen(options: &PgConnectOptions, watchers: &Watchers) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener
        .listen_all([CHANNEL, CHANGES, TAIL, TAIL_WANTED])
        .await?;
    loop {
        let notification = listener.recv().await?;
        match notification.channel() {
            CHANGES => (watchers.on_change)(),
            TAIL => (watchers.on_tail)(notification.payload()),
            TAIL_WANTED => (watchers.on_tail_wanted)(notification.payload()),
            _ => (watchers.on_work)(),
        }
    }
}
