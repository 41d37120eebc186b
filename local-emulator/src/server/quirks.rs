//! Where the official SDKs differ from each other or from the letter of AMQP, in one place.
//! Each quirk has a test named after it.

use super::codec::Value;

/// Clients send `amqps://localhost/eh1`, `amqps://127.0.0.1:PORT/queue1` or bare `queue1`:
/// strip the scheme and host and keep the path.
pub fn strip_scheme_and_host(address: &str) -> &str {
    match address.find("://") {
        Some(i) => {
            let rest = &address[i + 3..];
            rest.find('/').map_or("", |j| &rest[j + 1..])
        }
        None => address.trim_start_matches('/'),
    }
}

/// Python Service Bus sends `type=jwt` even for a SAS token: the token's prefix decides.
pub fn is_sas_token(token: &str) -> bool {
    token.starts_with("SharedAccessSignature ")
}

/// Python, .NET and Node read the lock token from the 16-byte delivery tag as a little-endian
/// (.NET layout) GUID; management bodies carry the same token as an RFC-order AMQP uuid.
pub fn delivery_tag_for_lock(token: uuid::Uuid) -> [u8; 16] {
    token.to_bytes_le()
}

/// Reads a lock token from a management body (an RFC-order uuid; some clients send binary in
/// the little-endian layout).
pub fn lock_token_from_value(v: &Value) -> Option<uuid::Uuid> {
    match v.inner() {
        Value::Uuid(u) => Some(uuid::Uuid::from_bytes(*u)),
        Value::Binary(b) if b.len() == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(uuid::Uuid::from_bytes_le(a))
        }
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Python omits reply-to on CBS requests: answer on the link the client attached with source
/// `$cbs` (or the requests's node) when no link's target matches the reply-to address.
pub fn reply_link_matches(
    reply_to: Option<&str>,
    link_target: &str,
    link_source: &str,
    node: &str,
) -> (bool, bool) {
    let exact = reply_to.is_some_and(|r| !r.is_empty() && r == link_target);
    let fallback = strip_scheme_and_host(link_source).eq_ignore_ascii_case(node);
    (exact, fallback)
}

/// Event Hubs position filters come as `apache.org:selector-filter:string`, keyed by that name
/// or any other, with the descriptor as a symbol or the numeric code `0x468C00000004`.
pub fn selector_filter(filter_set: &Value) -> Option<String> {
    filter_set.as_map()?.iter().find_map(|(_, v)| match v {
        Value::Described(_, inner) if v.descriptor_code() == Some(0x0000_468C_0000_0004) => {
            inner.as_str().map(str::to_owned)
        }
        _ => None,
    })
}

/// The source filter that makes a receiver a session receiver. Python sends the session id as
/// a plain string (null for the next available session); others wrap it in a described value
/// with this symbol or the numeric code `0x0000013700000000C`.
pub const SESSION_FILTER: &str = "com.microsoft:session-filter";

/// Attach property with a session lock's expiry, in .NET ticks.
pub const LOCKED_UNTIL_UTC: &str = "com.microsoft:locked-until-utc";

/// Attach property with an Event Hubs reader's epoch (owner level).
pub const EPOCH: &str = "com.microsoft:epoch";

/// Attach property with how long the client waits for the operation (ms).
pub const OPERATION_TIMEOUT: &str = "com.microsoft:timeout";

/// Whether a receiver asks for a session: `None` when its filter set has no session filter,
/// `Some(None)` for the next available session, `Some(Some(id))` for a given one.
pub fn session_filter(filter_set: &Value) -> Option<Option<String>> {
    let (_, v) = filter_set
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(SESSION_FILTER))?;
    Some(v.inner().as_str().map(str::to_owned))
}

/// The source of an attach reply naming the session a receiver got, as a plain string (the
/// SDKs read it back from there: Python decodes it as text, .NET and Node read a string).
pub fn with_session_filter(source: Value, session: &str) -> Value {
    let Value::Described(d, v) = source else {
        return source;
    };
    let mut fields = v.as_seq().map(<[Value]>::to_vec).unwrap_or_default();
    if fields.len() < 8 {
        fields.resize(8, Value::Null);
    }
    fields[7] = Value::Map(vec![(Value::sym(SESSION_FILTER), Value::str(session))]);
    Value::Described(d, Box::new(Value::List(fields)))
}

/// A time (unix ms) in .NET ticks, as Service Bus writes `com.microsoft:locked-until-utc`.
pub fn dotnet_ticks(unix_ms: i64) -> i64 {
    const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;
    UNIX_EPOCH_TICKS.saturating_add(unix_ms.saturating_mul(10_000))
}

