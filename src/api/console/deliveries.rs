//! Deliveries: a filtered list (state, endpoint, event name, time) a page at a time by keyset;
//! one delivery with its attempt timeline (the request sent, secrets and signatures masked,
//! and the start of the answer); the dead letters, to replay a selection or a time range.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::pages::{millis, render, Frame, PageError};
use super::rows::{rows, Row};
use super::seen::names;
use super::session::{Acting, Posted, Session};
use crate::api::AppState;
use crate::model::{Browse, Cursor, DeliveryId, DeliveryStatus, EndpointId, ReplayFilter};

/// Rows a list page shows.
const PAGE: u32 = 50;
/// Deliveries one replay of a selection may name.
const MAX_SELECTED: usize = 500;

/// A body as it reads best: JSON indented, anything else as it is.
fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

/// The filters of a list, as its query string holds them.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
pub struct Filters {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    event: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (UTC), as a `datetime-local` field sends it.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    /// Where the previous page ended: `<ms>.<delivery id>`.
    #[serde(default)]
    after: Option<String>,
}

/// A `datetime-local` value (UTC) or an RFC 3339 time.
fn parse_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(&format!("{text}:00Z"), &Rfc3339).ok())
        .or_else(|| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339).ok())
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Filters {
    /// The store query, or what is wrong with a filter (by field).
    fn browse(
        &self,
        endpoints: &HashMap<EndpointId, String>,
        forced: Option<DeliveryStatus>,
    ) -> Result<Browse, (&'static str, String)> {
        let status = match (forced, blank(&self.status)) {
            (Some(s), _) => Some(s),
            (None, None) => None,
            (None, Some(text)) => Some(
                DeliveryStatus::parse(text)
                    .ok_or(("status", format!("\"{text}\" is not a delivery state")))?,
            ),
        };
        let endpoint_id = match blank(&self.endpoint) {
            None => None,
            Some(text) => Some(
                endpoints
                    .iter()
                    .find(|(id, name)| id.to_string() == text || name.as_str() == text)
                    .map(|(id, _)| *id)
                    .ok_or(("endpoint", format!("no endpoint called \"{text}\"")))?,
            ),
        };
        let time = |field: &'static str,
                    v: &Option<String>|
         -> Result<Option<OffsetDateTime>, (&'static str, String)> {
            match blank(v) {
                None => Ok(None),
                Some(text) => parse_time(text).map(Some).ok_or((
                    field,
                    format!("\"{text}\" is not a time (YYYY-MM-DDTHH:MM, UTC)"),
                )),
            }
        };
        let after = match blank(&self.after) {
            None => None,
            Some(text) => {
                let (at, id) = text
                    .split_once('.')
                    .ok_or(("after", "not a page position".into()))?;
                Some(Cursor {
                    at: at
                        .parse()
                        .map_err(|_| ("after", "not a page position".to_string()))?,
                    id: id
                        .parse::<DeliveryId>()
                        .map_err(|_| ("after", "not a page position".to_string()))?,
                })
            }
        };
        Ok(Browse {
            status,
            endpoint_id,
            event_name: blank(&self.event).map(str::to_owned),
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            after,
            limit: PAGE,
        })
    }

    /// The query string of the next page: the filled filters and where the page ended.
    fn next(&self, cursor: Cursor) -> String {
        self.query(Some(format!("{}.{}", cursor.at, cursor.id)))
    }

    /// The filled filters as a query string, starting `after` when given.
    fn query(&self, after: Option<String>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &self.status),
            ("endpoint", &self.endpoint),
            ("event", &self.event),
            ("from", &self.from),
            ("to", &self.to),
            ("after", &after),
        ] {
            if let Some(v) = blank(v) {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

async fn list_page(
    state: &AppState,
    session: &Session,
    filters: Filters,
    forced: Option<DeliveryStatus>,
    template: &str,
    section: &'static str,
) -> Result<Response, PageError> {
    let endpoints = names(state, &session.principal.scope()).await?;
    let (page, problem) = match filters.browse(&endpoints, forced) {
        Ok(q) => (
            state
                .store
                .console()
                .browse(&session.principal.scope(), &q)
                .await?,
            None,
        ),
        Err(problem) => (Default::default(), Some(problem)),
    };
    let mut endpoint_names: Vec<&String> = endpoints.values().collect();
    endpoint_names.sort();
    Ok(render(
        template,
        minijinja::context! {
            frame => Frame::of(session, section),
            rows => rows(&page.rows, &endpoints),
            endpoint_names => endpoint_names,
            filters => filters.clone(),
            next => page.next.map(|c| filters.next(c)),
            problem => problem.map(|(field, message)| minijinja::context! { field, message }),
            states => DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        },
    ))
}

/// The deliveries list.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    list_page(
        &state,
        &session,
        filters,
        None,
        "deliveries.html",
        "deliveries",
    )
    .await
}

/// The dead letters, to replay.
pub async fn dead_letters(
    State(state): State<AppState>,
    session: Session,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    list_page(
        &state,
        &session,
        filters,
        Some(DeliveryStatus::DeadLettered),
        "dead_letters.html",
        "dead-letters",
    )
    .await
}

