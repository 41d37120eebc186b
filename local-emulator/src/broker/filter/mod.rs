//! Subscription filters and rule actions: the Service Bus SQL filter language (comparisons,
//! arithmetic, AND/OR/NOT, IS NULL, IN, LIKE, EXISTS, newid() over `sys.` and user
//! properties), correlation filters, and SQL actions (`SET`, `REMOVE`).

mod sql;

use super::message::{Message, PropValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rule's filter. Kept (in the journal) as its definition: SQL as text, parsed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FilterDef", into = "FilterDef")]
pub enum Filter {
    /// Matches everything (`1=1`).
    True,
    /// Matches nothing.
    False,
    /// A parsed SQL expression, with its text.
    Sql(String, Expr),
    /// Every set field must be equal.
    Correlation(Correlation),
}

/// A filter as written down: SQL as text.
#[derive(Serialize, Deserialize)]
enum FilterDef {
    True,
    False,
    Sql(String),
    Correlation(Correlation),
}

impl TryFrom<FilterDef> for Filter {
    type Error = SqlError;
    fn try_from(d: FilterDef) -> Result<Filter, SqlError> {
        Ok(match d {
            FilterDef::True => Filter::True,
            FilterDef::False => Filter::False,
            FilterDef::Sql(text) => Filter::sql(&text)?,
            FilterDef::Correlation(c) => Filter::Correlation(c),
        })
    }
}

impl From<Filter> for FilterDef {
    fn from(f: Filter) -> FilterDef {
        match f {
            Filter::True => FilterDef::True,
            Filter::False => FilterDef::False,
            Filter::Sql(text, _) => FilterDef::Sql(text),
            Filter::Correlation(c) => FilterDef::Correlation(c),
        }
    }
}

/// A correlation filter: each field set must match exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// `sys.CorrelationId`.
    pub correlation_id: Option<String>,
    /// `sys.MessageId`.
    pub message_id: Option<String>,
    /// `sys.To`.
    pub to: Option<String>,
    /// `sys.ReplyTo`.
    pub reply_to: Option<String>,
    /// `sys.Label` (subject).
    pub label: Option<String>,
    /// `sys.SessionId`.
    pub session_id: Option<String>,
    /// `sys.ContentType`.
    pub content_type: Option<String>,
    /// `sys.ReplyToSessionId`.
    #[serde(default)]
    pub reply_to_session_id: Option<String>,
    /// User properties.
    pub properties: BTreeMap<String, PropValue>,
}

/// A SQL filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(PropValue),
    /// A property reference.
    Prop(String),
    /// Comparison with an operator (`=`, `<>`, `<`, `>`, `<=`, `>=`).
    Cmp(Box<Expr>, String, Box<Expr>),
    /// `AND`.
    And(Box<Expr>, Box<Expr>),
    /// `OR`.
    Or(Box<Expr>, Box<Expr>),
    /// `NOT`.
    Not(Box<Expr>),
    /// `IS NULL` (negated for `IS NOT NULL`).
    IsNull(Box<Expr>, bool),
    /// `IN (…)` (negated for `NOT IN`).
    In(Box<Expr>, Vec<PropValue>, bool),
    /// `LIKE 'pattern'` (negated for `NOT LIKE`).
    Like(Box<Expr>, String, bool),
    /// `EXISTS(prop)`.
    Exists(String),
    /// Arithmetic (`+ - * / %`); `+` also joins strings.
    Arith(Box<Expr>, char, Box<Expr>),
    /// `newid()`: a new GUID as text.
    NewId,
}

/// One statement of a SQL rule action.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `SET name = expression`.
    Set(String, Expr),
    /// `REMOVE name`.
    Remove(String),
}

/// A SQL rule action, with the text it was parsed from (and is kept as).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action {
    /// The expression as written.
    pub text: String,
    /// Its statements, applied in order.
    pub statements: Vec<Statement>,
}

/// The longest string an expression makes (bytes).
const MAX_STRING: usize = 64 * 1024;

/// The system properties an action may set, by their lower-cased `sys.` names.
const SETTABLE: [&str; 8] = [
    "label",
    "subject",
    "messageid",
    "correlationid",
    "to",
    "replyto",
    "contenttype",
    "sessionid",
];

impl TryFrom<String> for Action {
    type Error = SqlError;
    fn try_from(text: String) -> Result<Action, SqlError> {
        Action::sql(&text)
    }
}

impl From<Action> for String {
    fn from(a: Action) -> String {
        a.text
    }
}

fn is_literal(e: &Expr) -> bool {
    matches!(e, Expr::Lit(_))
}

