//! The fingerprint of a request under an idempotency key.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What makes two requests "the same" for an idempotency key: the event name and the
/// parameters, with object keys sorted so their order does not matter.
pub fn fingerprint(name: &str, params: &Map<String, Value>) -> [u8; 32] {
    fn canonical(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(obj) => {
                let mut keys: Vec<&String> = obj.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).expect("strings serialize"));
                    out.push(b':');
                    canonical(&obj[k], out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    canonical(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend(serde_json::to_vec(scalar).expect("JSON values always serialize")),
        }
    }
    let mut bytes = Vec::new();
    canonical(&Value::Object(params.clone()), &mut bytes);
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(bytes);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_key_order_but_not_values() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"A": 1, "B": {"X": [1, 2], "Y": "z"}}"#).unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"B": {"Y": "z", "X": [1, 2]}, "A": 1}"#).unwrap();
        let c: Map<String, Value> =
            serde_json::from_str(r#"{"A": 1, "B": {"X": [2, 1], "Y": "z"}}"#).unwrap();
        assert_eq!(fingerprint("e", &a), fingerprint("e", &b));
        assert_ne!(fingerprint("e", &a), fingerprint("e", &c));
        assert_ne!(fingerprint("e", &a), fingerprint("f", &a));
    }
}
