//! Signing in and out, and the session every page needs. A session is a random token in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` when Herald is served over HTTPS); the store
//! keeps only its SHA-256, the SHA-256 of the API key signed in with (so removing a key from
//! the configuration ends its sessions), and a CSRF token that every form carries back. The
//! sign-in form, before there is a session, is protected by a double-submitted token.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::form::Form;
use super::pages::{render, render_with, Frame};
use crate::api::AppState;
use crate::auth::Principal;
use crate::store::console::SessionRecord;
use crate::store::{Store, StoreError};

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Whether it is served.
    pub enabled: bool,
    /// How long a session lasts.
    pub session_ttl: std::time::Duration,
    /// How long a session lasts unused (`None`: as long as `session_ttl`).
    pub idle_timeout: Option<std::time::Duration>,
    /// Whether cookies are `Secure` (Herald's public URL is HTTPS).
    pub secure: bool,
}

impl ConsoleSettings {
    /// The idle timeout, if there is one shorter than a session's lifetime.
    fn idle(&self) -> Option<time::Duration> {
        self.idle_timeout
            .filter(|idle| *idle < self.session_ttl)
            .and_then(|idle| time::Duration::try_from(idle).ok())
    }
}

/// The session cookie's name.
const COOKIE: &str = "herald_session";
/// The sign-in form's double-submitted token.
const PRE_COOKIE: &str = "herald_sign_in";
/// The CSRF mark of a one-time sign-in link (not a session yet).
const LINK: &str = "link";
/// How long a sign-in link may be used.
const LINK_TTL: time::Duration = time::Duration::minutes(10);

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub principal: Principal,
    /// The token every form must carry.
    pub csrf: String,
    /// The stored hash of the cookie's token.
    token_hash: String,
}

impl Session {
    /// The principal, when it may act (an admin key); a `403` page otherwise.
    pub fn admin(&self) -> Result<&Principal, super::pages::PageError> {
        if self.principal.admin {
            Ok(&self.principal)
        } else {
            Err(super::pages::PageError::forbidden(format!(
                "The API key \"{}\" may look but not act: sign in with an admin key to change anything.",
                self.principal.name
            )))
        }
    }

    /// Whether the session is still open (not signed out, not expired).
    pub async fn is_open(&self, store: &dyn Store) -> bool {
        // A store that does not answer is not a sign-out: the stream goes on.
        !matches!(
            store
                .console()
                .session(&self.token_hash, OffsetDateTime::now_utc())
                .await,
            Ok(None)
        )
    }

    /// Refuses a form whose `csrf` field is not this session's token (compared in constant
    /// time).
    pub fn check(&self, form: &Form) -> Result<(), Refusal> {
        let sent = form.get("csrf").unwrap_or_default();
        if bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(Refusal(Box::new(forged())))
        }
    }
}

/// A form posted by a signed-in operator, its CSRF token checked.
pub struct Posted {
    /// Who posted it.
    pub session: Session,
    /// Its fields.
    pub form: Form,
}

impl axum::extract::FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let req = axum::extract::Request::from_parts(parts, body);
        let form = Form::from_request(req, state).await?;
        session.check(&form).map_err(IntoResponse::into_response)?;
        Ok(Posted { session, form })
    }
}

/// A form posted by an operator who may act (an admin key), its CSRF token checked.
pub struct Acting(pub Posted);

impl axum::extract::FromRequest<AppState> for Acting {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let posted = Posted::from_request(req, state).await?;
        posted
            .session
            .admin()
            .map_err(IntoResponse::into_response)?;
        Ok(Acting(posted))
    }
}

/// A form refused before it was acted on (a forged one, or one the key may not send).
pub struct Refusal(pub Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The answer to a form without the right token.
fn forged() -> Response {
    render_with(
        StatusCode::FORBIDDEN,
        "error.html",
        minijinja::context! {
            status => 403,
            message => "This form did not come from a page of this console session (its CSRF token is missing or wrong). Reload the page and try again.",
        },
    )
}

/// 32 random bytes, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `token`, hex.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: scoped to the console, out of scripts' reach, never sent by another
/// site's request.
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are URL-safe base64")
}

/// A form posted from another site is refused even before its token is checked: when the
/// browser names the origin, it must be Herald's public URL (`server.public_url`, which a
/// reverse proxy in front of Herald is) or the host the request was sent to.
fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if url::Url::parse(public_url).is_ok_and(|u| u.origin().ascii_serialization() == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    origin_host.is_some() && origin_host == host
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Session::find(parts, state, true).await
    }
}