impl Action {
    /// Parses a SQL rule action such as `SET sys.Label = 'x'; REMOVE color`.
    pub fn sql(text: &str) -> Result<Action, SqlError> {
        let statements = sql::parse_action(text)?;
        for st in &statements {
            let name = match st {
                Statement::Set(n, _) | Statement::Remove(n) => n,
            };
            let lower = name.to_ascii_lowercase();
            if let Some(sys) = lower.strip_prefix("sys.") {
                if !SETTABLE.contains(&sys) {
                    return Err(SqlError {
                        pos: 0,
                        message: format!("the system property '{name}' cannot be changed"),
                    });
                }
            }
        }
        Ok(Action {
            text: text.to_owned(),
            statements,
        })
    }

    /// Applies the statements to a message, in order; each sees what the ones before it set.
    /// Changed properties are recorded in [`Message::edited`].
    pub fn apply(&self, m: &mut Message) {
        for st in &self.statements {
            let (name, value) = match st {
                Statement::Set(n, e) => (n, Some(eval(e, m))),
                Statement::Remove(n) => (n, None),
            };
            let lower = name.to_ascii_lowercase();
            if let Some(sys) = lower.strip_prefix("sys.") {
                let text = value.and_then(|v| match v {
                    PropValue::Null => None,
                    PropValue::Str(s) => Some(s),
                    PropValue::Int(i) => Some(i.to_string()),
                    PropValue::Float(f) => Some(f.to_string()),
                    PropValue::Bool(b) => Some(b.to_string()),
                });
                let s = &mut m.system;
                let (slot, canonical) = match sys {
                    "label" | "subject" => (&mut s.subject, "sys.label"),
                    "messageid" => (&mut s.message_id, "sys.messageid"),
                    "correlationid" => (&mut s.correlation_id, "sys.correlationid"),
                    "to" => (&mut s.to, "sys.to"),
                    "replyto" => (&mut s.reply_to, "sys.replyto"),
                    "contenttype" => (&mut s.content_type, "sys.contenttype"),
                    "sessionid" => (&mut s.session_id, "sys.sessionid"),
                    _ => continue,
                };
                *slot = text;
                m.edited.insert(canonical.to_owned());
                continue;
            }
            let key = name.strip_prefix("user.").unwrap_or(name);
            let key = m
                .app
                .keys()
                .find(|k| k.eq_ignore_ascii_case(key))
                .cloned()
                .unwrap_or_else(|| key.to_owned());
            match value {
                Some(v) => {
                    m.app.insert(key.clone(), v);
                }
                None => {
                    m.app.remove(&key);
                }
            }
            m.edited.insert(format!("user.{key}"));
        }
    }
}

/// A SQL filter that does not parse.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("SQL filter error at {pos}: {message}")]
pub struct SqlError {
    /// Character position.
    pub pos: usize,
    /// What went wrong.
    pub message: String,
}

impl Filter {
    /// Parses a SQL filter expression.
    pub fn sql(text: &str) -> Result<Filter, SqlError> {
        let e = sql::parse(text)?;
        Ok(match &e {
            Expr::Cmp(a, op, b) if op == "=" && a == b && matches!(**a, Expr::Lit(_)) => {
                Filter::True
            }
            Expr::Cmp(a, op, b) if op == "=" && a != b && is_literal(a) && is_literal(b) => {
                Filter::False
            }
            _ => Filter::Sql(text.to_owned(), e),
        })
    }

    /// Whether a message passes this filter.
    pub fn matches(&self, m: &Message) -> bool {
        match self {
            Filter::True => true,
            Filter::False => false,
            Filter::Sql(_, e) => truth(&eval(e, m)) == Some(true),
            Filter::Correlation(c) => {
                let s = &m.system;
                let eq =
                    |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
                eq(&c.correlation_id, &s.correlation_id)
                    && eq(&c.message_id, &s.message_id)
                    && eq(&c.to, &s.to)
                    && eq(&c.reply_to, &s.reply_to)
                    && eq(&c.label, &s.subject)
                    && eq(&c.session_id, &s.session_id)
                    && eq(&c.content_type, &s.content_type)
                    && eq(&c.reply_to_session_id, &s.reply_to_session_id)
                    && c.properties
                        .iter()
                        .all(|(k, v)| m.app.get(k).is_some_and(|h| loose_eq(h, v)))
            }
        }
    }
}

fn lookup(name: &str, m: &Message) -> PropValue {
    let lower = name.to_ascii_lowercase();
    let s = &m.system;
    let sys = |v: &Option<String>| v.clone().map_or(PropValue::Null, PropValue::Str);
    if let Some(rest) = lower.strip_prefix("sys.") {
        return match rest {
            "label" | "subject" => sys(&s.subject),
            "messageid" => sys(&s.message_id),
            "correlationid" => sys(&s.correlation_id),
            "to" => sys(&s.to),
            "replyto" => sys(&s.reply_to),
            "contenttype" => sys(&s.content_type),
            "sessionid" => sys(&s.session_id),
            "replytosessionid" => sys(&s.reply_to_session_id),
            _ => PropValue::Null,
        };
    }
    let key = name.strip_prefix("user.").unwrap_or(name);
    m.app
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map_or(PropValue::Null, |(_, v)| v.clone())
}