/// fe2o3-amqp 0.16's sender (under `azure_core_amqp`) records an unsettled delivery only after
/// writing its transfer; a disposition that arrives sooner is lost and `send` waits forever.
/// Dispositions for incoming transfers are therefore held back this long (and coalesced).
pub const DISPOSITION_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// Whether a connection's dispositions and detach replies are held back
/// ([`DISPOSITION_DELAY`], [`HeldDetachReplies`]): for every client but those that say they
/// are not fe2o3-amqp. The Python (`azsdk-python-…`) and JavaScript (`azsdk-js-…`, product
/// `MSJSClient`) SDKs name themselves in the `user-agent` and `product` properties of their
/// `open` frame; they get every disposition at once. An unknown client keeps the hold-back,
/// which costs it at most 5 ms per awaited send but never a lost settlement.
pub fn holds_back(open: &Value) -> bool {
    let Some(properties) = open.field(9).as_map() else {
        return true;
    };
    let says = |name: &str| {
        properties
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .and_then(|(_, v)| v.as_str())
    };
    let not_fe2o3 = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.starts_with("azsdk-python") || s.starts_with("azsdk-js") || s == "msjsclient"
    };
    !(says("user-agent").is_some_and(not_fe2o3) || says("product").is_some_and(not_fe2o3))
}

/// The settled echo of a successful settlement repeats the client's outcome, but a
/// `rejected` (dead-letter) echo carries no error: Python reads an error there as failure.
pub fn settled_echo(state: &Value) -> Value {
    if state.descriptor_code() == Some(super::frame::code::REJECTED) {
        return super::frame::rejected(Value::Null);
    }
    state.clone()
}

/// Status properties of a management or CBS reply in both spellings: the AMQP management
/// draft's `status-code`/`status-description`, which the Rust and Python SDKs read, and the
/// camel-case `statusCode`/`statusDescription` that Service Bus also sends and that other
/// clients (Node's `@azure/core-amqp` among them) look for.
pub fn status_properties(code: i32, description: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("status-code", Value::Int(code)),
        ("status-description", Value::str(description)),
        ("statusCode", Value::Int(code)),
        ("statusDescription", Value::str(description)),
    ]
}

/// Replies to the peer's detaches, held back like dispositions (see [`DISPOSITION_DELAY`]).
/// The Rust SDKs drop a link and then its session right after authorizing it: fe2o3 sends
/// `detach` and `end` back to back and may forget the link's handle before the reply comes. A
/// reply for a forgotten handle makes fe2o3 end the session with an error, and the `end`
/// reply then reaches a session that is gone, which fe2o3 treats as fatal for the whole
/// connection ("Session is not found"). Replies still held when the session's `end` arrives
/// are dropped: the `end` reply alone completes the exchange.
#[derive(Debug, Default)]
pub struct HeldDetachReplies(Vec<(u16, Value)>);

impl HeldDetachReplies {
    /// Holds the reply to a detach on session `channel`.
    pub fn hold(&mut self, channel: u16, reply: Value) {
        self.0.push((channel, reply));
    }

    /// The peer ended session `channel`: its held replies are never sent.
    pub fn session_ended(&mut self, channel: u16) {
        self.0.retain(|(c, _)| *c != channel);
    }

