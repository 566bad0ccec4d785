//! Compact JSON text for factor objects kept in cached sessions.
//!
//! A Stytch factor object repeats the same member names in every session
//! (`"email_factor":`, `"email_id":`, `"totp_id":`, …): a quarter of a typical
//! cached session's bytes. [`pack`] replaces each name from a fixed list with one
//! control byte, and [`unpack`] puts it back. It is exact because `serde_json`
//! never writes a raw control character (it escapes them in strings as `\u00XX`,
//! and writes no whitespace in compact output), so a control byte in packed text
//! can only stand for a name; text that holds one anyway is kept as it is, behind
//! a marker.

use std::borrow::Cow;

/// Member names of Stytch's factor objects (its session object's
/// `authentication_factors`, <https://stytch.com/docs/api-reference/consumer/api/sessions/authenticate>),
/// each with its quotes and colon. Byte `n` stands for `NAMES[n - 1]`; byte 0 marks
/// text kept as it is. At most 31 names (the control bytes 1 to 31).
const NAMES: [&str; 31] = [
    "\"email_factor\":",
    "\"email_id\":",
    "\"email_address\":",
    "\"phone_number_factor\":",
    "\"phone_id\":",
    "\"phone_number\":",
    "\"authenticator_app_factor\":",
    "\"totp_id\":",
    "\"recovery_code_factor\":",
    "\"totp_recovery_code_id\":",
    "\"webauthn_factor\":",
    "\"webauthn_registration_id\":",
    "\"domain\":",
    "\"user_agent\":",
    "\"google_oauth_factor\":",
    "\"microsoft_oauth_factor\":",
    "\"apple_oauth_factor\":",
    "\"github_oauth_factor\":",
    "\"facebook_oauth_factor\":",
    "\"id\":",
    "\"provider_subject\":",
    "\"crypto_wallet_factor\":",
    "\"crypto_wallet_id\":",
    "\"crypto_wallet_address\":",
    "\"crypto_wallet_type\":",
    "\"biometric_factor\":",
    "\"biometric_registration_id\":",
    "\"saml_sso_factor\":",
    "\"oidc_sso_factor\":",
    "\"organization_id\":",
    "\"external_connection_id\":",
];

/// Marks text kept as it is (it held a control byte of its own).
const VERBATIM: char = '\0';

/// `json` with every listed member name replaced by its byte.
pub(crate) fn pack(json: &str) -> Box<str> {
    if json.bytes().any(|b| b < 0x20) {
        return format!("{VERBATIM}{json}").into_boxed_str();
    }
    let mut packed = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(quote) = rest.find('"') {
        packed.push_str(&rest[..quote]);
        rest = &rest[quote..];
        match NAMES.iter().position(|name| rest.starts_with(name)) {
            Some(index) => {
                // Below 32 by the length of `NAMES`.
                packed.push(char::from(u8::try_from(index + 1).unwrap_or(0)));
                rest = &rest[NAMES[index].len()..];
            }
            None => {
                // Not a listed name: copy this string whole (so that a name's text
                // inside a value is never mistaken for the name).
                let end = string_end(rest);
                packed.push_str(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    packed.push_str(rest);
    packed.into_boxed_str()
}

/// The length of the JSON string at the start of `text` (which starts with `"`),
/// quotes included; the whole text when it does not end.
fn string_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut at = 1;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    text.len()
}

/// The JSON text [`pack`] was given.
pub(crate) fn unpack(packed: &str) -> Cow<'_, str> {
    if let Some(verbatim) = packed.strip_prefix(VERBATIM) {
        return Cow::Borrowed(verbatim);
    }
    if !packed.bytes().any(|b| b < 0x20) {
        return Cow::Borrowed(packed);
    }
    let mut json = String::with_capacity(packed.len() * 2);
    for c in packed.chars() {
        let name = match u32::from(c) {
            code @ 1..0x20 => usize::try_from(code - 1).ok().and_then(|index| NAMES.get(index)),
            _ => None,
        };
        match name {
            Some(name) => json.push_str(name),
            None => json.push(c),
        }
    }
    Cow::Owned(json)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn round_trip(value: &Value) -> usize {
        let text = serde_json::to_string(value).unwrap();
        let packed = pack(&text);
        assert_eq!(unpack(&packed), text, "{value}");
        packed.len()
    }

    #[test]
    fn stytch_factor_objects_shrink_and_come_back_exactly() {
        let email = json!({"email_factor": {"email_address": "dev@example.com", "email_id": "email-test-6f279f53-ee48-48be-a4db-dfb32601f998"}});
        let text_len = serde_json::to_string(&email).unwrap().len();
        assert_eq!(round_trip(&email), text_len - ("\"email_factor\":\"email_address\":\"email_id\":".len() - 3));
        round_trip(&json!({"authenticator_app_factor": {"totp_id": "totp-test-1"}}));
        round_trip(
            &json!({"webauthn_factor": {"domain": "example.com", "user_agent": "x", "webauthn_registration_id": "w"}}),
        );
    }

    /// A name's text inside a value, escapes, unicode, nesting: all exact.
    #[test]
    fn names_inside_values_and_odd_strings_are_left_alone() {
        for value in [
            json!({"note": "\"email_id\":"}),
            json!({"email_id": "\"email_id\":\\\"id\":"}),
            json!({"a\"b": {"id": ["\"id\":", 1, null, true, {"id": "é✓\u{1F600}"}]}}),
            json!(["\"totp_id\":", "\\", "\\\"", ""]),
            json!("just a string"),
            json!(42),
            json!({}),
        ] {
            round_trip(&value);
        }
    }

    /// Every control character, in names and values, comes back exactly.
    #[test]
    fn control_characters_round_trip() {
        for byte in 0u8..0x20 {
            let c = char::from(byte);
            round_trip(&json!({ format!("k{c}"): format!("v{c}"), "email_id": "x" }));
        }
    }

    /// Text that holds raw control bytes (never written by `serde_json`) is kept
    /// verbatim rather than misread.
    #[test]
    fn raw_control_bytes_are_kept_verbatim() {
        for byte in 0u8..0x20 {
            let text = format!("{{\"email_id\":\"a{}b\"}}", char::from(byte));
            assert_eq!(unpack(&pack(&text)), text);
        }
    }
}
