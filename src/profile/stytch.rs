//! Stytch session JWTs (consumer and B2B).

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;

use super::{Builtin, BuiltinKind, ClaimProfile, Payload, VerifiedClaims};
use crate::error::{AuthError, AuthErrorKind};
use crate::session::{Factor, FactorKind, Organization, Session, SessionAttributes, SessionBuilder};

const SESSION_CLAIM: &str = "https://stytch.com/session";
const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";

/// Reads Stytch session JWTs: the `https://stytch.com/session` claim (id, times,
/// factors, roles) and, for B2B, `https://stytch.com/organization`. Custom claims
/// are the remaining top-level claims.
///
/// Unknown factor types and delivery methods are kept as sent, never rejected.
/// A token without `expires_at` (older tokens) falls back to `exp`.
///
/// The layer holds the session's times to the same leeway as `exp`: a session past
/// its own `expires_at` is refused ([`Expired`](crate::AuthErrorKind::Expired)) even
/// while the JWT's `exp` runs, also when the token was cached while valid; a factor
/// `last_authenticated_at` in the future is
/// [`InvalidClaim`](crate::AuthErrorKind::InvalidClaim), never "just now". Stytch sends no
/// `auth_time`; the session's [`auth_time`](Session::auth_time) is the most recent
/// factor's `last_authenticated_at`, so `max_age` requirements work on both dialects.
/// Stytch sends no `acr` either, and the profile sets none: guards judge `acr`
/// requirements at the level the session's factors give it (two distinct factor kinds
/// are `mfa`), see [`GuardConfig::session_acr`](crate::GuardConfig::session_acr).
///
/// # Example
///
/// ```
/// use tower_stepup::{SessionLayer, StytchProfile};
/// # fn f(builder: tower_stepup::SessionLayerBuilder) {
/// let builder = builder.with_profile(StytchProfile::new());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct StytchProfile {
    _private: (),
}

impl StytchProfile {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A Stytch session object: the `https://stytch.com/session` claim of a session JWT
/// (`id`) and the `session` / `member_session` of an API response (`session_id`,
/// owner ids, custom claims) share this shape.
#[derive(Deserialize)]
pub(crate) struct StytchSessionObject {
    // The JWT claim says `id`; API responses `session_id`, or `member_session_id`
    // for B2B member sessions.
    #[serde(alias = "session_id", alias = "member_session_id")]
    id: String,
    pub(crate) user_id: Option<String>,
    pub(crate) member_id: Option<String>,
    pub(crate) organization_id: Option<String>,
    started_at: Option<String>,
    last_accessed_at: Option<String>,
    pub(crate) expires_at: Option<String>,
    #[serde(default)]
    authentication_factors: Vec<WireFactor>,
    #[serde(default)]
    roles: Vec<String>,
    pub(crate) custom_claims: Option<Value>,
    /// `{ip_address, user_agent}`: consumer sessions (claim and API answer); B2B
    /// member sessions from the API carry none.
    #[serde(default)]
    attributes: Value,
}

impl StytchSessionObject {
    /// Sets the session id, factors, roles and times on `builder`.
    pub(crate) fn apply(self, mut builder: SessionBuilder) -> Result<SessionBuilder, AuthError> {
        let factors = self.authentication_factors.into_iter().map(stytch_factor).collect::<Result<Vec<_>, _>>()?;
        // Stytch sends no `auth_time`: the user last authenticated when their most
        // recent factor did, which is what `max_age` requirements mean.
        if let Some(at) = factors.iter().filter_map(Factor::last_authenticated_at).max() {
            builder = builder.auth_time(at);
        }
        builder =
            builder.session_id(self.id).factors(factors).roles(self.roles).attributes(attributes(&self.attributes));
        if let Some(at) = optional_time(self.started_at.as_deref())? {
            builder = builder.started_at(at);
        }
        if let Some(at) = optional_time(self.last_accessed_at.as_deref())? {
            builder = builder.last_accessed_at(at);
        }
        if let Some(at) = optional_time(self.expires_at.as_deref())? {
            builder = builder.session_expires_at(at);
        }
        Ok(builder)
    }
}

#[derive(Deserialize)]
struct OrganizationClaim {
    organization_id: String,
    slug: Option<String>,
}

impl ClaimProfile for StytchProfile {
    fn session(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
        let session = claims.other.remove(SESSION_CLAIM).map(serde_json::from_value);
        let organization = claims.other.remove(ORGANIZATION_CLAIM).map(serde_json::from_value);
        let custom = std::mem::take(&mut claims.other);
        build(&claims, session, organization, || Ok(custom))
    }

    fn __builtin(&self) -> Option<Builtin<'_>> {
        Some(Builtin(BuiltinKind::Stytch(self)))
    }
}