/// One delivery with its attempts.
pub async fn one(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let missing = || {
        PageError::not_found(format!(
            "No delivery \"{id}\" (it may have been pruned by the retention policy)."
        ))
    };
    let delivery_id: DeliveryId = id.parse().map_err(|_| missing())?;
    let scope = session.principal.scope();
    let (d, attempts) = state
        .store
        .records()
        .delivery(&scope, delivery_id)
        .await?
        .ok_or_else(missing)?;
    let (event, _) = state
        .store
        .records()
        .event(&scope, d.event_id)
        .await?
        .ok_or_else(missing)?;
    let endpoints = names(&state, &session.principal.scope()).await?;
    let attempts: Vec<_> = attempts
        .iter()
        .map(|a| {
            minijinja::context! {
                attempt => a.attempt,
                started_at => millis(a.started_at),
                duration_ms => a.duration_ms,
                outcome => a.outcome.as_str(),
                http_status => a.http_status,
                error => a.error,
                target => a.exchange.as_ref().map(|x| x.target.clone()),
                headers => a.exchange.as_ref().map(|x| x.headers.clone()).unwrap_or_default(),
                body => a.exchange.as_ref().and_then(|x| x.body.as_deref().map(pretty)),
                response => a.exchange.as_ref().and_then(|x| x.response.clone()),
            }
        })
        .collect();
    Ok(render(
        "delivery.html",
        minijinja::context! {
            frame => Frame::of(&session, "deliveries"),
            delivery => minijinja::context! {
                id => d.id.to_string(), status => d.status.as_str(), attempts => d.attempts,
                created_at => millis(d.created_at), next_attempt_at => millis(d.next_attempt_at),
                finished_at => d.finished_at.map(millis), last_error => d.last_error,
                endpoint_id => d.endpoint_id.to_string(),
                endpoint => endpoints.get(&d.endpoint_id).cloned(),
                subscription_id => d.subscription_id.to_string(),
                replayable => d.status == DeliveryStatus::DeadLettered,
            },
            event => minijinja::context! {
                id => event.id.to_string(), name => event.name, solution => event.solution,
                received_at => millis(event.received_at), correlation_id => event.correlation_id,
                caller => event.caller, depth => event.depth,
                trace_id => event.traceparent.as_deref().and_then(crate::telemetry::trace_id),
                params => serde_json::to_string_pretty(&event.params).unwrap_or_default(),
            },
            attempts => attempts,
        },
    ))
}

/// Replays the selected dead letters, or those of a time range (with the list's endpoint and
/// event filters); the page that answers follows the replayed ones live.
pub async fn replay(
    State(state): State<AppState>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let now = OffsetDateTime::now_utc();
    let endpoints = names(&state, &session.principal.scope()).await?;
    if form.get("scope") == Some("range") {
        let filters = Filters {
            endpoint: form.get("endpoint").map(str::to_owned),
            event: form.get("event").map(str::to_owned),
            from: form.get("from").map(str::to_owned),
            to: form.get("to").map(str::to_owned),
            ..Default::default()
        };
        let q = filters
            .browse(&endpoints, Some(DeliveryStatus::DeadLettered))
            .map_err(|(field, message)| PageError::bad_request(format!("{field}: {message}")))?;
        if q.from.is_none() || q.to.is_none() {
            return Err(PageError::bad_request(
                "A range replay needs both \"from\" and \"to\".",
            ));
        }
        let done = crate::api::deliveries::replay_range(
            &state,
            &session.principal.scope(),
            &ReplayFilter {
                held: false,
                endpoint_id: q.endpoint_id,
                event: q.event_name,
                from: q.from,
                to: q.to,
            },
        )
        .await?;
        return Ok(render(
            "replayed.html",
            minijinja::context! {
                frame => Frame::of(&session, "dead-letters"),
                count => done.replayed, rows => Vec::<Row>::new(),
                range => format!("/console/deliveries?{}", filters.query(None)),
                pruned => done.all_pruned(),
            },
        ));
    }
    // Each selected delivery is read once: only a dead letter of this key's solutions is
    // replayed; the others are counted and said so.
    let scope = session.principal.scope();
    let mut replayed = Vec::new();
    let mut skipped = 0;
    let mut event_names: HashMap<crate::model::EventId, String> = HashMap::new();
    for text in form.all("ids").take(MAX_SELECTED) {
        let Ok(id) = text.parse::<DeliveryId>() else {
            return Err(PageError::bad_request(format!(
                "\"{text}\" is not a delivery id."
            )));
        };
        let Some((mut d, _)) = state.store.records().delivery(&scope, id).await? else {
            skipped += 1;
            continue;
        };
        // The names of events this key may see, each read once.
        let name = match event_names.get(&d.event_id) {
            Some(name) => Some(name.clone()),
            None => match state.store.records().event(&scope, d.event_id).await? {
                Some((e, _)) => {
                    event_names.insert(d.event_id, e.name.to_string());
                    Some(e.name.to_string())
                }
                _ => None,
            },
        };
        let Some(name) = name.filter(|_| d.status == DeliveryStatus::DeadLettered) else {
            skipped += 1;
            continue;
        };
        if state.store.records().retry(&scope, id, now).await? == Some(true) {
            // What the retry made of it: due now, as the page then shows it.
            d.status = DeliveryStatus::Pending;
            d.next_attempt_at = now;
            d.finished_at = None;
            replayed.push((d, name));
        } else {
            skipped += 1;
        }
    }
    if replayed.is_empty() && skipped == 0 {
        return Err(PageError::bad_request(
            "Select at least one dead letter to replay.",
        ));
    }
    if !replayed.is_empty() {
        state.ingestor.wake();
    }
    tracing::info!(
        replayed = replayed.len(),
        skipped,
        "dead letters replayed from the console"
    );
    Ok(render(
        "replayed.html",
        minijinja::context! {
            frame => Frame::of(&session, "dead-letters"),
            count => replayed.len(), rows => rows(&replayed, &endpoints), skipped => skipped,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_a_datetime_field_sends_them() {
        let t = parse_time("2026-12-03T15:04").unwrap();
        assert_eq!((t.hour(), t.minute(), t.offset().is_utc()), (15, 4, true));
        assert!(parse_time("2026-12-03T15:04:05+01:00").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
