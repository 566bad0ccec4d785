//! Stytch's `session_custom_claims` semantics: a merge patch onto the session's claims.
//!
//! From Stytch's custom-claims guide: "To add or update a key, supply a new value. To
//! delete a key, supply a null value. If a value for one of your custom claims is itself
//! a JSON object, you can update and delete values in the same way." Limits: the
//! registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`) and the
//! `https://stytch.com/` namespace are reserved, and the claims may not exceed four
//! kilobytes in total.

use serde_json::{Map, Value};

/// Top-level claims a caller may not set.
const RESERVED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];
/// Stytch's own claim namespace.
const RESERVED_PREFIX: &str = "https://stytch.com/";
/// "Total custom claims size cannot exceed four kilobytes."
pub(crate) const MAX_CUSTOM_CLAIMS_BYTES: usize = 4096;

/// Whether a top-level claim name is reserved.
pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name) || name.starts_with(RESERVED_PREFIX)
}

/// Applies `patch` to `target`: `null` deletes a key, an object merges into an object
/// (recursively), anything else replaces.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(nested) => {
                if let Some(Value::Object(existing)) = target.get_mut(&key) {
                    merge(existing, nested);
                } else {
                    // A new object: merged into nothing, so that nested nulls vanish.
                    let mut fresh = Map::new();
                    merge(&mut fresh, nested);
                    target.insert(key, Value::Object(fresh));
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// Whether the claims fit Stytch's size limit (measured as compact JSON).
pub(crate) fn fits(claims: &Map<String, Value>) -> bool {
    serde_json::to_vec(claims).is_ok_and(|bytes| bytes.len() <= MAX_CUSTOM_CLAIMS_BYTES)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn merges_like_the_stytch_guide() {
        // The guide's example, step by step.
        let mut claims = object(json!({ "a": 1, "b": 2, "d": 4 }));
        merge(&mut claims, object(json!({ "b": null, "c": 3.5, "e": { "nested1": "val1", "nested2": "val2" } })));
        assert_eq!(
            Value::Object(claims.clone()),
            json!({ "a": 1, "c": 3.5, "d": 4, "e": { "nested1": "val1", "nested2": "val2" } })
        );
        merge(&mut claims, object(json!({ "e": { "nested1": null, "nested3": "val3" } })));
        assert_eq!(
            Value::Object(claims.clone()),
            json!({ "a": 1, "c": 3.5, "d": 4, "e": { "nested2": "val2", "nested3": "val3" } })
        );
        // A new object drops its nulls; a scalar replaces an object and back.
        merge(&mut claims, object(json!({ "f": { "x": null, "y": 1 }, "e": 7 })));
        assert_eq!(claims["f"], json!({ "y": 1 }));
        assert_eq!(claims["e"], json!(7));
        assert!(is_reserved("sub") && is_reserved("https://stytch.com/session") && !is_reserved("subject"));
        assert!(!fits(&object(json!({ "big": "x".repeat(MAX_CUSTOM_CLAIMS_BYTES) }))));
    }
}