    /// Whether replies are waiting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The replies to send now, in order, with their channels.
    pub fn take(&mut self) -> Vec<(u16, Value)> {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clients_that_name_themselves_python_or_javascript_skip_the_hold_back() {
        let open = |props: &[(&str, &str)]| {
            let map = props
                .iter()
                .map(|(k, v)| (Value::Symbol((*k).into()), Value::str(v)))
                .collect();
            let mut fields = vec![Value::Null; 9];
            fields.push(Value::Map(map));
            Value::List(fields)
        };
        let python = [
            ("product", "azsdk-python-servicebus"),
            (
                "user-agent",
                "azsdk-python-servicebus/7.15.0 Python/3.11.7 (Linux)",
            ),
        ];
        assert!(!holds_back(&open(&python)));
        let js = [
            ("product", "MSJSClient"),
            ("user-agent", "azsdk-js-azureservicebus/7.9.5"),
        ];
        assert!(!holds_back(&open(&js)));
        let rust = [
            ("product", "azure_messaging_eventhubs"),
            (
                "user-agent",
                "azsdk-rust-messaging_eventhubs/0.16.0 (1.95.0; linux; x86_64)",
            ),
        ];
        assert!(holds_back(&open(&rust)));
        assert!(holds_back(&open(&[])), "no properties: an unknown client");
        assert!(holds_back(&Value::List(vec![Value::str("container")])));
    }

    #[test]
    fn python_reads_an_error_in_a_rejected_echo_as_a_failed_dead_letter() {
        let sent = super::super::frame::rejected(super::super::frame::error(
            "com.microsoft:dead-letter",
            "x",
        ));
        assert_eq!(settled_echo(&sent).field(0), &Value::Null);
        let acc = super::super::frame::accepted();
        assert_eq!(settled_echo(&acc), acc);
    }

    #[test]
    fn addresses_with_scheme_host_and_port_are_reduced_to_their_path() {
        assert_eq!(strip_scheme_and_host("amqps://localhost/eh1"), "eh1");
        assert_eq!(
            strip_scheme_and_host("amqps://127.0.0.1:5672/queue1/$management"),
            "queue1/$management"
        );
        assert_eq!(strip_scheme_and_host("sb://host"), "");
        assert_eq!(strip_scheme_and_host("queue1"), "queue1");
    }

    #[test]
    fn python_service_bus_sends_sas_tokens_typed_as_jwt() {
        assert!(is_sas_token("SharedAccessSignature sr=a&sig=b&se=1&skn=k"));
        assert!(!is_sas_token("eyJhbGciOi"));
    }

    #[test]
    fn lock_token_travels_little_endian_in_the_tag_and_rfc_order_in_management() {
        let t: uuid::Uuid = "00112233-4455-6677-8899-aabbccddeeff"
            .parse()
            .expect("uuid");
        let tag = delivery_tag_for_lock(t);
        assert_eq!(&tag[..4], &[0x33, 0x22, 0x11, 0x00]);
        assert_eq!(lock_token_from_value(&Value::Uuid(*t.as_bytes())), Some(t));
        assert_eq!(lock_token_from_value(&Value::Binary(tag.to_vec())), Some(t));
    }

    #[test]
    fn python_cbs_request_without_reply_to_is_answered_on_the_cbs_receiver() {
        assert_eq!(reply_link_matches(None, "x", "$cbs", "$cbs"), (false, true));
        assert_eq!(
            reply_link_matches(Some("rust_amqp_cbs"), "rust_amqp_cbs", "$cbs", "$cbs"),
            (true, true)
        );
    }

    #[test]
    fn selector_filter_is_found_by_numeric_or_symbolic_descriptor() {
        let f = |d: Value| {
            Value::Map(vec![(
                Value::sym("com.microsoft:session-filter-any-name"),
                Value::Described(
                    Box::new(d),
                    Box::new(Value::str("amqp.annotation.x-opt-offset > '-1'")),
                ),
            )])
        };
        assert!(selector_filter(&f(Value::Ulong(0x0000_468C_0000_0004))).is_some());
        assert!(selector_filter(&f(Value::sym("apache.org:selector-filter:string"))).is_some());
    }

    #[test]
    fn session_filter_is_read_plain_described_or_null_and_echoed_as_a_string() {
        let set = |v: Value| Value::Map(vec![(Value::sym(SESSION_FILTER), v)]);
        assert_eq!(
            session_filter(&set(Value::str("cart-b"))),
            Some(Some("cart-b".into()))
        );
        assert_eq!(session_filter(&set(Value::Null)), Some(None));
        let described = Value::Described(
            Box::new(Value::Ulong(0x0000_0137_0000_000C)),
            Box::new(Value::str("s")),
        );
        assert_eq!(session_filter(&set(described)), Some(Some("s".into())));
        assert_eq!(session_filter(&Value::Map(Vec::new())), None);
        assert_eq!(session_filter(&Value::Null), None);
        let src = Value::described_list(0x28, vec![Value::str("q")]);
        let back = with_session_filter(src, "s1");
        assert_eq!(back.field(0).as_str(), Some("q"));
        assert_eq!(session_filter(back.field(7)), Some(Some("s1".into())));
        assert_eq!(back.field(7).get(SESSION_FILTER), Some(&Value::str("s1")));
    }

    #[test]
    fn session_lock_expiry_travels_in_dotnet_ticks() {
        assert_eq!(dotnet_ticks(0), 621_355_968_000_000_000);
        assert_eq!(dotnet_ticks(1), 621_355_968_000_010_000);
    }

    #[test]
    fn management_replies_carry_both_spellings_of_the_status() {
        let props = status_properties(404, "gone");
        let keys: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "status-code",
                "status-description",
                "statusCode",
                "statusDescription"
            ]
        );
        assert_eq!(props[0].1, Value::Int(404));
        assert_eq!(props[2].1, Value::Int(404));
    }

    #[test]
    fn rust_sdk_detach_then_end_gets_no_detach_reply_on_the_ended_session() {
        let mut held = HeldDetachReplies::default();
        held.hold(1, Value::str("detach of a CBS link"));
        held.hold(2, Value::str("detach of a sender"));
        held.session_ended(1);
        let replies = held.take();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].0, 2);
        assert!(held.is_empty());
    }
}
