//! The Service Bus administration API (the management REST API with Atom XML bodies) that
//! `ServiceBusAdministrationClient` speaks in Python, JavaScript and .NET: queues, topics,
//! subscriptions and rules — create, get, update, delete, list — with runtime counts, and the
//! namespace's properties. Served over HTTPS on the AMQP port (see [`crate::tls`]), authorized with
//! the same SAS tokens as AMQP.

mod describe;
mod xml;

use crate::broker::handle::{now_ms, BrokerHandle};
use crate::broker::{Broker, BrokerError, Put, RuleSpec, StoreKey};
use crate::server::cbs::{self, Policy};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use describe::Counts;
use std::collections::HashMap;
use std::sync::Arc;

/// What the administration API works on.
#[derive(Clone)]
pub struct AdminState {
    /// The broker.
    pub broker: BrokerHandle,
    /// Shared access policies that sign the callers' tokens.
    pub policies: Vec<Policy>,
}

/// The API's routes (every path is read by [`handle`]).
pub fn router(state: AdminState) -> Router {
    Router::new().fallback(handle).with_state(Arc::new(state))
}

const API_VERSION: &str = "2021-05";
const ENTRY: &str = "application/atom+xml;type=entry;charset=utf-8";
const FEED: &str = "application/atom+xml;type=feed;charset=utf-8";

/// Why a request failed; answered as Service Bus answers: a status and
/// `<Error><Code/><Detail/></Error>`.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    /// No token, or one that does not open the path.
    #[error("{0}")]
    Unauthorized(String),
    /// Nothing at this path.
    #[error("{0}")]
    NotFound(String),
    /// The body is not what the path takes.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not XML.
    #[error(transparent)]
    Xml(#[from] xml::XmlError),
    /// A description with a wrong or unsupported setting.
    #[error(transparent)]
    Description(#[from] describe::BadDescription),
    /// The broker refused.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::NotFound(_) | AdminError::Broker(BrokerError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            AdminError::Broker(BrokerError::AlreadyExists(_)) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = format!(
            "<Error><Code>{}</Code><Detail>{}</Detail></Error>",
            status.as_u16(),
            xml::escape(&self.to_string())
        );
        (
            status,
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

/// What a handler answers.
type Answer = Result<Response, AdminError>;

fn atom(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Checks the caller's SAS token against the policies and the path it asks for.
fn authorize(s: &AdminState, headers: &HeaderMap, path: &str) -> Result<(), AdminError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AdminError::Unauthorized(
                "a SharedAccessSignature token is required in the Authorization header".into(),
            )
        })?;
    let now = now_ms() / 1000;
    let grant = cbs::verify(token, "", &s.policies, false, now)
        .map_err(|e| AdminError::Unauthorized(format!("Unauthorized: {e}")))?;
    if cbs::covers(&[grant], &path.to_ascii_lowercase(), now) {
        Ok(())
    } else {
        Err(AdminError::Unauthorized(format!(
            "Unauthorized: the token does not cover '{path}'"
        )))
    }
}