fn truth(v: &PropValue) -> Option<bool> {
    match v {
        PropValue::Bool(b) => Some(*b),
        _ => None,
    }
}

fn num(v: &PropValue) -> Option<f64> {
    match v {
        PropValue::Int(i) => Some(*i as f64),
        PropValue::Float(f) => Some(*f),
        _ => None,
    }
}

fn loose_eq(a: &PropValue, b: &PropValue) -> bool {
    compare(a, b) == Some(std::cmp::Ordering::Equal)
}

fn compare(a: &PropValue, b: &PropValue) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (PropValue::Str(x), PropValue::Str(y)) => Some(x.cmp(y)),
        (PropValue::Bool(x), PropValue::Bool(y)) => Some(x.cmp(y)),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

/// `LIKE`: `%` matches any run of characters, `_` any one. Greedy with one backtrack point,
/// so a pattern of many `%` costs at most text × pattern steps, never exponential time.
fn like(text: &str, pat: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == t[ti])) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

fn arith(a: PropValue, op: char, b: PropValue) -> PropValue {
    use PropValue::{Float, Int, Null, Str};
    match (a, op, b) {
        // An action's `SET a = a + a` repeated doubles a string each time: past 64 KiB the
        // result is null instead of a message that outgrows memory.
        (Str(x), '+', Str(y)) if x.len() + y.len() <= MAX_STRING => Str(x + &y),
        (Str(_), '+', Str(_)) => Null,
        (Int(x), _, Int(y)) => match op {
            '+' => x.checked_add(y).map_or(Null, Int),
            '-' => x.checked_sub(y).map_or(Null, Int),
            '*' => x.checked_mul(y).map_or(Null, Int),
            '/' => x.checked_div(y).map_or(Null, Int),
            _ => x.checked_rem(y).map_or(Null, Int),
        },
        (a, op, b) => match (num(&a), num(&b)) {
            (Some(x), Some(y)) => Float(match op {
                '+' => x + y,
                '-' => x - y,
                '*' => x * y,
                '/' => x / y,
                _ => x % y,
            }),
            _ => Null,
        },
    }
}