/// The session of a request that is not use of it: the live tail's stream, which a browser
/// opens again by itself (after a network blip, a proxy's cut, a laptop's sleep), so that a
/// tail left open alone still ends when its session goes idle.
pub struct Watching(pub Session);

impl FromRequestParts<AppState> for Watching {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Session::find(parts, state, false).await.map(Watching)
    }
}

impl Session {
    /// The request's open session, or where to go instead (sign-in, or `403` for a form from
    /// another origin); `touch`: the request is use of it, which moves its idle end on.
    async fn find(parts: &Parts, state: &AppState, touch: bool) -> Result<Session, Response> {
        let to_sign_in = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/console");
            let next = url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
            Redirect::to(&format!("/console/sign-in?next={next}")).into_response()
        };
        if parts.method != axum::http::Method::GET
            && !same_origin(&parts.headers, &state.public_url)
        {
            return Err(forged());
        }
        let Some(token) = cookie(&parts.headers, COOKIE) else {
            return Err(to_sign_in());
        };
        let hash = token_hash(token);
        let record = state
            .store
            .console()
            .session(&hash, OffsetDateTime::now_utc())
            .await
            .map_err(|e| super::pages::PageError::from(e).into_response())?;
        let Some(record) = record.filter(|r| r.csrf != LINK) else {
            return Err(to_sign_in());
        };
        let key: [u8; 32] = hex::decode(&record.key_hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default();
        let Some(principal) = state.keys.by_hash(&key) else {
            return Err(to_sign_in());
        };
        // Use moves the idle end on, written at most once a minute per session (half the
        // timeout when that is shorter), never past the session's end.
        let now = OffsetDateTime::now_utc();
        if let Some(idle) = state.console.idle().filter(|_| touch) {
            let slack = (idle / 2_i32).min(time::Duration::MINUTE);
            let moved = (now + idle).min(record.expires_at);
            if record.idle_until < moved - slack {
                if let Err(e) = state.store.console().touch_session(&hash, moved).await {
                    tracing::warn!(error = %e, "a console session's idle end could not be moved on");
                }
            }
        }
        Ok(Session {
            principal,
            csrf: record.csrf,
            token_hash: hash,
        })
    }
}

/// Where to go after signing in.
#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// `next` when it is a console page of this site written in visible ASCII (it becomes a
/// `Location` header), else the overview.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/console".into(),
    }
}

