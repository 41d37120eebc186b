//! Operations routes: health, readiness and Prometheus metrics (no credentials needed).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::model::DeliveryStatus;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()), responses((status = 200, description = "Up")))]
async fn healthz() -> &'static str {
    "ok"
}

/// The store takes durable writes, so events can be accepted. The body says so line by line
/// (`[+]` or `[-]`): the store, then each source, whose being down does not stop the API
/// from accepting events (a source resumes where it stopped), so it does not fail readiness.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()), responses(
    (status = 200, description = "Ready"), (status = 503, description = "The store does not answer or refuses writes")))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ready().await {
        Ok(()) if state.sources.is_empty() => (StatusCode::OK, "ready").into_response(),
        Ok(()) => {
            let mut text = String::from("[+] store ok\n");
            for s in state.sources.views() {
                use crate::sources::SourceState;
                let line = match s.state {
                    SourceState::Listening => format!("[+] source {} listening\n", s.name),
                    SourceState::Streaming => format!(
                        "[+] source {} streaming at {}\n",
                        s.name,
                        s.position.as_deref().unwrap_or("its slot's position")
                    ),
                    SourceState::Starting | SourceState::Stopped => format!(
                        "[-] source {} {}\n",
                        s.name,
                        if s.state == SourceState::Starting {
                            "starting"
                        } else {
                            "stopped"
                        }
                    ),
                    // Its error is for admin keys (`/v1/sources`): this answer is public.
                    SourceState::Down => format!(
                        "[-] source {} down; retried at {}\n",
                        s.name,
                        s.retry_at
                            .and_then(|t| t
                                .format(&time::format_description::well_known::Rfc3339)
                                .ok())
                            .unwrap_or_default()
                    ),
                };
                text.push_str(&line);
            }
            text.push_str("ready");
            (StatusCode::OK, text).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not take writes");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "5")],
                "store unavailable",
            )
                .into_response()
        }
    }
}

/// Prometheus metrics: events accepted, deliveries by outcome, attempt latency, queue depth.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()), responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(counts) = state.store.records().counts().await {
        for status in DeliveryStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("herald_deliveries", "status" => status.as_str()).set(n as f64);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