impl StytchProfile {
    /// The session of a verified token, read straight from its JSON text: the
    /// session and organization claims into their types, the custom claims kept
    /// apart. Same rules and errors as [`session`](ClaimProfile::session), except
    /// that a name sent twice inside these two claims is refused
    /// ([`InvalidClaim`](AuthErrorKind::InvalidClaim)) instead of the last one
    /// winning. `claims.other` is ignored (empty on this path).
    // A method, like `session`: the profile's settings (none yet) apply here too.
    #[allow(clippy::unused_self)]
    pub(crate) fn session_from_payload(
        &self,
        claims: &VerifiedClaims,
        payload: &Payload<'_>,
    ) -> Result<Session, AuthError> {
        fn parse<'p, T: Deserialize<'p>>(payload: &Payload<'p>, name: &str) -> Option<serde_json::Result<T>> {
            payload.other(name).map(|raw| serde_json::from_str(raw.get()))
        }
        build(claims, parse(payload, SESSION_CLAIM), parse(payload, ORGANIZATION_CLAIM), || {
            payload.others_except(&[SESSION_CLAIM, ORGANIZATION_CLAIM])
        })
    }
}

/// Both paths: the session claim (missing, then malformed, first), then the
/// organization claim, then the session's own members, then the custom claims.
fn build(
    claims: &VerifiedClaims,
    session: Option<serde_json::Result<StytchSessionObject>>,
    organization: Option<serde_json::Result<OrganizationClaim>>,
    custom: impl FnOnce() -> Result<Map<String, Value>, AuthError>,
) -> Result<Session, AuthError> {
    let session = session
        .ok_or_else(|| AuthError::with_detail(AuthErrorKind::MissingClaim, SESSION_CLAIM))?
        .map_err(|_| AuthError::with_detail(AuthErrorKind::InvalidClaim, SESSION_CLAIM))?;
    let organization = organization
        .map(|org| {
            org.map(|org| Organization { id: org.organization_id, slug: org.slug })
                .map_err(|_| AuthError::with_detail(AuthErrorKind::InvalidClaim, ORGANIZATION_CLAIM))
        })
        .transpose()?;
    let mut builder = claims.session_builder();
    if session.expires_at.is_none() {
        // Older tokens lack `expires_at`: the JWT's `exp` is the best bound known.
        builder = builder.session_expires_at(claims.expires_at);
    }
    builder = session.apply(builder)?;
    if let Some(organization) = organization {
        builder = builder.organization(organization);
    }
    Ok(builder.claims(Value::Object(custom()?)).build())
}

/// Stytch's session `attributes`. Read leniently: a malformed member is "not
/// recorded", which no context requirement accepts, rather than a refused session
/// on routes that never look at it.
fn attributes(raw: &Value) -> SessionAttributes {
    let member = |name| raw.get(name).and_then(Value::as_str);
    SessionAttributes::from_wire(member("ip_address"), member("user_agent"))
}

fn optional_time(value: Option<&str>) -> Result<Option<SystemTime>, AuthError> {
    value.map(parse_rfc3339).transpose()
}

/// Parses an RFC 3339 timestamp as Stytch sends it.
pub(crate) fn parse_rfc3339(value: &str) -> Result<SystemTime, AuthError> {
    time::OffsetDateTime::parse(value, &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| AuthError::with_detail(AuthErrorKind::InvalidClaim, "timestamp"))
}

/// One entry of Stytch's `authentication_factors` as sent: the members a [`Factor`]
/// keeps structurally, and the rest for its details. Read member by member, so
/// that a factor costs no map of all its members; a member sent twice is refused.
pub(crate) enum WireFactor {
    Object(FactorMembers),
    /// Anything but an object: refused when the session is built.
    NotAnObject,
}

#[derive(Default)]
pub(crate) struct FactorMembers {
    kind: Option<Value>,
    delivery_method: Option<Value>,
    last_authenticated_at: Option<Value>,
    rest: Map<String, Value>,
}

impl<'de> Deserialize<'de> for WireFactor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WireFactorVisitor)
    }
}

struct WireFactorVisitor;

