//! What went over the wire in one attempt, as operators see it: the request Herald sent
//! (headers for webhooks, message properties for AMQP) with every secret and signature
//! masked, and the start of the receiver's answer. Kept with the attempt; never holds a
//! secret, so it may be shown as it is.

use serde::{Deserialize, Serialize};

/// How a masked value reads.
pub const MASKED: &str = "••••••";

/// At most this many bytes of an answer's body are kept.
pub const RESPONSE_START: usize = 1024;
/// At most this many bytes of a request's body are kept.
pub const BODY_START: usize = 4096;

/// One attempt's request and the start of its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Where it went: the webhook URL (its query string masked), or the queue, topic or hub.
    pub target: String,
    /// The request's headers (webhooks) or the message's properties (AMQP), in the order
    /// sent; secret values and signatures masked.
    pub headers: Vec<(String, String)>,
    /// The start of the body sent (at most [`BODY_START`] bytes; it holds no secret: the
    /// event's parameters in the subscription's format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The start of the answer: its status line and the first bytes of its body (webhooks),
    /// or the broker's outcome (AMQP). `None` when nothing answered.
    pub response: Option<String>,
    /// Whether a successful attempt keeps this (`delivery.keep_requests = "all"`); when not,
    /// a destination need not read the start of a successful answer.
    #[serde(skip)]
    pub kept_on_success: bool,
}

impl Exchange {
    /// Adds a header shown as it is.
    pub fn header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Adds a header whose value is a secret: its name only.
    pub fn masked(&mut self, name: &str) {
        self.headers.push((name.to_owned(), MASKED.to_owned()));
    }

    /// Adds a signature header: each signature's scheme (`v1,`, `v1a,`) kept, its value masked.
    pub fn signature(&mut self, name: &str, value: &str) {
        let masked: Vec<String> = value
            .split(' ')
            .map(|s| match s.split_once(',') {
                Some((scheme, _)) => format!("{scheme},{MASKED}"),
                None => MASKED.to_owned(),
            })
            .collect();
        self.headers.push((name.to_owned(), masked.join(" ")));
    }

    /// Keeps the start of the body sent.
    pub fn sent(&mut self, body: &[u8]) {
        self.body = Some(start_of(body, BODY_START));
    }

    /// Sets the answer: a status line and the start of the body (cut at a character boundary,
    /// at most [`RESPONSE_START`] bytes).
    pub fn answered(&mut self, status: &str, body: &[u8]) {
        let mut text = String::from(status);
        if !body.is_empty() {
            text.push_str("\n\n");
            text.push_str(&start_of(body, RESPONSE_START));
        }
        self.response = Some(text);
    }
}

/// Up to `limit` bytes of `bytes` as text, cut at a character boundary, `…` when cut.
pub fn start_of(bytes: &[u8], limit: usize) -> String {
    let cut = &bytes[..bytes.len().min(limit)];
    let mut text = String::from_utf8_lossy(cut)
        .trim_end_matches('\u{FFFD}')
        .to_owned();
    if bytes.len() > limit {
        text.push('…');
    }
    text
}

/// A URL as it may be shown: its query values masked (a query string often carries a key), no
/// user info. The result is for reading, not a URL to request (the mask is not encoded).
pub fn masked_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return MASKED.to_owned();
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_fragment(None);
    // The whole query: a bare `?token` is as secret as `?code=token`.
    let had_query = parsed.query().is_some_and(|q| !q.is_empty());
    parsed.set_query(None);
    if had_query {
        format!("{parsed}?{MASKED}")
    } else {
        parsed.to_string()
    }
}

/// Only where a URL leads: its scheme, host and port (a path may hold a token, as incoming
/// webhooks' paths do), for those who may see that an endpoint exists but not its address.
pub fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or_default()),
        Err(_) => MASKED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_keep_their_scheme_and_lose_their_value() {
        let mut x = Exchange::default();
        x.signature("webhook-signature", "v1,abc= v1a,def=");
        assert_eq!(x.headers[0].1, format!("v1,{MASKED} v1a,{MASKED}"));
    }

    #[test]
    fn query_values_and_user_info_are_masked() {
        let shown = masked_url("https://user:pw@example.com/hook?code=s3cret&x=1#frag");
        assert_eq!(shown, format!("https://example.com/hook?{MASKED}"));
        assert_eq!(
            masked_url("https://h/hook?s3cret"),
            format!("https://h/hook?{MASKED}")
        );
        assert_eq!(masked_url("https://h/hook"), "https://h/hook");
        let host = host_of("https://hooks.example.com/services/T0/B0/s3cret");
        assert_eq!(host, "https://hooks.example.com/…");
    }

    #[test]
    fn the_answer_is_cut_at_a_character_boundary() {
        let mut x = Exchange::default();
        let body = "é".repeat(RESPONSE_START); // two bytes each
        x.answered("HTTP 400", body.as_bytes());
        let r = x.response.unwrap();
        assert!(r.starts_with("HTTP 400\n\né") && r.ends_with('…'));
        assert!(!r.contains('\u{FFFD}'));
    }
}
