//! Stytch session JWTs (consumer and B2B).

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use super::{ClaimProfile, VerifiedClaims};
use crate::error::{AuthError, AuthErrorKind};
use crate::session::{Factor, FactorKind, Organization, Session};

const SESSION_CLAIM: &str = "https://stytch.com/session";
const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";

/// Reads Stytch session JWTs: the `https://stytch.com/session` claim (id, times,
/// factors, roles) and, for B2B, `https://stytch.com/organization`. Custom claims
/// are the remaining top-level claims.
///
/// Unknown factor types and delivery methods are kept as sent, never rejected.
/// A token without `expires_at` (older tokens) falls back to `exp`.
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

#[derive(Deserialize)]
struct SessionClaim {
    id: String,
    started_at: Option<String>,
    last_accessed_at: Option<String>,
    expires_at: Option<String>,
    #[serde(default)]
    authentication_factors: Vec<Value>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
struct OrganizationClaim {
    organization_id: String,
    slug: Option<String>,
}

impl ClaimProfile for StytchProfile {
    fn session(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
        let raw = claims
            .other
            .remove(SESSION_CLAIM)
            .ok_or_else(|| AuthError::with_detail(AuthErrorKind::MissingClaim, SESSION_CLAIM))?;
        let session: SessionClaim = serde_json::from_value(raw)
            .map_err(|_| AuthError::with_detail(AuthErrorKind::InvalidClaim, SESSION_CLAIM))?;
        let organization = claims
            .other
            .remove(ORGANIZATION_CLAIM)
            .map(|raw| {
                serde_json::from_value::<OrganizationClaim>(raw)
                    .map(|org| Organization { id: org.organization_id, slug: org.slug })
                    .map_err(|_| AuthError::with_detail(AuthErrorKind::InvalidClaim, ORGANIZATION_CLAIM))
            })
            .transpose()?;
        let factors = session.authentication_factors.into_iter().map(stytch_factor).collect::<Result<Vec<_>, _>>()?;

        let mut builder = claims.session_builder().session_id(session.id).factors(factors).roles(session.roles);
        if let Some(at) = optional_time(session.started_at.as_deref())? {
            builder = builder.started_at(at);
        }
        if let Some(at) = optional_time(session.last_accessed_at.as_deref())? {
            builder = builder.last_accessed_at(at);
        }
        builder =
            builder.session_expires_at(optional_time(session.expires_at.as_deref())?.unwrap_or(claims.expires_at));
        if let Some(organization) = organization {
            builder = builder.organization(organization);
        }
        Ok(builder.claims(Value::Object(claims.other)).build())
    }
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

/// One entry of Stytch's `authentication_factors`.
pub(crate) fn stytch_factor(raw: Value) -> Result<Factor, AuthError> {
    let invalid = || AuthError::with_detail(AuthErrorKind::InvalidClaim, "authentication_factors");
    let object = raw.as_object().ok_or_else(invalid)?;
    let kind = object.get("type").and_then(Value::as_str).map(FactorKind::parse).ok_or_else(invalid)?;
    let delivery_method = object.get("delivery_method").and_then(Value::as_str).map(str::to_owned);
    let last_authenticated_at = match object.get("last_authenticated_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(at)) => Some(parse_rfc3339(at)?),
        Some(_) => return Err(invalid()),
    };
    Ok(Factor { kind, delivery_method, last_authenticated_at, details: raw })
}
