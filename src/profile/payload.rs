//! The claims of a JWT payload, read in one pass: the registered claims as the raw
//! JSON text of their values (type-checked afterwards, so that a wrong type is that
//! claim's [`InvalidClaim`](AuthErrorKind::InvalidClaim), as on every other path),
//! every other claim as raw JSON text, never parsed into a `serde_json::Map` unless a
//! profile asks for one.
//!
//! Top-level claim names must be unique. RFC 7519 §4 lets a parser either refuse
//! duplicate claim names or keep the last one; `serde_json` keeps the last
//! (`{"iss":"a","iss":"b"}` reads as `"b"`). Refused here: a token naming two
//! issuers (or two audiences) is two credentials that disagree, and the issuer a
//! multi-issuer layer selects by must be the one it verifies. Names compare after
//! unescaping (`"i\u0073s"` is `iss`).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::error::{AuthError, AuthErrorKind};
use crate::verify::MAX_NUMERIC_DATE;

/// A JWT claims set, each value kept as the JSON text it was sent as.
pub(crate) struct Payload<'a> {
    iss: Option<&'a RawValue>,
    sub: Option<&'a RawValue>,
    aud: Option<&'a RawValue>,
    jti: Option<&'a RawValue>,
    exp: Option<&'a RawValue>,
    nbf: Option<&'a RawValue>,
    iat: Option<&'a RawValue>,
    /// Every other claim, in the token's order, names unique.
    others: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// The registered claims other than the times, type-checked.
pub(crate) struct Registered {
    pub(crate) issuer: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) audience: Vec<String>,
    pub(crate) jwt_id: Option<String>,
}

fn malformed() -> AuthError {
    AuthError::with_detail(AuthErrorKind::Malformed, "the payload is not a JSON object with unique claim names")
}

impl<'a> Payload<'a> {
    /// Parses a decoded payload: a JSON object with unique claim names, else
    /// [`Malformed`](AuthErrorKind::Malformed).
    pub(crate) fn parse(json: &'a [u8]) -> Result<Self, AuthError> {
        // Checked once here, so that every value below is borrowed text.
        let text = std::str::from_utf8(json).map_err(|_| malformed())?;
        let payload: Self = serde_json::from_str(text).map_err(|_| malformed())?;
        Ok(payload)
    }

    /// The `iss` to select an issuer's rules by, before any signature check:
    /// missing is [`MissingClaim`](AuthErrorKind::MissingClaim), anything but a
    /// non-empty string [`InvalidClaim`](AuthErrorKind::InvalidClaim).
    pub(crate) fn unverified_issuer(&self) -> Result<Cow<'a, str>, AuthError> {
        match self.iss {
            None => Err(AuthError::with_detail(AuthErrorKind::MissingClaim, "iss")),
            Some(raw) => {
                non_empty_string(raw).ok_or_else(|| AuthError::with_detail(AuthErrorKind::InvalidClaim, "iss"))
            }
        }
    }

    /// A NumericDate claim (`exp`, `nbf`, `iat`): see [`numeric_date_of`].
    pub(crate) fn exp(&self) -> Result<Option<u64>, AuthError> {
        self.exp.map(|raw| numeric_date_raw(raw, "exp")).transpose()
    }
    /// `nbf`.
    pub(crate) fn nbf(&self) -> Result<Option<u64>, AuthError> {
        self.nbf.map(|raw| numeric_date_raw(raw, "nbf")).transpose()
    }
    /// `iat`.
    pub(crate) fn iat(&self) -> Result<Option<u64>, AuthError> {
        self.iat.map(|raw| numeric_date_raw(raw, "iat")).transpose()
    }

    /// `iss`, `sub`, `aud` and `jti`, type-checked (`aud` first, as the map path did).
    pub(crate) fn registered(&self) -> Result<Registered, AuthError> {
        let audience = match self.aud {
            None => Vec::new(),
            Some(raw) => audience(raw)?,
        };
        let string = |raw: Option<&'a RawValue>, name: &'static str| match raw {
            None => Ok(None),
            Some(raw) => non_empty_string(raw)
                .map(|s| Some(s.into_owned()))
                .ok_or_else(|| AuthError::with_detail(AuthErrorKind::InvalidClaim, name)),
        };
        Ok(Registered {
            issuer: string(self.iss, "iss")?,
            subject: string(self.sub, "sub")?,
            audience,
            jwt_id: string(self.jti, "jti")?,
        })
    }

    /// The raw JSON text of a claim other than the registered ones.
    pub(crate) fn other(&self, name: &str) -> Option<&'a RawValue> {
        self.others.iter().find(|(n, _)| n == name).map(|(_, raw)| *raw)
    }

    /// A lookup of other claims as parsed values, for a check that reads one claim
    /// by name (the tenant claim): the value is parsed once, on first use.
    pub(crate) fn lookup<'c>(&'c self, cell: &'c OnceCell<Option<Value>>) -> impl FnOnce(&str) -> Option<&'c Value> {
        move |name| cell.get_or_init(|| self.other(name).and_then(|raw| serde_json::from_str(raw.get()).ok())).as_ref()
    }

    /// The other claims, except those named in `skip`, as a JSON object (the
    /// session's custom claims).
    pub(crate) fn others_except(&self, skip: &[&str]) -> Result<Map<String, Value>, AuthError> {
        let mut map = Map::new();
        for (name, raw) in &self.others {
            if skip.contains(&name.as_ref()) {
                continue;
            }
            let value: Value = serde_json::from_str(raw.get()).map_err(|_| malformed())?;
            map.insert(name.clone().into_owned(), value);
        }
        Ok(map)
    }

    /// Every claim but the registered ones, as a map (the generic path: custom
    /// [`ClaimProfile`](super::ClaimProfile)s and the OIDC profile).
    pub(crate) fn into_others(self) -> Result<Map<String, Value>, AuthError> {
        self.others_except(&[])
    }
}