impl<'de> serde::de::Visitor<'de> for WireFactorVisitor {
    type Value = WireFactor;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a factor object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<WireFactor, A::Error> {
        use serde::de::Error as _;
        let mut members = FactorMembers::default();
        while let Some(super::payload::Text(name)) = map.next_key()? {
            let slot = match &*name {
                "type" => &mut members.kind,
                "delivery_method" => &mut members.delivery_method,
                "last_authenticated_at" => &mut members.last_authenticated_at,
                _ => {
                    let value = map.next_value()?;
                    if members.rest.insert(name.into_owned(), value).is_some() {
                        return Err(A::Error::custom("a factor member sent twice"));
                    }
                    continue;
                }
            };
            if slot.replace(map.next_value()?).is_some() {
                return Err(A::Error::custom("a factor member sent twice"));
            }
        }
        Ok(WireFactor::Object(members))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<WireFactor, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(WireFactor::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<WireFactor, E> {
        Ok(WireFactor::NotAnObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<WireFactor, E> {
        Ok(WireFactor::NotAnObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<WireFactor, E> {
        Ok(WireFactor::NotAnObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<WireFactor, E> {
        Ok(WireFactor::NotAnObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<WireFactor, E> {
        Ok(WireFactor::NotAnObject)
    }

    fn visit_unit<E>(self) -> Result<WireFactor, E> {
        Ok(WireFactor::NotAnObject)
    }
}

/// One entry of Stytch's `authentication_factors`.
pub(crate) fn stytch_factor(raw: WireFactor) -> Result<Factor, AuthError> {
    let invalid = || AuthError::with_detail(AuthErrorKind::InvalidClaim, "authentication_factors");
    let WireFactor::Object(members) = raw else { return Err(invalid()) };
    let kind = members.kind.as_ref().and_then(Value::as_str).map(FactorKind::parse).ok_or_else(invalid)?;
    let last_authenticated_at = match &members.last_authenticated_at {
        None | Some(Value::Null) => None,
        Some(Value::String(at)) => Some(parse_rfc3339(at)?),
        Some(_) => return Err(invalid()),
    };
    let mut factor = Factor::new(kind);
    if let Some(Value::String(method)) = members.delivery_method {
        factor = factor.with_delivery_method(method);
    }
    if let Some(at) = last_authenticated_at {
        factor = factor.with_last_authenticated_at(at);
    }
    Ok(factor.with_detail_members(members.rest))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// Read member by member, a factor is the very factor `with_details` makes of
    /// the whole object.
    #[test]
    fn factors_read_member_by_member_equal_those_built_from_the_object() {
        for json in [
            r#"{"type":"otp","delivery_method":"email","last_authenticated_at":"2026-11-28T16:54:16Z","created_at":"2026-11-28T16:54:16Z","updated_at":"2026-11-28T16:54:16.5Z","email_factor":{"email_id":"e-1","email_address":"a@example.com"}}"#,
            r#"{"type":"totp","delivery_method":"authenticator_app","authenticator_app_factor":{"totp_id":"t-1"},"created_at":7}"#,
            r#"{"type":"brand_new","delivery_method":"telepathy","last_authenticated_at":null,"x":[1,{"y":null}]}"#,
            r#"{"type":"password"}"#,
        ] {
            let value: Value = serde_json::from_str(json).unwrap();
            let read = stytch_factor(serde_json::from_str(json).unwrap()).unwrap();
            let mut built = Factor::new(FactorKind::parse(value["type"].as_str().unwrap()));
            if let Some(method) = value["delivery_method"].as_str() {
                built = built.with_delivery_method(method);
            }
            if let Some(at) = value["last_authenticated_at"].as_str() {
                built = built.with_last_authenticated_at(parse_rfc3339(at).unwrap());
            }
            let built = built.with_details(value.clone());
            assert_eq!(read, built, "{json}");
            assert_eq!(read.details(), built.details());
        }
    }

    #[test]
    fn auth_time_is_the_most_recent_factor() {
        let claims = VerifiedClaims {
            issuer: "stytch.com/project-test-1".into(),
            subject: "user-1".into(),
            audience: vec!["project-test-1".into()],
            issued_at: None,
            expires_at: UNIX_EPOCH + Duration::from_secs(2_000_000_000),
            not_before: None,
            jwt_id: None,
            other: serde_json::json!({
                SESSION_CLAIM: {
                    "id": "session-1",
                    "attributes": {"ip_address": "203.0.113.7", "user_agent": ""},
                    "authentication_factors": [
                        {"type": "password", "delivery_method": "knowledge", "last_authenticated_at": "2026-01-01T10:00:00Z"},
                        {"type": "totp", "delivery_method": "authenticator_app", "last_authenticated_at": "2026-01-01T10:05:00Z"},
                        {"type": "brand_new_factor", "delivery_method": "telepathy"}
                    ]
                }
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        };
        let session = StytchProfile::new().session(claims).unwrap();
        assert_eq!(session.auth_time(), Some(parse_rfc3339("2026-01-01T10:05:00Z").unwrap()));
        assert_eq!(*session.factors()[2].kind(), FactorKind::parse("brand_new_factor"));
        assert_eq!(session.attributes().ip_address, "203.0.113.7".parse().ok());
        assert_eq!(session.attributes().user_agent, None, "an empty user agent is not recorded");
        assert_eq!(session.session_expires_at(), Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)));
    }
}