fn eval(e: &Expr, m: &Message) -> PropValue {
    use PropValue::{Bool, Null};
    let tri = |v: Option<bool>| v.map_or(Null, Bool);
    match e {
        Expr::Arith(a, op, b) => arith(eval(a, m), *op, eval(b, m)),
        Expr::NewId => PropValue::Str(uuid::Uuid::new_v4().to_string()),
        Expr::Lit(v) => v.clone(),
        Expr::Prop(n) => lookup(n, m),
        Expr::Exists(n) => Bool(lookup(n, m) != Null),
        Expr::IsNull(x, neg) => Bool((eval(x, m) == Null) != *neg),
        Expr::Not(x) => tri(truth(&eval(x, m)).map(|b| !b)),
        Expr::And(a, b) => match (truth(&eval(a, m)), truth(&eval(b, m))) {
            (Some(false), _) | (_, Some(false)) => Bool(false),
            (Some(true), Some(true)) => Bool(true),
            _ => Null,
        },
        Expr::Or(a, b) => match (truth(&eval(a, m)), truth(&eval(b, m))) {
            (Some(true), _) | (_, Some(true)) => Bool(true),
            (Some(false), Some(false)) => Bool(false),
            _ => Null,
        },
        Expr::Cmp(a, op, b) => {
            use std::cmp::Ordering::*;
            let o = compare(&eval(a, m), &eval(b, m));
            tri(o.map(|o| match op.as_str() {
                "=" => o == Equal,
                "<>" | "!=" => o != Equal,
                "<" => o == Less,
                ">" => o == Greater,
                "<=" => o != Greater,
                _ => o != Less,
            }))
        }
        Expr::In(x, list, neg) => match eval(x, m) {
            Null => Null,
            v => Bool(list.iter().any(|l| loose_eq(&v, l)) != *neg),
        },
        Expr::Like(x, pat, neg) => match eval(x, m) {
            PropValue::Str(s) => Bool(like(&s, pat) != *neg),
            _ => Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(props: &[(&str, PropValue)]) -> Message {
        Message {
            annotations: Vec::new(),
            bare: Vec::new(),
            system: crate::broker::message::SystemProps {
                subject: Some("red".into()),
                ..Default::default()
            },
            app: props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ttl_ms: None,
            scheduled_ms: None,
            partition_key: None,
            edited: Default::default(),
        }
    }

    #[test]
    fn sql_filter_compares_user_and_system_properties() {
        let msg = m(&[
            ("color", PropValue::Str("blue".into())),
            ("n", PropValue::Int(5)),
        ]);
        let yes = [
            "color = 'blue'",
            "n > 3 AND sys.Label = 'red'",
            "user.n IN (1, 5)",
            "color LIKE 'bl%'",
            "EXISTS(n)",
            "missing IS NULL",
            "NOT (n < 2)",
            "1=1",
            "n >= 4.5",
            "n * 2 + 1 = 11",
            "n % 2 = 1 AND n - 1 = 4",
            "color + '!' = 'blue!'",
        ];
        for f in yes {
            assert!(Filter::sql(f).expect(f).matches(&msg), "{f}");
        }
        let no = [
            "color = 'red'",
            "missing = 1",
            "n <> 5",
            "color NOT LIKE 'b%'",
            "1=0",
        ];
        for f in no {
            assert!(!Filter::sql(f).expect(f).matches(&msg), "{f}");
        }
    }

    #[test]
    fn bad_sql_is_reported_with_its_position() {
        let e = Filter::sql("color = ").expect_err("incomplete");
        assert!(e.message.contains("end"));
        assert!(Filter::sql("a = 'x").is_err());
    }

    #[test]
    fn like_matches_wildcards_in_time_linear_in_its_inputs() {
        assert!(like("blue", "bl%"));
        assert!(like("blue", "%u_"));
        assert!(like("blue", "%"));
        assert!(like("", "%%"));
        assert!(!like("blue", "b_e"));
        assert!(like("a%b", "a%b"));
        assert!(!like("abc", "%d%"));
        // Backtracking into every `%` would take longer than the universe has.
        let text = "a".repeat(1000);
        let pattern = format!("{}b", "%a".repeat(60));
        assert!(!like(&text, &pattern));
    }

    #[test]
    fn deep_or_long_expressions_are_refused_before_they_exhaust_the_stack() {
        let deep = format!("{}a = 1{}", "(".repeat(200), ")".repeat(200));
        assert!(Filter::sql(&deep)
            .expect_err("too deep")
            .message
            .contains("nests"));
        let nots = format!("{}a = 1", "NOT ".repeat(100));
        assert!(Filter::sql(&nots).is_err());
        let long = vec!["a = 1"; 300].join(" AND ");
        assert!(Filter::sql(&long)
            .expect_err("too long")
            .message
            .contains("1024"));
        let ok = format!("{}a = 1{}", "(".repeat(10), ")".repeat(10));
        assert!(Filter::sql(&ok).is_ok());
    }

    #[test]
    fn actions_set_and_remove_user_and_system_properties_in_order() {
        let mut msg = m(&[
            ("Color", PropValue::Str("blue".into())),
            ("n", PropValue::Int(5)),
        ]);
        let a = Action::sql(
            "SET sys.Label = 'relabelled'; SET color = color + '-x'; SET n = n + 1; SET doubled = n * 2; REMOVE missing",
        )
        .expect("parses");
        a.apply(&mut msg);
        assert_eq!(msg.system.subject.as_deref(), Some("relabelled"));
        assert_eq!(msg.app.get("Color"), Some(&PropValue::Str("blue-x".into())));
        assert_eq!(msg.app.get("n"), Some(&PropValue::Int(6)));
        assert_eq!(msg.app.get("doubled"), Some(&PropValue::Int(12)));
        assert!(msg.edited.contains("sys.label") && msg.edited.contains("user.Color"));
        Action::sql("REMOVE n").expect("parses").apply(&mut msg);
        assert!(!msg.app.contains_key("n"));
        let id = Action::sql("SET sys.MessageId = newid()").expect("parses");
        id.apply(&mut msg);
        assert!(uuid::Uuid::parse_str(msg.system.message_id.as_deref().unwrap_or("")).is_ok());
    }

    #[test]
    fn bad_actions_are_refused_with_a_reason() {
        assert!(Action::sql("").is_err());
        assert!(Action::sql("SET = 1").is_err());
        assert!(Action::sql("DELETE x").is_err());
        let e = Action::sql("SET sys.EnqueuedTimeUtc = 1").expect_err("read-only");
        assert!(e.message.contains("cannot be changed"), "{e}");
    }

    #[test]
    fn correlation_filter_matches_every_set_field() {
        let msg = m(&[("k", PropValue::Int(1))]);
        let mut c = Correlation {
            label: Some("red".into()),
            ..Default::default()
        };
        c.properties.insert("k".into(), PropValue::Int(1));
        assert!(Filter::Correlation(c.clone()).matches(&msg));
        c.properties.insert("k".into(), PropValue::Int(2));
        assert!(!Filter::Correlation(c).matches(&msg));
    }
}
