//! Rendering: the embedded templates and assets, the headers every page carries, the page
//! frame's context (who is signed in, the CSRF token), and the console's error page.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value};
use serde::Serialize;
use time::OffsetDateTime;

/// The templates, compiled once. Files ending in `.html` are escaped as HTML.
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the embedded templates parse (checked by a unit test)");
        }
        env.add_filter("when", |t: i64| when(t));
        env
    })
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("catalog.html", include_str!("templates/catalog.html")),
    ("event.html", include_str!("templates/event.html")),
    ("endpoints.html", include_str!("templates/endpoints.html")),
    ("endpoint.html", include_str!("templates/endpoint.html")),
    (
        "endpoint_new.html",
        include_str!("templates/endpoint_new.html"),
    ),
    (
        "endpoint_made.html",
        include_str!("templates/endpoint_made.html"),
    ),
    (
        "shown_secret.html",
        include_str!("templates/shown_secret.html"),
    ),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("delivery.html", include_str!("templates/delivery.html")),
    (
        "dead_letters.html",
        include_str!("templates/dead_letters.html"),
    ),
    ("replayed.html", include_str!("templates/replayed.html")),
    ("tail.html", include_str!("templates/tail.html")),
    ("plugins.html", include_str!("templates/plugins.html")),
    ("sources.html", include_str!("templates/sources.html")),
    ("error.html", include_str!("templates/error.html")),
    ("rows.html", include_str!("templates/rows.html")),
    ("filters.html", include_str!("templates/filters.html")),
];

/// A time (unix milliseconds) as the console shows it: `2026-12-03 15:04:05 UTC`.
pub fn when(millis: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Unix milliseconds of `t`.
pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The frame every page shares: who is signed in and the token its forms carry.
#[derive(Serialize)]
pub struct Frame<'a> {
    /// The key's name.
    pub user: &'a str,
    /// Whether it may act.
    pub admin: bool,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// The page, for the navigation's `aria-current`.
    pub section: &'static str,
}

/// Renders template `name` with `context` into a page.
pub fn render(name: &str, context: Value) -> Response {
    render_with(StatusCode::OK, name, context)
}

/// Renders template `name` with `context` into a page with `status`.
pub fn render_with(status: StatusCode, name: &str, context: Value) -> Response {
    let html = templates()
        .get_template(name)
        .and_then(|t| t.render(context));
    match html {
        Ok(html) => with_page_headers((status, html).into_response(), "text/html; charset=utf-8"),
        Err(e) => {
            tracing::error!(template = name, error = %e, "a console page could not be rendered");
            with_page_headers(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response(),
                "text/plain; charset=utf-8",
            )
        }
    }
}

/// What no page may do: run or load anything not served by Herald itself, be framed, or be
/// cached (pages show live state and the CSRF token).
fn with_page_headers(mut r: Response, content_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// Why a console page could not be shown: an error page with the status, in the frame when
/// someone is signed in.
#[derive(Debug)]
pub struct PageError {
    /// The status.
    pub status: StatusCode,
    /// What to tell the operator.
    pub message: String,
}

impl PageError {
    /// `404` with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// `403` with `message`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// `400` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "a console page could not read the store");
        let (status, message) = if e.is_transient() {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The store is busy or unreachable; try again in a moment.",
            )
        } else {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store answered with an error; see Herald's log.",
            )
        };
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::registry::RegistryError> for PageError {
    fn from(e: crate::registry::RegistryError) -> Self {
        let api = crate::api::ApiError::from(e);
        let (status, body) = api.parts();
        Self {
            status,
            message: body.message,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        render_with(
            self.status,
            "error.html",
            minijinja::context! { status => self.status.as_u16(), message => self.message },
        )
    }
}

/// The console's stylesheet and script, embedded.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A page's id that names nothing is the console's `404` page.
impl crate::api::path::Missing for PageError {
    fn missing(message: String) -> Self {
        PageError::not_found(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = templates();
        for (name, _) in TEMPLATES {
            env.get_template(name).expect(name);
        }
    }

    #[test]
    fn a_new_endpoints_secret_is_shown_even_when_its_page_cannot_be_read() {
        let page = templates().get_template("endpoint_made.html").unwrap();
        let out = page
            .render(minijinja::context! {
                frame => minijinja::context! { admin => true, csrf => "t", section => "endpoints" },
                endpoint => minijinja::context! { id => "ep_1", name => "alerts" },
                notice => "Created.",
                shown => "whsec_abc",
            })
            .unwrap();
        assert!(out.contains("id=\"shown-secret\" type=\"text\" readonly value=\"whsec_abc\""));
        assert!(out.contains("href=\"/console/endpoints/ep_1\""));
    }

    #[test]
    fn every_template_file_is_embedded() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/console/templates");
        for file in std::fs::read_dir(dir).unwrap() {
            let name = file.unwrap().file_name().into_string().unwrap();
            assert!(
                TEMPLATES.iter().any(|(n, _)| *n == name),
                "{name} is in TEMPLATES"
            );
        }
    }

    #[test]
    fn values_are_escaped_as_html() {
        let page = templates().get_template("error.html").unwrap();
        let out = page
            .render(minijinja::context! { status => 400, message => "<b>x</b>" })
            .unwrap();
        assert!(out.contains("&lt;b&gt;x&lt;") && !out.contains("<b>x"));
    }
}
