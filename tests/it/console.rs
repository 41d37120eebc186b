//! The operator console over real HTTP (its pages in a browser are `tests/browser`): sessions
//! and their cookies, CSRF refusals, read-only keys, a webhook endpoint made in the console
//! (its secret shown once and verified by `standardwebhooks`), and the attempt's request as
//! the console and the API show it, with every secret masked.

use std::time::Duration;

use reqwest::redirect::Policy;
use serde_json::json;

use crate::support::{purchase, wait_for, Receiver, TestApp, ADMIN_KEY};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VIEWER_KEY: &str = "hk_console_viewer_0123456789";

/// A form body, as a browser posts it.
trait Posted {
    fn posted<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self;
}

impl Posted for reqwest::RequestBuilder {
    fn posted<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// GETs a console page of `app` with the session `cookie`.
async fn open(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    cookie: &str,
) -> reqwest::Response {
    http.get(format!("{}{path}", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .expect("the console answers")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` set by `r`, with its attributes.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn value(cookie: &str) -> &str {
    cookie.split(';').next().unwrap().split_once('=').unwrap().1
}

/// The `csrf` field of the first form of `html`.
fn csrf(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form with a CSRF token")
        .to_owned()
}

/// An app with a read-only key of solution contoso, `VIEWER_KEY`, beside the admin key.
async fn with_viewer() -> TestApp {
    TestApp::builder()
        .config(&format!(
            "[[api_keys]]\nname = \"viewer\"\nsha256 = \"{}\"\nsolutions = [\"contoso\"]",
            hex::encode(herald::auth::hash(VIEWER_KEY))
        ))
        .build()
        .await
}

/// Signs in with `key` through the form; returns the `Cookie` header of the session.
pub(crate) async fn sign_in(app: &TestApp, key: &str) -> String {
    let http = client();
    let page = http
        .get(format!("{}/console/sign-in", app.url))
        .send()
        .await
        .unwrap();
    let pre = set_cookie(&page, "herald_sign_in").expect("the sign-in form's cookie");
    let token = csrf(&page.text().await.unwrap());
    let r = http
        .post(format!("{}/console/sign-in", app.url))
        .header("cookie", format!("herald_sign_in={}", value(&pre)))
        .posted(&[
            ("csrf", token.as_str()),
            ("api_key", key),
            ("next", "/console/endpoints"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/endpoints");
    let session = set_cookie(&r, "herald_session").expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(session.contains(attribute), "{session} has {attribute}");
    }
    assert!(!session.contains("Secure"), "not Secure over plain HTTP");
    format!("herald_session={}", value(&session))
}

#[tokio::test]
async fn a_session_acts_only_with_its_token_from_its_origin_and_ends_at_sign_out() {
    let app = with_viewer().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = app
        .subscribe_webhook("hook", &receiver.url(), SECRET, "contoso_CustomerPurchase")
        .await;
    let http = client();
    // Without a session every page sends to the sign-in form, keeping where it was going.
    let r = http
        .get(format!("{}/console/deliveries?status=held", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/console/sign-in?next=%2Fconsole%2Fdeliveries%3Fstatus%3Dheld"
    );
    // A wrong key, and a sign-in form without its double-submitted token.
    let page = http
        .get(format!("{}/console/sign-in", app.url))
        .send()
        .await
        .unwrap();
    let pre = set_cookie(&page, "herald_sign_in").unwrap();
    let token = csrf(&page.text().await.unwrap());
    let wrong = http
        .post(format!("{}/console/sign-in", app.url))
        .header("cookie", format!("herald_sign_in={}", value(&pre)))
        .posted(&[("csrf", token.as_str()), ("api_key", "hk_nobody")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "herald_session").is_none());
    let forged = http
        .post(format!("{}/console/sign-in", app.url))
        .posted(&[("csrf", token.as_str()), ("api_key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "no double-submitted cookie");

    let cookie = sign_in(&app, ADMIN_KEY).await;
    let page = open(
        &http,
        &app,
        &format!("/console/endpoints/{endpoint}"),
        &cookie,
    )
    .await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(!html.contains(SECRET), "no secret on the page");
    let token = csrf(&html);
    let disable = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut r = http
            .post(format!("{}/console/endpoints/{endpoint}/disable", app.url))
            .header("cookie", &cookie)
            .posted(&form);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(
        disable(vec![("reason", "x".into())], None)
            .await
            .unwrap()
            .status(),
        403,
        "no token"
    );
    assert_eq!(
        disable(vec![("csrf", "forged".into())], None)
            .await
            .unwrap()
            .status(),
        403,
        "wrong token"
    );
    assert_eq!(
        disable(vec![("csrf", token.clone())], Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        403,
        "another origin"
    );
    let (_, health) = app.get(&format!("/v1/endpoints/{endpoint}/health")).await;
    assert_eq!(health["state"], "healthy", "nothing changed");
    let done = disable(
        vec![("csrf", token.clone()), ("reason", "maintenance".into())],
        None,
    )
    .await
    .unwrap();
    assert_eq!(done.status(), 303);
    let (_, health) = app.get(&format!("/v1/endpoints/{endpoint}/health")).await;
    assert_eq!(health["state"], "disabled");

    // A read-only key sees, and is refused every action even with its own token.
    let viewer = sign_in(&app, VIEWER_KEY).await;
    // Its overview leaves out what is counted over every solution.
    let overview = open(&http, &app, "/console", &viewer)
        .await
        .text()
        .await
        .unwrap();
    assert!(overview.contains("This key's view") && !overview.contains("events accepted"));
    assert!(!overview.contains("Deliveries by state") && !overview.contains("deliveries due now"));
    let overview = open(&http, &app, "/console", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(overview.contains("events accepted") && overview.contains("Deliveries by state"));
    let html = open(
        &http,
        &app,
        &format!("/console/endpoints/{endpoint}"),
        &viewer,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        !html.contains("/enable\"") && !html.contains("Rotate secret"),
        "no actions shown"
    );
    assert!(
        !html.contains(&receiver.url()),
        "only the receiver's host, not its path, for a read-only key"
    );
    // An endpoint no subscription of its solutions uses is not this key's to see.
    let (status, other) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "someone-elses", "kind": "webhook", "url": "http://127.0.0.1:9/x", "secret": SECRET}),
        )
        .await;
    assert_eq!(status, 201);
    let other = other["endpoint"]["id"].as_str().unwrap().to_owned();
    let list = open(&http, &app, "/console/endpoints", &viewer)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(">hook</a>") && !list.contains("someone-elses"),
        "{list}"
    );
    let one = open(&http, &app, &format!("/console/endpoints/{other}"), &viewer).await;
    assert_eq!(one.status(), 404);
    let as_admin = open(&http, &app, "/console/endpoints", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(as_admin.contains("someone-elses"));
    let enable = format!("/console/endpoints/{endpoint}/enable");
    let r = post_form(&http, &app, &enable, &viewer, &[("csrf", &csrf(&html))]).await;
    assert_eq!(r.status(), 403);

    // Sign-out ends the session for every instance: the store forgets it.
    let r = post_form(
        &http,
        &app,
        "/console/sign-out",
        &cookie,
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(set_cookie(&r, "herald_session")
        .unwrap()
        .contains("Max-Age=0"));
    let r = open(&http, &app, "/console", &cookie).await;
    assert_eq!(r.status(), 303, "the old cookie no longer works");

    // A live tail left open does not hold Herald's shutdown up.
    let tail = open(&http, &app, "/console/tail/stream", &viewer).await;
    assert_eq!(tail.status(), 200);
    assert_eq!(tail.headers()["content-type"], "text/event-stream");
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("Herald stops while a live tail is open");
    drop(tail);
}

#[tokio::test]
async fn an_attempts_request_is_shown_with_every_secret_masked() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    receiver.script_json(&[(400, json!({"error": "no such customer"}))]);
    let (status, ep) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "masked", "kind": "webhook", "url": format!("{}?token=q-s3cret", receiver.url()),
                "secret": SECRET,
                "auth": {"type": "HttpHeader", "values": {"x-api-key": "auth-s3cret"}},
                "headers": [{"name": "X-Tenant", "value": "acme"}, {"name": "X-Static-Key", "value": "static-s3cret", "secret": true}]}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let endpoint = ep["endpoint"]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "masked", "event": "contoso_CustomerPurchase", "endpoint": endpoint}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, accepted) = app
        .post("/v1/events/contoso_CustomerPurchase", &purchase(9.0))
        .await;
    let event = accepted["id"].as_str().unwrap().to_owned();
    let delivery = wait_for(Duration::from_secs(10), "the dead letter", || async {
        let (_, ev) = app.get(&format!("/v1/events/{event}")).await;
        let d = ev["deliveries"][0].clone();
        (d["status"] == "dead_lettered").then_some(d)
    })
    .await;
    let (_, detail) = app
        .get(&format!(
            "/v1/deliveries/{}",
            delivery["id"].as_str().unwrap()
        ))
        .await;
    let attempt = &detail["attempts"][0];
    let shown = attempt.to_string();
    for secret in ["q-s3cret", "auth-s3cret", "static-s3cret", SECRET] {
        assert!(!shown.contains(secret), "{secret} is not shown: {shown}");
    }
    let request = &attempt["request"];
    assert!(
        request["target"]
            .as_str()
            .unwrap()
            .ends_with("/hook?••••••"),
        "{request}"
    );
    let header = |name: &str| {
        request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(header("x-api-key").as_deref(), Some("••••••"));
    assert_eq!(header("X-Static-Key").as_deref(), Some("••••••"));
    assert_eq!(header("X-Tenant").as_deref(), Some("acme"));
    assert_eq!(header("webhook-signature").as_deref(), Some("v1,••••••"));
    assert_eq!(header("webhook-id").as_deref(), delivery["id"].as_str());
    // What the receiver got is what the attempt says was sent.
    let got = &receiver.received()[0];
    assert_eq!(
        header("webhook-timestamp").unwrap(),
        got.header("webhook-timestamp")
    );
    assert_eq!(got.header("x-api-key"), "auth-s3cret");
    assert!(request["body"].as_str().unwrap().contains("\"Total\":9"));
    assert_eq!(
        attempt["response"],
        "HTTP 400 Bad Request\n\n{\"error\":\"no such customer\"}"
    );
    app.stop().await;
}

/// POSTs form `fields` to console page `path` of `app` with the session `cookie`.
async fn post_form(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    http.post(format!("{}{path}", app.url))
        .header("cookie", cookie)
        .posted(fields)
        .send()
        .await
        .expect("the console answers")
}

/// The id of the (first) subscription delivering to `endpoint`, as the API lists them.
async fn subscription_of(app: &TestApp, endpoint: &str) -> Option<String> {
    let (_, subs) = app.get("/v1/subscriptions").await;
    subs.as_array()?
        .iter()
        .find(|s| s["endpoint_id"] == endpoint)
        .and_then(|s| s["id"].as_str())
        .map(str::to_owned)
}

/// Text as HTML escapes it (minijinja escapes `&<>"'/`), read back.
fn unescape(text: &str) -> String {
    [
        ("&#x2f;", "/"),
        ("&#x27;", "'"),
        ("&quot;", "\""),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
}

/// The `id="{id}"` element's `value` attribute in `html`, unescaped.
fn input_value(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let end = rest.find('>')?;
    rest[..end]
        .split("value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .map(unescape)
}

#[tokio::test]
async fn an_admin_makes_a_webhook_endpoint_whose_secret_is_shown_once_and_signs_its_deliveries() {
    let app = with_viewer().await;
    let receiver = Receiver::start().await;
    let http = client();
    let admin = sign_in(&app, ADMIN_KEY).await;
    let list = open(&http, &app, "/console/endpoints", &admin).await;
    assert!(list
        .text()
        .await
        .unwrap()
        .contains("href=\"/console/endpoints/new\""));
    let form = open(&http, &app, "/console/endpoints/new", &admin).await;
    assert_eq!(form.status(), 200);
    let token = csrf(&form.text().await.unwrap());
    let create = |fields: Vec<(&'static str, String)>| {
        let mut all = vec![("csrf", token.clone())];
        all.extend(fields);
        http.post(format!("{}/console/endpoints/new", app.url))
            .header("cookie", &admin)
            .posted(&all)
            .send()
    };

    // Problems are shown beside their fields, with what was typed kept.
    let r = create(vec![
        ("name", "alerts".into()),
        ("url", "".into()),
        ("timeout", "soon".into()),
        ("event", "contoso_NoSuchEvent".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    for field in ["url", "timeout", "event"] {
        assert!(
            html.contains(&format!("id=\"e-{field}\"")),
            "{field}: {html}"
        );
        assert!(
            html.contains(&format!("aria-describedby=\"e-{field}")),
            "{field} points at its error"
        );
    }
    assert_eq!(input_value(&html, "f-name").as_deref(), Some("alerts"));
    // What the registry refuses (a URL that is no URL) goes beside its field too.
    let r = create(vec![("name", "alerts".into()), ("url", "not a url".into())])
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("id=\"e-url\""));
    let (_, endpoints) = app.get("/v1/endpoints").await;
    assert_eq!(endpoints.as_array().unwrap().len(), 0, "nothing was made");

    // Made, with a subscription: the page shows the secret this once.
    let r = create(vec![
        ("name", "alerts".into()),
        ("url", receiver.url()),
        ("signing", "v1".into()),
        ("timeout", "5s".into()),
        ("event", "contoso_CustomerPurchase".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    let secret = input_value(&html, "shown-secret").expect("the secret, shown once");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (_, endpoints) = app.get("/v1/endpoints").await;
    let made = &endpoints[0];
    assert_eq!(made["name"], "alerts");
    assert_eq!(made["timeout"], "5s");
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(
        !made.to_string().contains(&secret),
        "the API never shows it"
    );
    let again = open(&http, &app, &format!("/console/endpoints/{id}"), &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(!unescape(&again).contains(&secret[6..]), "not shown again");
    assert!(
        again.contains("contoso_CustomerPurchase"),
        "its subscription is listed"
    );
    // The name is taken now.
    let r = create(vec![("name", "alerts".into()), ("url", receiver.url())])
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("id=\"e-name\""));

    // Deliveries reach it signed with the secret shown, as standardwebhooks verifies.
    app.send_purchase(12.0).await;
    let got = wait_for(Duration::from_secs(10), "the delivery", || async {
        receiver.received().into_iter().next()
    })
    .await;
    let out =
        crate::webhooks::run_python_verifier(&secret, &[crate::webhooks::signed_request(&got)]);
    assert!(out.contains("verified 1 requests"), "{out}");

    // Unsubscribed from its page: no subscription delivers to it any more.
    let sub = subscription_of(&app, &id)
        .await
        .expect("the subscription made with it");
    let remove = |endpoint: &str, sub: &str| {
        format!("/console/endpoints/{endpoint}/subscriptions/{sub}/remove")
    };
    let csrf_only = [("csrf", token.as_str())];
    let r = post_form(&http, &app, &remove(&id, &sub), &admin, &csrf_only).await;
    assert_eq!(r.status(), 200);
    assert_eq!(subscription_of(&app, &id).await, None);
    // And subscribed again from the same page.
    let subscribe = format!("/console/endpoints/{id}/subscriptions");
    let to = |event| [("csrf", token.as_str()), ("event", event)];
    let r = post_form(
        &http,
        &app,
        &subscribe,
        &admin,
        &to("contoso_CustomerPurchase"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Subscribed to contoso_CustomerPurchase"));
    // An event that is not cataloged is refused, beside what is there.
    let r = post_form(&http, &app, &subscribe, &admin, &to("contoso_NoSuchEvent")).await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Not subscribed to contoso_NoSuchEvent"));
    // Another endpoint's subscription is not this endpoint's to remove.
    let other = Receiver::start().await;
    let (other_ep, _) = app
        .subscribe_webhook("other", &other.url(), SECRET, "contoso_CustomerPurchase")
        .await;
    let others = subscription_of(&app, &other_ep).await.unwrap();
    let r = post_form(&http, &app, &remove(&id, &others), &admin, &csrf_only).await;
    assert_eq!(r.status(), 404);
    let (status, _) = app.get(&format!("/v1/subscriptions/{others}")).await;
    assert_eq!(status, 200, "still there");

    // A key that is not an admin may neither open the form nor post it.
    let viewer = sign_in(&app, VIEWER_KEY).await;
    let r = open(&http, &app, "/console/endpoints/new", &viewer).await;
    assert_eq!(r.status(), 403);
    let page = open(&http, &app, &format!("/console/endpoints/{id}"), &viewer)
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Unsubscribe") && !page.contains("subscribe-event"));
    let viewer_token = csrf(&page);
    let url = receiver.url();
    let fields = [
        ("csrf", viewer_token.as_str()),
        ("name", "sneaky"),
        ("url", url.as_str()),
        ("event", "contoso_CustomerPurchase"),
    ];
    for action in [
        "/console/endpoints/new".to_owned(),
        subscribe.clone(),
        remove(&other_ep, &others),
    ] {
        let r = post_form(&http, &app, &action, &viewer, &fields).await;
        assert_eq!(r.status(), 403, "{action}");
    }
    let (_, endpoints) = app.get("/v1/endpoints").await;
    assert_eq!(endpoints.as_array().unwrap().len(), 2);
    let (_, subs) = app.get("/v1/subscriptions").await;
    assert_eq!(
        subs.as_array().unwrap().len(),
        2,
        "the viewer changed nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_session_left_unused_for_its_idle_timeout_ends_and_use_keeps_it_open() {
    use sha2::Digest;
    let app = TestApp::builder()
        .config("[console]\nidle_timeout = \"5m\"")
        .build()
        .await;
    let http = client();
    let cookie = sign_in(&app, ADMIN_KEY).await;
    let hash = hex::encode(sha2::Sha256::digest(
        cookie.split_once('=').unwrap().1.as_bytes(),
    ));
    let sessions = app.running.state.store.console();
    let now = time::OffsetDateTime::now_utc();
    let record = sessions.session(&hash, now).await.unwrap().expect("open");
    let ahead = record.idle_until - now;
    assert!(
        ahead > time::Duration::minutes(4) && ahead <= time::Duration::minutes(5),
        "idle end 5 minutes after sign-in, not the 8-hour lifetime: {ahead}"
    );
    // Used again close to its idle end: moved on to five minutes from now.
    let reopened = herald::store::console::SessionRecord {
        idle_until: now + time::Duration::seconds(30),
        ..record.clone()
    };
    assert!(sessions.close_session(&hash).await.unwrap());
    sessions.open_session(&reopened).await.unwrap();
    // The live tail's stream is not use: a browser opens it again by itself.
    let tail = open(&http, &app, "/console/tail/stream", &cookie).await;
    assert_eq!(tail.status(), 200);
    drop(tail);
    let kept = sessions.session(&hash, now).await.unwrap().unwrap();
    assert_eq!(
        kept.idle_until.unix_timestamp(),
        reopened.idle_until.unix_timestamp(),
        "the stream moved nothing"
    );
    assert_eq!(open(&http, &app, "/console", &cookie).await.status(), 200);
    let moved = sessions.session(&hash, now).await.unwrap().unwrap();
    assert!(
        moved.idle_until - now > time::Duration::minutes(4),
        "use moved the idle end on: {}",
        moved.idle_until - now
    );
    // Left unused past it: pages ask to sign in again.
    assert!(sessions.close_session(&hash).await.unwrap());
    sessions
        .open_session(&herald::store::console::SessionRecord {
            idle_until: now - time::Duration::seconds(1),
            ..record
        })
        .await
        .unwrap();
    let r = open(&http, &app, "/console", &cookie).await;
    assert_eq!(r.status(), 303, "gone idle");
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/sign-in"));
    app.stop().await;
}

#[tokio::test]
async fn a_live_tail_hears_every_instance_that_shares_the_store() {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let store = format!(
        "[store]\nurl = \"{}\"\nschema = \"{schema}\"\n",
        crate::support::pg_url()
    );
    let a = TestApp::builder().config(&store).build().await;
    let b = TestApp::builder().config(&store).build().await;
    let receiver = Receiver::start().await;
    a.subscribe_webhook("hook", &receiver.url(), SECRET, "contoso_CustomerPurchase")
        .await;
    let http = client();
    let cookie = sign_in(&a, ADMIN_KEY).await;
    let mut tail = open(&http, &a, "/console/tail/stream", &cookie).await;
    assert_eq!(tail.status(), 200);
    // Events sent to b are accepted by b alone: a's tail shows them only if b tells it.
    let mut text = String::new();
    let mut sent = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let heard = loop {
        sent.push(b.send_purchase(1.0).await);
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, tail.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let happenings: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect();
        let from_b: Vec<serde_json::Value> = happenings
            .into_iter()
            .filter(|h| {
                h["kind"] == "accepted" && sent.iter().any(|id| h["event_id"] == id.as_str())
            })
            .collect();
        if !from_b.is_empty() {
            break from_b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a's tail never heard of the events sent to b: {text}"
        );
    };
    assert_eq!(heard[0]["event_name"], "contoso_CustomerPurchase");
    assert_eq!(heard[0]["solution"], "contoso");
    drop(tail);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_open_live_tail_ends_within_its_recheck_after_sign_out() {
    let app = TestApp::start().await;
    let http = client();
    let cookie = sign_in(&app, ADMIN_KEY).await;
    let page = open(&http, &app, "/console/tail", &cookie)
        .await
        .text()
        .await
        .unwrap();
    let mut tail = open(&http, &app, "/console/tail/stream", &cookie).await;
    assert_eq!(tail.status(), 200);
    let token = csrf(&page);
    let r = post_form(
        &http,
        &app,
        "/console/sign-out",
        &cookie,
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    // The stream re-checks its session every 15 s: at the next check it says so and ends.
    let said = tokio::time::timeout(Duration::from_secs(30), async {
        let mut said = String::new();
        while let Ok(Some(chunk)) = tail.chunk().await {
            said.push_str(&String::from_utf8_lossy(&chunk));
        }
        said
    })
    .await
    .expect("the live tail ended after sign-out");
    assert!(said.contains("event: ended"), "{said}");
    app.stop().await;
}

#[tokio::test]
async fn replaying_from_the_console_says_what_was_not_replayed() {
    let app = TestApp::start().await;
    let refusing = Receiver::start().await;
    refusing.answer(400);
    app.subscribe_webhook(
        "refusing",
        &refusing.url(),
        SECRET,
        "contoso_CustomerPurchase",
    )
    .await;
    let event = app.send_purchase(3.0).await;
    let dead = wait_for(Duration::from_secs(10), "a dead letter", || async {
        let (_, e) = app.get(&format!("/v1/events/{event}")).await;
        let d = &e["deliveries"][0];
        (d["status"] == "dead_lettered").then(|| d["id"].as_str().unwrap().to_owned())
    })
    .await;
    refusing.answer(200);
    let http = client();
    let cookie = sign_in(&app, ADMIN_KEY).await;
    let page = open(&http, &app, "/console/dead-letters", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&dead));
    let token = csrf(&page);
    // The dead letter, and one that is none (never made): one replayed, one said not to be.
    let none = "msg_01a23d0db6f5702bb013b8ab4bcf7541";
    let fields = [
        ("csrf", token.as_str()),
        ("ids", dead.as_str()),
        ("ids", none),
    ];
    let r = post_form(
        &http,
        &app,
        "/console/dead-letters/replay",
        &cookie,
        &fields,
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("1 dead letter was made due now"), "{html}");
    assert!(
        html.contains("1 of the selected was not replayed"),
        "{html}"
    );
    wait_for(Duration::from_secs(10), "the replayed delivery", || async {
        (refusing.count() >= 2).then_some(())
    })
    .await;
    // Replaying it again: it is no dead letter any more, and the page says so.
    let fields = [("csrf", token.as_str()), ("ids", dead.as_str())];
    let r = post_form(
        &http,
        &app,
        "/console/dead-letters/replay",
        &cookie,
        &fields,
    )
    .await;
    let html = r.text().await.unwrap();
    assert!(html.contains("0 dead letters were made due now"), "{html}");
    assert!(
        html.contains("1 of the selected was not replayed"),
        "{html}"
    );
    // A range with nothing in it replays nothing, and says how many.
    let fields = [
        ("csrf", token.as_str()),
        ("scope", "range"),
        ("from", "2020-01-01T00:00"),
        ("to", "2020-01-02T00:00"),
    ];
    let r = post_form(
        &http,
        &app,
        "/console/dead-letters/replay",
        &cookie,
        &fields,
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("0 dead letters were made due now"), "{html}");
    assert!(
        unescape(&html)
            .contains("href=\"/console/deliveries?from=2020-01-01T00%3A00&to=2020-01-02T00%3A00\""),
        "a link to the range's deliveries: {html}"
    );
    app.stop().await;
}
