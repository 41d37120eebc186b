//! The span of each API request: a child of the caller's W3C `traceparent` when it sent one,
//! named by the route (`POST /v1/events/{event}`), with the method, path and status. Handlers
//! hang theirs under it (validation, storage) and give events its context, which their
//! deliveries continue.

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::SpanKind;

use super::AppState;
use crate::telemetry::{Span, Tracing};

/// The request's span (a span that records nothing when the request was not traced).
#[derive(Clone)]
pub struct RequestSpan(pub Arc<Span>);

impl RequestSpan {
    /// A child span of the request's.
    pub fn child(&self, name: &'static str) -> Span {
        self.0.child(name, SpanKind::Internal)
    }

    /// The context an event sent by this request carries on to its deliveries.
    pub fn traceparent(&self) -> Option<String> {
        self.0.traceparent()
    }
}

impl FromRequestParts<AppState> for RequestSpan {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestSpan>()
            .cloned()
            .unwrap_or_else(|| RequestSpan(Arc::new(Tracing::none()))))
    }
}

/// Opens the request's span, runs the request, and records its status.
pub async fn traced(State(tracing): State<Tracing>, mut req: Request, next: Next) -> Response {
    if !tracing.enabled() {
        // Nothing to record: the request's span only passes the caller's context on.
        let traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok());
        let span = tracing.start("", SpanKind::Server, traceparent);
        req.extensions_mut().insert(RequestSpan(Arc::new(span)));
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let method = req.method().as_str().to_owned();
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let span = tracing.start(
        format!("{method} {route}"),
        SpanKind::Server,
        traceparent.as_deref(),
    );
    span.set("http.request.method", method);
    span.set("http.route", route);
    // Not the path itself: a console sign-in link's path is a credential.
    let span = Arc::new(span);
    req.extensions_mut().insert(RequestSpan(span.clone()));
    let response = next.run(req).await;
    let status = response.status();
    span.set("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.fail(format!("answered {status}"));
    }
    response
}
