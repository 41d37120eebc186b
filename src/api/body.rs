//! Reading JSON request bodies, the same way on every route and with the API's own errors:
//! `415` for another content type, `413` past the configured `server.max_body_bytes`, `400`
//! for bad JSON (with line and column), a body that is not a JSON object, or one of the
//! wrong shape (naming the field).

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::catalog::ParamProblem;

/// Reads and parses a JSON body of at most `limit` bytes.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if super::edge::timed_out(&e) {
            ApiError::BodyTimeout
        } else {
            ApiError::TooLarge(limit)
        }
    })?;
    parse_body(&bytes)
}

/// Parses a JSON body that was read whole: an object, no key twice, of the shape `T`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body Herald takes is a JSON object; serde would also build a struct from an array
    // (`[]` as "replay every dead letter"), so anything else is refused here.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message: "the request body must be a JSON object".into(),
            details: vec![ParamProblem {
                parameter: "body".into(),
                problem: "must be a JSON object".into(),
            }],
        });
    }
    let syntax = |e: serde_json::Error| ApiError::Invalid {
        code: "invalid_json",
        message: format!("the request body is not valid JSON: {e}"),
        details: vec![],
    };
    // JSON leaves a key given twice to the reader; serde keeps the last silently, another
    // reader (a step, a subscriber) may keep the first. Refused, so every reader agrees.
    serde_json::from_slice::<Unique>(bytes).map_err(syntax)?;
    // The common case parses once at full speed; only a body that fails is parsed again with
    // path tracking, to name the field it fails at.
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(e) if !e.is_data() => Err(syntax(e)),
        Err(_) => Err(shape_error::<T>(bytes)),
    }
}

/// A JSON value whose objects have no key twice (parsed only to check that: nothing is kept
/// but the keys of the object being read, borrowed from the body where they can be).
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        use serde::de::Error;
        let mut seen: Vec<Key<'de>> = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if seen.contains(&key) {
                return Err(A::Error::custom(format!(
                    "the key \"{}\" is given twice in one object",
                    key.0
                )));
            }
            seen.push(key);
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

/// An object's key, borrowed from the body unless it has escapes.
#[derive(PartialEq, Eq)]
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The error of a body of the wrong shape, naming the field (`filter[0].op`).
fn shape_error<T: DeserializeOwned>(bytes: &[u8]) -> ApiError {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let e = match serde_path_to_error::deserialize::<_, T>(&mut json) {
        Ok(_) => {
            return ApiError::Invalid {
                code: "invalid_request",
                message: "the request body is not of the shape this route takes".into(),
                details: vec![],
            }
        }
        Err(e) => e,
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    let field = if path == "." { "body".to_owned() } else { path };
    ApiError::Invalid {
        code: "invalid_request",
        message: format!("`{field}`: {inner}"),
        details: vec![ParamProblem {
            parameter: field,
            problem: inner.to_string(),
        }],
    }
}

/// A JSON body read by [`read_json`] with the configured size limit.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        read_json(&parts.headers, body, state.max_body_bytes)
            .await
            .map(JsonBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_in_one_object_is_refused_wherever_it_is() {
        for twice in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"x": {"b": true, "b": false}}"#,
            r#"{"events": [{"event": "e", "params": {"k": 1, "k": 1}}]}"#,
            r#"{"\u0061": 1, "a": 2}"#,
        ] {
            let e = serde_json::from_slice::<Unique>(twice.as_bytes()).err();
            assert!(
                e.is_some_and(|e| e.to_string().contains("given twice")),
                "{twice}"
            );
        }
        for once in [
            r#"{"a": 1, "b": {"a": 2}}"#,
            r#"[{"a": 1}, {"a": 1}]"#,
            "{}",
        ] {
            assert!(
                serde_json::from_slice::<Unique>(once.as_bytes()).is_ok(),
                "{once}"
            );
        }
    }
}
