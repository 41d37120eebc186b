//! The live tail: events accepted and attempts made, as they happen, over server-sent events
//! (each carries the endpoint's name and the delivery's new state; pages that list
//! deliveries update their rows from the same stream). On a store that instances share, it
//! hears every instance (see `crate::activity`). A key that is not an admin sees only its
//! solutions' events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Query;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::pages::{render, Frame, PageError};
use super::session::{Session, Watching};
use crate::activity::Happening;
use crate::api::AppState;
use crate::model::{DeliveryId, EndpointId};

/// The tail's page.
pub async fn page(session: Session) -> Response {
    render(
        "tail.html",
        minijinja::context! { frame => Frame::of(&session, "tail") },
    )
}

/// Deliveries a page shows, whose current state the stream starts with.
#[derive(Debug, Deserialize)]
pub struct Watch {
    /// Delivery ids, comma-separated.
    #[serde(default)]
    watch: Option<String>,
}

/// Deliveries one stream may start with.
const MAX_WATCHED: usize = 100;

/// The stream of happenings. It starts with the current state of the deliveries in `watch`
/// (read after it began to listen, so a change in between is not missed).
pub async fn stream(
    State(state): State<AppState>,
    Watching(session): Watching,
    Query(w): Query<Watch>,
) -> Result<Response, PageError> {
    let names = super::seen::names(&state, &session.principal.scope()).await?;
    let feed = state.activity.watch();
    if state.store.messages().shared() {
        // The other instances start telling at once, not at this instance's next ask.
        state.activity.want(state.store.as_ref()).await;
    }
    let closing = state.activity.closing();
    let principal = &session.principal;
    let mut current = Vec::new();
    let ids = w.watch.unwrap_or_default();
    for id in ids
        .split(',')
        .filter_map(|t| t.parse::<DeliveryId>().ok())
        .take(MAX_WATCHED)
    {
        let Some((d, _)) = state
            .store
            .records()
            .delivery(&principal.scope(), id)
            .await?
        else {
            continue;
        };
        let data = serde_json::json!({
            "kind": "state", "delivery_id": d.id, "state": d.status.as_str(),
            "attempt": d.attempts, "error": d.last_error,
        });
        current.push(Ok::<_, Infallible>(
            Event::default().event("happening").data(data.to_string()),
        ));
    }
    let watcher = Watcher {
        feed,
        names,
        session,
        state,
        closing,
        recheck: tokio::time::interval_at(
            tokio::time::Instant::now() + SESSION_RECHECK,
            SESSION_RECHECK,
        ),
        ended: false,
    };
    let events = stream::unfold(watcher, |mut w| async move {
        let e = w.next().await?;
        Some((Ok::<_, Infallible>(e), w))
    });
    Ok(sse(stream::iter(current).chain(events)))
}

/// How often an open stream checks that its session still is (signed out: the stream ends).
const SESSION_RECHECK: Duration = Duration::from_secs(15);

/// One open stream.
struct Watcher {
    feed: tokio::sync::broadcast::Receiver<Happening>,
    names: HashMap<EndpointId, String>,
    session: Session,
    state: AppState,
    closing: tokio_util::sync::CancellationToken,
    recheck: tokio::time::Interval,
    /// The session ended: the stream has said so and ends.
    ended: bool,
}

impl Watcher {
    /// The next event to send; `None` ends the stream (Herald stops, or the session ended:
    /// then an `ended` event comes first, so the page stops reconnecting and says why).
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            let received = tokio::select! {
                r = self.feed.recv() => r,
                // Herald is stopping: the stream ends, so the graceful shutdown can.
                _ = self.closing.cancelled() => return None,
                _ = self.recheck.tick() => {
                    if !self.session.is_open(self.state.store.as_ref()).await {
                        self.ended = true;
                        return Some(Event::default().event("ended").data("session"));
                    }
                    continue;
                }
            };
            let happening = match received {
                Ok(h) => h,
                Err(RecvError::Lagged(n)) => {
                    return Some(Event::default().event("lagged").data(n.to_string()));
                }
                Err(RecvError::Closed) => return None,
            };
            let endpoint = match &happening {
                Happening::Missed { count } => {
                    return Some(Event::default().event("lagged").data(count.to_string()));
                }
                h if !h
                    .solution()
                    .is_some_and(|s| self.session.principal.may_use(s)) =>
                {
                    continue;
                }
                Happening::Attempted { endpoint_id, .. } => {
                    let scope = self.session.principal.scope();
                    Some(name_of(&self.state, &scope, &mut self.names, *endpoint_id).await)
                }
                Happening::Accepted { .. } => None,
            };
            let mut data = serde_json::to_value(&happening).unwrap_or_default();
            if let (Some(name), Some(obj)) = (endpoint, data.as_object_mut()) {
                obj.insert("endpoint".into(), name.into());
            }
            return Some(Event::default().event("happening").data(data.to_string()));
        }
    }
}

/// An endpoint's name (looked up again when it was made after the stream started).
async fn name_of(
    state: &AppState,
    scope: &crate::model::Scope,
    names: &mut HashMap<EndpointId, String>,
    id: EndpointId,
) -> String {
    if !names.contains_key(&id) {
        if let Ok(fresh) = super::seen::names(state, scope).await {
            *names = fresh;
        }
        // A deleted endpoint is looked up once, not at every attempt that names it.
        names.entry(id).or_insert_with(|| id.to_string());
    }
    names[&id].clone()
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}