/// A JSON string that is not empty (escapes decoded; borrowed when it has none).
fn non_empty_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    string(raw).filter(|s| !s.is_empty())
}

/// A JSON string (escapes decoded; borrowed when it has none).
fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Text<'_>>(raw.get()).ok().map(|text| text.0)
}

/// `aud`: one string (also an empty one: then no audience matches), or an array of
/// strings.
fn audience(raw: &RawValue) -> Result<Vec<String>, AuthError> {
    let invalid = || AuthError::with_detail(AuthErrorKind::InvalidClaim, "aud");
    if let Some(one) = string(raw) {
        return Ok(vec![one.into_owned()]);
    }
    serde_json::from_str::<Vec<String>>(raw.get()).map_err(|_| invalid())
}

/// A NumericDate claim: a non-negative JSON number (fractions are truncated), at
/// most [`MAX_NUMERIC_DATE`]; anything else (a string, `null`, a negative or huge
/// number) is [`InvalidClaim`](AuthErrorKind::InvalidClaim) naming the claim.
fn numeric_date_raw(raw: &RawValue, name: &'static str) -> Result<u64, AuthError> {
    serde_json::from_str::<Number>(raw.get())
        .ok()
        .and_then(|n| numeric_date_of(&n))
        .ok_or_else(|| AuthError::with_detail(AuthErrorKind::InvalidClaim, name))
}

/// A JSON number as a NumericDate, if it is one we accept.
pub(crate) fn numeric_date_of(n: &Number) -> Option<u64> {
    // Checked finite and non-negative first; fractions of a second are dropped.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
        .filter(|secs| *secs <= MAX_NUMERIC_DATE)
}

/// A string, borrowed from the input when it has no escapes.
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for Payload<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;
        impl<'de> Visitor<'de> for PayloadVisitor {
            type Value = Payload<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with unique names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Payload<'de>, A::Error> {
                let mut payload = Payload {
                    iss: None,
                    sub: None,
                    aud: None,
                    jti: None,
                    exp: None,
                    nbf: None,
                    iat: None,
                    others: Vec::new(),
                };
                while let Some(Text(name)) = access.next_key::<Text<'de>>()? {
                    let value: &'de RawValue = access.next_value()?;
                    let slot = match name.as_ref() {
                        "iss" => &mut payload.iss,
                        "sub" => &mut payload.sub,
                        "aud" => &mut payload.aud,
                        "jti" => &mut payload.jti,
                        "exp" => &mut payload.exp,
                        "nbf" => &mut payload.nbf,
                        "iat" => &mut payload.iat,
                        _ => {
                            payload.others.push((name, value));
                            continue;
                        }
                    };
                    if slot.replace(value).is_some() {
                        return Err(serde::de::Error::custom("duplicate claim name"));
                    }
                }
                if has_duplicates(&payload.others) {
                    return Err(serde::de::Error::custom("duplicate claim name"));
                }
                Ok(payload)
            }
        }
        deserializer.deserialize_map(PayloadVisitor)
    }
}

/// Whether two claims share a name. Sorting keeps a payload of many distinct names
/// (an attacker's) at `n log n`, not `n²`.
fn has_duplicates(others: &[(Cow<'_, str>, &RawValue)]) -> bool {
    match others.len() {
        0 | 1 => false,
        2..=8 => others.iter().enumerate().any(|(i, (a, _))| others[i + 1..].iter().any(|(b, _)| a == b)),
        _ => {
            let mut names: Vec<&str> = others.iter().map(|(name, _)| name.as_ref()).collect();
            names.sort_unstable();
            names.windows(2).any(|pair| pair[0] == pair[1])
        }
    }
}
