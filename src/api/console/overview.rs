//! The overview: events and deliveries per minute over the last hour, deliveries by state,
//! the due backlog, and the slowest and the failing endpoints. Every figure comes from the
//! activity counted per minute or from a count that stops at a cap, never from a full scan.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use time::OffsetDateTime;

use super::charts::{self, Bar};
use super::hour::LastHour;
use super::pages::{render, Frame, PageError};
use super::seen::visible;
use super::session::Session;
use crate::api::AppState;
use crate::model::{DeliveryStatus, EndpointId, HealthState};

/// Counts stop here: past it the console says "10,000+".
pub const COUNT_CAP: u32 = 10_000;

/// A count as shown: exact below the cap, "at least" at it.
#[derive(Serialize)]
pub struct Shown {
    /// The number counted.
    pub n: u64,
    /// Whether counting stopped at the cap.
    pub more: bool,
}

impl Shown {
    fn of(n: u64) -> Self {
        Shown {
            n,
            more: n >= u64::from(COUNT_CAP),
        }
    }
}

/// One endpoint's last hour.
#[derive(Serialize)]
pub struct EndpointHour {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its health.
    pub state: &'static str,
    /// Attempts in the hour.
    pub attempts: u64,
    /// Of which succeeded, in percent (none without attempts).
    pub success_percent: Option<u64>,
    /// The mean time of an attempt.
    pub mean_ms: Option<u64>,
    /// The longest attempt.
    pub max_ms: u64,
    /// The last error of a failing or disabled endpoint.
    pub last_error: Option<String>,
}

/// The overview page. An admin key sees the whole store; any other key sees the attempts at
/// the endpoints its solutions' subscriptions use, and none of the figures that are counted
/// over every solution (events accepted, deliveries by state, the backlog).
pub async fn page(State(state): State<AppState>, session: Session) -> Result<Response, PageError> {
    let now = OffsetDateTime::now_utc();
    let console = state.store.console();
    let whole = session.principal.admin;
    let endpoints = visible(&state, &session).await?;
    let seen: HashSet<EndpointId> = endpoints.iter().map(|e| e.id).collect();
    let last_hour = LastHour::read(&state).await?;
    let (minutes, hour) =
        last_hour.minutes(|r| whole || r.endpoint_id.is_some_and(|id| seen.contains(&id)));
    let events: Vec<(u64, u64)> = minutes.iter().map(|c| (c.events, 0)).collect();
    let attempts: Vec<(u64, u64)> = minutes.iter().map(|c| (c.succeeded, c.failed)).collect();

    // The counts read different ranges of one index: at once, on as many connections.
    let (counts, due) = if whole {
        let counts = futures::future::try_join_all(
            DeliveryStatus::ALL
                .iter()
                .map(|s| console.count_up_to(*s, None, COUNT_CAP)),
        );
        let due = console.count_up_to(DeliveryStatus::Pending, Some(now), COUNT_CAP);
        futures::future::try_join(counts, due).await?
    } else {
        (Vec::new(), 0)
    };
    let states: Vec<(DeliveryStatus, u64)> = DeliveryStatus::ALL.into_iter().zip(counts).collect();
    let state_bars: Vec<Bar> = states
        .iter()
        .map(|(s, n)| Bar {
            label: s.as_str().replace('_', " "),
            value: *n,
            class: s.as_str(),
        })
        .collect();

    let counts = last_hour.by_endpoint();
    let board = state.registry.health();
    let mut hours: Vec<EndpointHour> = endpoints
        .iter()
        .map(|e| {
            let c = counts.get(&e.id).copied().unwrap_or_default();
            let health = board.get(e.id);
            EndpointHour {
                id: e.id.to_string(),
                name: e.name.clone(),
                state: board.state(e.id).as_str(),
                attempts: c.attempts(),
                success_percent: (c.attempts() > 0).then(|| c.succeeded * 100 / c.attempts()),
                mean_ms: c.mean_ms(),
                max_ms: c.max_ms,
                last_error: health
                    .filter(|h| h.state != HealthState::Healthy)
                    .and_then(|h| h.last_error),
            }
        })
        .collect();
    hours.sort_by(|a, b| b.mean_ms.cmp(&a.mean_ms).then(a.name.cmp(&b.name)));
    let slowest: Vec<&EndpointHour> = hours
        .iter()
        .filter(|h| h.mean_ms.is_some())
        .take(5)
        .collect();
    let slow_bars: Vec<Bar> = slowest
        .iter()
        .map(|h| Bar {
            label: h.name.clone(),
            value: h.mean_ms.unwrap_or(0),
            class: "slow",
        })
        .collect();
    let failing: Vec<&EndpointHour> = hours
        .iter()
        .filter(|h| h.state != "healthy" || h.success_percent.is_some_and(|p| p < 100))
        .collect();

    Ok(render(
        "overview.html",
        minijinja::context! {
            frame => Frame::of(&session, "overview"),
            whole => whole,
            events_chart => charts::columns("Events accepted per minute, last hour", ("events", None), &events),
            attempts_chart => charts::columns("Attempts per minute, last hour", ("succeeded", Some("failed")), &attempts),
            states_chart => charts::bars("Deliveries by state", &state_bars, ""),
            slow_chart => charts::bars("Mean attempt time by endpoint, last hour", &slow_bars, " ms"),
            hour => minijinja::context! {
                events => hour.events, succeeded => hour.succeeded, failed => hour.failed,
                dead_lettered => hour.dead_lettered,
            },
            states => states.iter().map(|(s, n)| minijinja::context! {
                status => s.as_str(), n => Shown::of(*n)
            }).collect::<Vec<_>>(),
            due => Shown::of(due),
            slowest => slowest,
            failing => failing,
            cap => COUNT_CAP,
        },
    ))
}