/// Every request: authorization, then the resource its path names.
async fn handle(
    State(s): State<Arc<AdminState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .trim_matches('/')
        .to_owned();
    if let Err(e) = authorize(&s, &headers, &path) {
        return e.into_response();
    }
    let query: HashMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let d = |x: &str| {
                percent_encoding::percent_decode_str(x)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect();
    let page = Page::of(&query);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let r = Request {
        base: format!("https://{host}"),
        update: headers
            .get(header::IF_MATCH)
            .is_some_and(|v| v.as_bytes() == b"*"),
        body,
    };
    let segs: Vec<&str> = path.split('/').collect();
    let lower: Vec<String> = segs.iter().map(|x| x.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let answer = match (&method, lower.as_slice()) {
        (&Method::GET, ["$namespaceinfo"]) => namespace_info(&r),
        (&Method::GET, ["$resources", "queues"]) => list(&s, &r, &page, Kind::Queues),
        (&Method::GET, ["$resources", "topics"]) => list(&s, &r, &page, Kind::Topics),
        (&Method::GET, [_, "subscriptions"]) => list(&s, &r, &page, Kind::Subscriptions(segs[0])),
        (&Method::GET, [_, "subscriptions", _, "rules"]) => {
            list(&s, &r, &page, Kind::Rules(segs[0], segs[2]))
        }
        (&Method::GET, [_]) => entity(&s, &r, segs[0]),
        (&Method::PUT, [_]) => put_entity(&s, &r, segs[0]),
        (&Method::DELETE, [_]) => deleted(s.broker.with(|b, _| b.delete_entity(segs[0]))),
        (&Method::GET, [_, "subscriptions", _]) => subscription(&s, &r, segs[0], segs[2]),
        (&Method::PUT, [_, "subscriptions", _]) => put_subscription(&s, &r, segs[0], segs[2]),
        (&Method::DELETE, [_, "subscriptions", _]) => deleted(
            s.broker
                .with(|b, _| b.delete_subscription(segs[0], segs[2])),
        ),
        (&Method::GET, [_, "subscriptions", _, "rules", _]) => {
            rule(&s, &r, segs[0], segs[2], segs[4])
        }
        (&Method::PUT, [_, "subscriptions", _, "rules", _]) => {
            put_rule(&s, &r, segs[0], segs[2], segs[4])
        }
        (&Method::DELETE, [_, "subscriptions", _, "rules", _]) => deleted(
            s.broker
                .with(|b, _| b.remove_rule(segs[0], segs[2], segs[4])),
        ),
        _ => Err(AdminError::NotFound(format!(
            "no administration resource at {method} /{path}"
        ))),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// What a handler needs of the request.
struct Request {
    base: String,
    update: bool,
    body: Bytes,
}

impl Request {
    fn put(&self) -> Put {
        if self.update {
            Put::Update
        } else {
            Put::Create
        }
    }

    /// The description inside the body's entry (`entry/content/<name>`), whichever it is.
    fn description(&self) -> Result<xml::Element, AdminError> {
        let root = xml::parse(&self.body)?;
        root.find(&["content"])
            .and_then(|c| c.children.first())
            .cloned()
            .ok_or_else(|| {
                AdminError::BadRequest(
                    "the body must be an Atom entry whose content holds a description".into(),
                )
            })
    }

    fn answer(
        &self,
        created: bool,
        path: &str,
        title: &str,
        updated_ms: i64,
        content: &str,
    ) -> Answer {
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(atom(
            status,
            ENTRY,
            describe::entry(&self.base, path, title, updated_ms, content),
        ))
    }
}

/// `$skip` and `$top` of a list request.
struct Page {
    skip: usize,
    top: usize,
}

impl Page {
    fn of(q: &HashMap<String, String>) -> Page {
        let n = |k: &str, d: usize| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        Page {
            skip: n("$skip", 0),
            top: n("$top", 100).clamp(1, 1000),
        }
    }
}

enum Kind<'a> {
    Queues,
    Topics,
    Subscriptions(&'a str),
    Rules(&'a str, &'a str),
}

fn deleted(r: Result<(), BrokerError>) -> Answer {
    r?;
    Ok(StatusCode::OK.into_response())
}

fn counts(b: &Broker, main: &StoreKey, dlq: &StoreKey) -> Counts {
    let c = b.counts(main).unwrap_or_default();
    let d = b.counts(dlq).unwrap_or_default();
    Counts {
        active: c.active,
        dead_letter: d.active + d.scheduled + d.deferred,
        scheduled: c.scheduled,
        deferred: c.deferred,
        bytes: c.bytes + d.bytes,
    }
}

fn queue_content(b: &Broker, name: &str) -> Option<(String, i64)> {
    let q = b.queue_spec(name)?;
    let n = name.to_ascii_lowercase();
    let c = counts(
        b,
        &StoreKey::Queue(n.clone()),
        &StoreKey::QueueDlq(n.clone()),
    );
    let t = b.times(&n);
    Some((describe::queue_xml(&q, t, &c), t.updated_ms))
}

fn topic_content(b: &Broker, name: &str) -> Option<(String, i64)> {
    let tp = b.topic_spec(name)?;
    let n = name.to_ascii_lowercase();
    let subs = b.subscription_names(&n).unwrap_or_default();
    let mut c = Counts::default();
    for s in &subs {
        let x = counts(
            b,
            &StoreKey::Sub(n.clone(), s.clone()),
            &StoreKey::SubDlq(n.clone(), s.clone()),
        );
        c.scheduled += x.scheduled;
        c.bytes += x.bytes;
    }
    let t = b.times(&n);
    Some((describe::topic_xml(&tp, t, subs.len(), &c), t.updated_ms))
}

fn subscription_content(b: &Broker, topic: &str, sub: &str) -> Option<(String, i64)> {
    let s = b.subscription_spec(topic, sub)?;
    let (tn, sn) = (topic.to_ascii_lowercase(), sub.to_ascii_lowercase());
    let c = counts(
        b,
        &StoreKey::Sub(tn.clone(), sn.clone()),
        &StoreKey::SubDlq(tn.clone(), sn.clone()),
    );
    let t = b.times(&format!("{tn}/subscriptions/{sn}"));
    Some((describe::subscription_xml(&s, t, &c), t.updated_ms))
}

fn namespace_info(r: &Request) -> Answer {
    let now = describe::utc(now_ms());
    let content = format!(
        r#"<NamespaceInfo xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><CreatedTime>{now}</CreatedTime><MessagingSKU>Standard</MessagingSKU><MessagingUnits>1</MessagingUnits><ModifiedTime>{now}</ModifiedTime><Name>local-emulator</Name><NamespaceType>Messaging</NamespaceType></NamespaceInfo>"#
    );
    r.answer(
        false,
        "$namespaceinfo",
        "local-emulator",
        now_ms(),
        &content,
    )
}

fn entity(s: &AdminState, r: &Request, name: &str) -> Answer {
    let found = s.broker.with(|b, _| {
        queue_content(b, name)
            .map(|c| (c, b.queue_spec(name).map(|q| q.name)))
            .or_else(|| topic_content(b, name).map(|c| (c, b.topic_spec(name).map(|t| t.name))))
    });
    let ((content, updated), title) = found.ok_or_else(|| {
        AdminError::NotFound(format!("the messaging entity '{name}' could not be found"))
    })?;
    let title = title.unwrap_or_else(|| name.to_owned());
    r.answer(false, &title, &title, updated, &content)
}

fn put_entity(s: &AdminState, r: &Request, name: &str) -> Answer {
    let d = r.description()?;
    let (created, content) = match d.name.as_str() {
        "QueueDescription" => {
            let q = describe::queue_from(name, &d)?;
            s.broker.with(|b, now| {
                b.put_queue(q, r.put(), now)
                    .map(|created| (created, queue_content(b, name)))
            })?
        }
        "TopicDescription" => {
            let t = describe::topic_from(name, &d)?;
            s.broker.with(|b, now| {
                b.put_topic(t, r.put(), now)
                    .map(|created| (created, topic_content(b, name)))
            })?
        }
        other => {
            return Err(AdminError::BadRequest(format!(
                "expected a QueueDescription or a TopicDescription, not {other}"
            )))
        }
    };
    let (content, updated) = content.ok_or_else(|| AdminError::NotFound(name.to_owned()))?;
    r.answer(created, name, name, updated, &content)
}

fn subscription(s: &AdminState, r: &Request, topic: &str, sub: &str) -> Answer {
    let (content, updated) = s
        .broker
        .with(|b, _| subscription_content(b, topic, sub))
        .ok_or_else(|| {
            AdminError::NotFound(format!(
                "the subscription '{topic}/Subscriptions/{sub}' could not be found"
            ))
        })?;
    r.answer(
        false,
        &format!("{topic}/Subscriptions/{sub}"),
        sub,
        updated,
        &content,
    )
}

fn put_subscription(s: &AdminState, r: &Request, topic: &str, sub: &str) -> Answer {
    let spec = describe::subscription_from(sub, &r.description()?)?;
    let (created, content) = s.broker.with(|b, now| {
        b.put_subscription(topic, spec, r.put(), now)
            .map(|created| (created, subscription_content(b, topic, sub)))
    })?;
    let (content, updated) =
        content.ok_or_else(|| AdminError::NotFound(format!("{topic}/Subscriptions/{sub}")))?;
    r.answer(
        created,
        &format!("{topic}/Subscriptions/{sub}"),
        sub,
        updated,
        &content,
    )
}

fn rule_content(
    b: &Broker,
    topic: &str,
    sub: &str,
    name: &str,
) -> Result<(RuleSpec, i64), BrokerError> {
    let rule = b
        .rules(topic, sub)?
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            BrokerError::NotFound(format!("the rule '{name}' of {topic}/Subscriptions/{sub}"))
        })?;
    let t = b.times(&format!(
        "{}/subscriptions/{}",
        topic.to_ascii_lowercase(),
        sub.to_ascii_lowercase()
    ));
    Ok((rule, t.updated_ms))
}

fn rule(s: &AdminState, r: &Request, topic: &str, sub: &str, name: &str) -> Answer {
    let (rule, at) = s.broker.with(|b, _| rule_content(b, topic, sub, name))?;
    r.answer(
        false,
        &format!("{topic}/Subscriptions/{sub}/Rules/{}", rule.name),
        &rule.name,
        at,
        &describe::rule_xml(&rule, at),
    )
}

fn put_rule(s: &AdminState, r: &Request, topic: &str, sub: &str, name: &str) -> Answer {
    let rule = describe::rule_from(name, &r.description()?, "RuleDescription")?;
    let update = r.update;
    let (rule, at) = s.broker.with(|b, _| {
        if update {
            b.remove_rule(topic, sub, name)?;
        }
        b.add_rule(topic, sub, rule)?;
        rule_content(b, topic, sub, name)
    })?;
    r.answer(
        !update,
        &format!("{topic}/Subscriptions/{sub}/Rules/{}", rule.name),
        &rule.name,
        at,
        &describe::rule_xml(&rule, at),
    )
}

fn list(s: &AdminState, r: &Request, page: &Page, kind: Kind<'_>) -> Answer {
    let (path, title) = match &kind {
        Kind::Queues => ("$Resources/queues".to_owned(), "Queues"),
        Kind::Topics => ("$Resources/topics".to_owned(), "Topics"),
        Kind::Subscriptions(t) => (format!("{t}/Subscriptions"), "Subscriptions"),
        Kind::Rules(t, sub) => (format!("{t}/Subscriptions/{sub}/Rules"), "Rules"),
    };
    let entries: Result<(Vec<String>, usize), BrokerError> = s.broker.with(|b, _| {
        let entry = |p: String, title: &str, (content, updated): (String, i64)| {
            describe::entry(&r.base, &p, title, updated, &content)
        };
        let all: Vec<String> = match &kind {
            Kind::Queues => b
                .queue_names()
                .into_iter()
                .filter_map(|q| queue_content(b, &q).map(|c| entry(q.clone(), &q, c)))
                .collect(),
            Kind::Topics => b
                .topic_names()
                .into_iter()
                .filter_map(|t| topic_content(b, &t).map(|c| entry(t.clone(), &t, c)))
                .collect(),
            Kind::Subscriptions(t) => b
                .subscription_names(t)
                .ok_or_else(|| BrokerError::NotFound((*t).to_owned()))?
                .into_iter()
                .filter_map(|sub| {
                    subscription_content(b, t, &sub)
                        .map(|c| entry(format!("{t}/Subscriptions/{sub}"), &sub, c))
                })
                .collect(),
            Kind::Rules(t, sub) => {
                let at = b
                    .times(&format!(
                        "{}/subscriptions/{}",
                        t.to_ascii_lowercase(),
                        sub.to_ascii_lowercase()
                    ))
                    .updated_ms;
                b.rules(t, sub)?
                    .iter()
                    .map(|rule| {
                        entry(
                            format!("{t}/Subscriptions/{sub}/Rules/{}", rule.name),
                            &rule.name,
                            (describe::rule_xml(rule, at), at),
                        )
                    })
                    .collect()
            }
        };
        let total = all.len();
        Ok((
            all.into_iter().skip(page.skip).take(page.top).collect(),
            total,
        ))
    });
    let (page_entries, total) = entries?;
    let next_skip = page.skip.saturating_add(page.top);
    let next = (next_skip < total).then(|| {
        format!(
            "{}/{path}?$skip={next_skip}&$top={}&api-version={API_VERSION}",
            r.base, page.top
        )
    });
    Ok(atom(
        StatusCode::OK,
        FEED,
        describe::feed(&r.base, &path, title, &page_entries, next),
    ))
}