/// The sign-in form.
pub async fn sign_in_page(State(state): State<AppState>, Query(next): Query<Next>) -> Response {
    sign_in_form(&state, next.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_form(
    state: &AppState,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = random_token();
    let mut page = render_with(
        status,
        "sign_in.html",
        minijinja::context! { csrf => token, next => safe_next(next), error => error },
    );
    page.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(PRE_COOKIE, &token, 600, state.console.secure),
    );
    page
}

/// Opens a session for `principal_hash` (the SHA-256 of its key) and answers with its cookie
/// and a redirect to `next`.
async fn open(state: &AppState, key_hash: [u8; 32], next: &str) -> Result<Response, StoreError> {
    let token = random_token();
    let now = OffsetDateTime::now_utc();
    let ttl = time::Duration::try_from(state.console.session_ttl).unwrap_or(time::Duration::HOUR);
    state
        .store
        .console()
        .open_session(&SessionRecord {
            token_hash: token_hash(&token),
            key_hash: hex::encode(key_hash),
            csrf: random_token(),
            created_at: now,
            expires_at: now + ttl,
            idle_until: now + state.console.idle().unwrap_or(ttl),
        })
        .await?;
    let mut r = Redirect::to(next).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(COOKIE, &token, ttl.whole_seconds(), state.console.secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(PRE_COOKIE, "", 0, state.console.secure),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Signs in with an API key.
pub async fn sign_in(
    State(state): State<AppState>,
    crate::api::ClientAddr(client): crate::api::ClientAddr,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let next = form.get("next");
    let sent = form.get("csrf").unwrap_or_default();
    let expected = cookie(&headers, PRE_COOKIE).unwrap_or_default();
    if !same_origin(&headers, &state.public_url)
        || expected.is_empty()
        || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
    {
        return forged();
    }
    let key = form.get("api_key").unwrap_or_default().trim().to_owned();
    let refused = |why: &str| sign_in_form(&state, next, Some(why), StatusCode::UNAUTHORIZED);
    if key.is_empty() {
        return refused("Enter an API key.");
    }
    match state
        .keys
        .authenticate_from(client, Some(&format!("Bearer {key}")))
    {
        Ok(_) => {}
        Err(crate::auth::AuthError::Throttled(wait)) => {
            return sign_in_form(
                &state,
                next,
                Some(&format!(
                    "Too many wrong API keys from this address: try again in {} seconds.",
                    wait.as_secs().max(1)
                )),
                StatusCode::TOO_MANY_REQUESTS,
            )
        }
        Err(_) => return refused("This API key is not known to Herald."),
    }
    match open(&state, crate::auth::hash(&key), &safe_next(next)).await {
        Ok(r) => r,
        Err(e) => super::pages::PageError::from(e).into_response(),
    }
}

/// A one-time link that signs in with the API key whose hash is `key_hash` (for `herald
/// demo`): valid for ten minutes, once. Returns the token of the link's path.
pub async fn sign_in_link(store: &dyn Store, key_hash: [u8; 32]) -> Result<String, StoreError> {
    let token = random_token();
    let now = OffsetDateTime::now_utc();
    store
        .console()
        .open_session(&SessionRecord {
            token_hash: token_hash(&token),
            key_hash: hex::encode(key_hash),
            csrf: LINK.into(),
            created_at: now,
            expires_at: now + LINK_TTL,
            idle_until: now + LINK_TTL,
        })
        .await?;
    Ok(token)
}

/// Follows a one-time sign-in link.
pub async fn sign_in_by_link(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let hash = token_hash(&token);
    let console = state.store.console();
    let found = match console.session(&hash, OffsetDateTime::now_utc()).await {
        Ok(found) => found.filter(|r| r.csrf == LINK),
        Err(e) => return super::pages::PageError::from(e).into_response(),
    };
    let Some(link) = found else {
        return sign_in_form(
            &state,
            None,
            Some("This sign-in link was used already or has expired. Sign in with an API key."),
            StatusCode::UNAUTHORIZED,
        );
    };
    // Used once: of two requests with one link, only the one that ends it signs in.
    match console.close_session(&hash).await {
        Ok(true) => {}
        Ok(false) => {
            return sign_in_form(
                &state,
                None,
                Some("This sign-in link was used already. Sign in with an API key."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => return super::pages::PageError::from(e).into_response(),
    }
    let key: [u8; 32] = hex::decode(&link.key_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    match open(&state, key, "/console").await {
        Ok(r) => r,
        Err(e) => super::pages::PageError::from(e).into_response(),
    }
}

/// Signs out: the session ends everywhere, the cookie is cleared.
pub async fn sign_out(State(state): State<AppState>, Posted { session, .. }: Posted) -> Response {
    if let Err(e) = state
        .store
        .console()
        .close_session(&session.token_hash)
        .await
    {
        return super::pages::PageError::from(e).into_response();
    }
    let mut r = render(
        "sign_in.html",
        minijinja::context! { signed_out => true, next => "/console" },
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, "", 0, state.console.secure),
    );
    r
}

/// The page frame is made from a session, so it is built here, beside it.
impl<'a> Frame<'a> {
    /// The frame of `session` on a page of `section`.
    pub fn of(session: &'a Session, section: &'static str) -> Self {
        Frame {
            user: &session.principal.name,
            admin: session.principal.admin,
            csrf: &session.csrf,
            section,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_of_this_site_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/console/endpoints?x=1")),
            "/console/endpoints?x=1"
        );
        assert_eq!(safe_next(Some("https://evil.example/console")), "/console");
        assert_eq!(safe_next(Some("/console//evil.example")), "/console");
        assert_eq!(safe_next(None), "/console");
        assert_eq!(safe_next(Some("/console/\r\nSet-Cookie: x=1")), "/console");
        assert_eq!(safe_next(Some("/console/\u{7f}")), "/console");
        assert_eq!(safe_next(Some("/console/é")), "/console");
    }

    #[test]
    fn a_form_from_another_origin_is_refused() {
        let public = "https://herald.example.com";
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h, public), "no Origin: the token decides");
        let origin = |h: &mut HeaderMap, o: &'static str| {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        };
        origin(&mut h, "http://127.0.0.1:8080");
        assert!(same_origin(&h, public));
        // Behind a proxy that rewrites Host, the public URL is the origin.
        origin(&mut h, "https://herald.example.com");
        assert!(same_origin(&h, public));
        origin(&mut h, "http://evil.example");
        assert!(!same_origin(&h, public));
    }

    #[test]
    fn cookies_are_http_only_and_same_site_strict() {
        let c = set_cookie(COOKIE, "abc", 60, true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
    }
}
