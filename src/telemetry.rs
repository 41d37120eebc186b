//! Logs (`tracing`, plain or JSON, filtered by `RUST_LOG`), the Prometheus recorder, and
//! OpenTelemetry traces over OTLP/HTTP: one trace from the request that sends an event,
//! through its validation and storage, to every attempt of every delivery, continued from the
//! caller's W3C `traceparent` and carried on to receivers. Traces are off unless an OTLP
//! endpoint is configured; the caller's `traceparent` is still kept and passed on then.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Starts logging to stderr; JSON when `HERALD_LOG_FORMAT=json`. Safe to call twice.
pub fn init_logs(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("HERALD_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "herald_attempt_duration_seconds".into(),
                    ),
                    &buckets,
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding Herald twice); then
            // this handle renders nothing, which only affects `/metrics` of that instance.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Where traces go.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The OTLP/HTTP endpoint's base URL (`http://collector:4318`); spans are posted to
    /// `{endpoint}/v1/traces`.
    pub endpoint: url::Url,
    /// The `service.name` of the spans.
    pub service_name: String,
    /// How long spans wait to be sent in a batch.
    pub export_interval: Duration,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {source}")]
pub struct TraceError {
    endpoint: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Spans of this Herald (one per instance, so instances in one process trace apart); cheap to
/// clone. Off: no span is made, and a caller's `traceparent` is passed on as it came.
#[derive(Clone, Default)]
pub struct Tracing {
    on: Option<Arc<On>>,
}

struct On {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("on", &self.on.is_some())
            .finish()
    }
}

impl Tracing {
    /// Traces exported as `settings` say.
    pub fn otlp(settings: &TraceSettings) -> Result<Self, TraceError> {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
        let endpoint = format!(
            "{}/v1/traces",
            settings.endpoint.as_str().trim_end_matches('/')
        );
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OtlpClient::default())
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| TraceError { endpoint, source })?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(settings.export_interval)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("herald");
        Ok(Self {
            on: Some(Arc::new(On { provider, tracer })),
        })
    }

    /// Whether spans are made.
    pub fn enabled(&self) -> bool {
        self.on.is_some()
    }

    /// A span of `kind` named `name`, the child of the span a `traceparent` names (a new
    /// trace without one, or with one that is not valid W3C trace context).
    pub fn start(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        traceparent: Option<&str>,
    ) -> Span {
        // Without tracing the caller's context is only passed on: nothing to extract.
        let parent = match (&self.on, traceparent) {
            (Some(_), Some(t)) => context_of(t),
            _ => Context::default(),
        };
        self.start_in(name, kind, &parent, traceparent)
    }

    fn start_in(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &Context,
        traceparent: Option<&str>,
    ) -> Span {
        match &self.on {
            Some(on) => {
                let span = on
                    .tracer
                    .span_builder(name)
                    .with_kind(kind)
                    .start_with_context(&on.tracer, parent);
                Span {
                    cx: Some(parent.with_span(span)),
                    tracing: self.clone(),
                    passed: None,
                }
            }
            None => Span {
                cx: None,
                tracing: self.clone(),
                // Not tracing: a valid caller's context is passed on, written as W3C writes
                // it (the parser takes forms receivers may not).
                passed: traceparent.and_then(canonical),
            },
        }
    }

    /// A span that records nothing and passes nothing on.
    pub fn none() -> Span {
        Span {
            cx: None,
            tracing: Tracing::default(),
            passed: None,
        }
    }

    /// Sends what is waiting and stops exporting.
    pub fn shutdown(&self) {
        if let Some(on) = &self.on {
            if let Err(e) = on.provider.shutdown() {
                tracing::warn!(error = %e, "traces could not all be exported at shutdown");
            }
        }
    }
}

/// A valid `traceparent` in W3C's own form (`00-` 32 hex digits `-` 16 `-` 2), or `None`.
fn canonical(traceparent: &str) -> Option<String> {
    let cx = context_of(traceparent);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The context a `traceparent` names (empty when it is not valid).
fn context_of(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// One span, ended when dropped. Without tracing it only carries the caller's context on.
pub struct Span {
    cx: Option<Context>,
    tracing: Tracing,
    passed: Option<String>,
}

impl Span {
    /// A child span of this one.
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Span {
        match &self.cx {
            Some(cx) => self.tracing.start_in(name, kind, cx, None),
            None => Span {
                cx: None,
                tracing: self.tracing.clone(),
                passed: self.passed.clone(),
            },
        }
    }

    /// Whether the span records anything (attributes worth computing).
    pub fn recording(&self) -> bool {
        self.cx.is_some()
    }

    /// Sets an attribute.
    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(cx) = &self.cx {
            cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Adds an event `name` with `attributes` (a plug-in's log line, say).
    pub fn event(&self, name: &'static str, attributes: Vec<(&'static str, String)>) {
        if let Some(cx) = &self.cx {
            cx.span().add_event(
                name,
                attributes
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, v))
                    .collect(),
            );
        }
    }

    /// Marks the span failed, with why.
    pub fn fail(&self, why: impl Into<String>) {
        if let Some(cx) = &self.cx {
            cx.span().set_status(Status::error(why.into()));
        }
    }

    /// The W3C `traceparent` that makes a receiver's span this one's child (or the caller's
    /// context, passed on, when not tracing).
    pub fn traceparent(&self) -> Option<String> {
        match &self.cx {
            Some(cx) => {
                let mut carrier = HashMap::new();
                TraceContextPropagator::new().inject_context(cx, &mut carrier);
                carrier.remove("traceparent")
            }
            None => self.passed.clone(),
        }
    }

    /// Ends the span now.
    pub fn end(self) {
        drop(self);
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}

/// The trace id of a `traceparent` (`00-<trace id>-<parent id>-<flags>`), when valid.
pub fn trace_id(traceparent: &str) -> Option<String> {
    let sc = context_of(traceparent).span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The OTLP exporter's HTTP client: the `reqwest` Herald already uses, blocking, since the
/// batch processor exports from a thread of its own with no async runtime in it. (The
/// exporter's own client feature would bring a second `reqwest` version into the build.)
#[derive(Debug, Default)]
struct OtlpClient {
    // Made on first use, on the exporter's thread: a blocking client must not be made or
    // dropped inside an async runtime.
    client: OnceLock<reqwest::blocking::Client>,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.get_or_init(reqwest::blocking::Client::new);
        let (parts, body) = request.into_parts();
        let mut outgoing = client
            .request(parts.method, parts.uri.to_string())
            .body(body.to_vec());
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name, value);
        }
        let answer = outgoing.send()?;
        let mut response = http::Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        Ok(response.body(answer.bytes()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tracing_a_valid_callers_context_is_passed_on_unchanged() {
        let t = Tracing::default();
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = t.start("request", SpanKind::Server, Some(caller));
        assert_eq!(span.traceparent().as_deref(), Some(caller));
        assert_eq!(
            span.child("store", SpanKind::Internal)
                .traceparent()
                .as_deref(),
            Some(caller)
        );
        let bad = t.start("request", SpanKind::Server, Some("00-zz-00-01"));
        assert_eq!(bad.traceparent(), None);
        // Forms the parser takes are passed on as W3C writes them.
        let short = t.start("request", SpanKind::Server, Some("00-1-2-01"));
        assert_eq!(
            short.traceparent().as_deref(),
            Some("00-00000000000000000000000000000001-0000000000000002-01")
        );
        assert_eq!(
            trace_id(caller).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
