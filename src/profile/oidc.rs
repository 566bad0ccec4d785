//! Standard OAuth 2.0 / OpenID Connect access tokens (RFC 9068).

use serde_json::Value;

use super::{ClaimProfile, VerifiedClaims};
use crate::error::{AuthError, AuthErrorKind};
use crate::session::{Factor, FactorKind, Session, SessionAttributes};
use crate::verify::{numeric_date, secs_to_time};

/// Reads standard claims: `acr`, `amr` (also mapped to [`Factor`]s, authenticated at
/// `auth_time`), `auth_time`, `scope` (space separated) or `scp` (array), `sid`,
/// `client_id`, and roles from `roles` (configurable).
///
/// `auth_time` is a NumericDate like `exp` (fractions of a second dropped; negative,
/// non-numeric or past-9999 values are [`InvalidClaim`](crate::AuthErrorKind::InvalidClaim));
/// the layer refuses a token whose `auth_time` lies in the future beyond its leeway.
///
/// [`OidcProfile::rfc9068`] also requires the claims RFC 9068 makes mandatory for
/// access tokens (`client_id`, `iat`, `jti`).
///
/// `amr` values map to factor kinds per RFC 8176: `pwd` → password, `otp` → otp,
/// `sms` → otp delivered by sms, `tel` → otp delivered by voice, `hwk` → webauthn;
/// others keep their name as a [`FactorKind`] (`mfa` is a summary, not a factor).
///
/// # Example
///
/// ```
/// use tower_stepup::OidcProfile;
///
/// let profile = OidcProfile::rfc9068().with_roles_claim("groups");
/// # let _ = profile;
/// ```
#[derive(Debug, Clone)]
pub struct OidcProfile {
    require_rfc9068: bool,
    roles_claim: String,
    ip_address_claim: Option<String>,
    user_agent_claim: Option<String>,
}

impl Default for OidcProfile {
    fn default() -> Self {
        Self { require_rfc9068: false, roles_claim: "roles".to_owned(), ip_address_claim: None, user_agent_claim: None }
    }
}

impl OidcProfile {
    /// A lenient profile: only the claims the layer always checks are required.
    pub fn new() -> Self {
        Self::default()
    }

    /// A profile for RFC 9068 access tokens: `client_id`, `iat` and `jti` required.
    pub fn rfc9068() -> Self {
        Self { require_rfc9068: true, ..Self::default() }
    }

    /// Reads roles from another claim (an array of strings, or one string).
    #[must_use]
    pub fn with_roles_claim(mut self, claim: impl Into<String>) -> Self {
        self.roles_claim = claim.into();
        self
    }
}

impl OidcProfile {
    /// Reads where the session began from this claim: a string with the client's IP
    /// address when the user logged in (e.g. a Keycloak "user session note" mapper
    /// for `clientAddress`, or an Auth0 action adding `https://example.com/ip`), for
    /// [`Requirement::same_context`](crate::Requirement::same_context). The claim is
    /// removed from the custom claims. Default: none (OIDC has no standard claim for
    /// it, so sessions record no address and `same_context` refuses them).
    ///
    /// ```
    /// use tower_stepup::OidcProfile;
    ///
    /// let profile = OidcProfile::rfc9068()
    ///     .with_ip_address_claim("https://example.com/login_ip")
    ///     .with_user_agent_claim("https://example.com/login_ua");
    /// # let _ = profile;
    /// ```
    #[must_use]
    pub fn with_ip_address_claim(mut self, claim: impl Into<String>) -> Self {
        self.ip_address_claim = Some(claim.into());
        self
    }
    /// Reads the user agent the session began with from this claim (a string); see
    /// [`with_ip_address_claim`](Self::with_ip_address_claim).
    #[must_use]
    pub fn with_user_agent_claim(mut self, claim: impl Into<String>) -> Self {
        self.user_agent_claim = Some(claim.into());
        self
    }
    /// Takes the configured context claims out of `claims`.
    fn attributes(&self, claims: &mut VerifiedClaims) -> SessionAttributes {
        let mut take = |name: &Option<String>| match name.as_ref().and_then(|name| claims.other.remove(name)) {
            Some(Value::String(value)) => Some(value),
            // Another type is "not recorded", never a match: fail closed on the
            // routes that ask, without refusing the session on the others.
            _ => None,
        };
        let ip = take(&self.ip_address_claim);
        let user_agent = take(&self.user_agent_claim);
        SessionAttributes::from_wire(ip.as_deref(), user_agent.as_deref())
    }
}

/// The factor an RFC 8176 `amr` value stands for, if it stands for one.
pub(crate) fn amr_factor(amr: &str) -> Option<Factor> {
    Some(match amr {
        "pwd" => Factor::new(FactorKind::PASSWORD),
        "otp" => Factor::new(FactorKind::OTP),
        "sms" => Factor::new(FactorKind::OTP).with_delivery_method("sms"),
        "tel" => Factor::new(FactorKind::OTP).with_delivery_method("voice"),
        "hwk" => Factor::new(FactorKind::WEBAUTHN),
        "mfa" | "mca" => return None,
        other => Factor::new(FactorKind::parse(other)),
    })
}

impl ClaimProfile for OidcProfile {
    fn session(&self, claims: VerifiedClaims) -> Result<Session, AuthError> {
        self.read(claims, self.require_rfc9068)
    }

    /// As [`session`](Self::session), without the RFC 9068 requirements: `jti`,
    /// `iat` and `client_id` are optional in an introspection answer (RFC 7662).
    fn introspected(&self, claims: VerifiedClaims) -> Result<Session, AuthError> {
        self.read(claims, false)
    }
}

impl OidcProfile {
    fn read(&self, mut claims: VerifiedClaims, require_rfc9068: bool) -> Result<Session, AuthError> {
        let acr = claims.take_string("acr")?;
        let amr = claims.take_strings("amr")?;
        // A NumericDate like `exp` (fractions dropped); `null` reads as absent. Whether
        // it lies in the future is checked on the finished session (`check_times`).
        if claims.other.get("auth_time").is_some_and(Value::is_null) {
            claims.other.remove("auth_time");
        }
        let auth_time = numeric_date(&mut claims.other, "auth_time")?.map(secs_to_time);
        let mut scopes: Vec<String> = claims
            .take_string("scope")?
            .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        if scopes.is_empty() {
            scopes = match claims.other.remove("scp") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
                Some(value) => super::strings(value, "scp")?,
            };
        }
        let roles = match claims.other.remove(&self.roles_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(role)) => vec![role],
            Some(value) => super::strings(value, "roles")?,
        };
        let attributes = self.attributes(&mut claims);
        let session_id = claims.take_string("sid")?;
        let client_id = claims.take_string("client_id")?;
        if require_rfc9068 {
            for (present, name) in [
                (client_id.is_some(), "client_id"),
                (claims.issued_at.is_some(), "iat"),
                (claims.jwt_id.is_some(), "jti"),
            ] {
                if !present {
                    return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, name));
                }
            }
        }
        let factors = amr
            .iter()
            .filter_map(|value| amr_factor(value))
            .map(|factor| match auth_time {
                Some(at) => factor.with_last_authenticated_at(at),
                None => factor,
            })
            .collect();

        let mut builder =
            claims.session_builder().factors(factors).amr(amr).roles(roles).scopes(scopes).attributes(attributes);
        if let Some(acr) = acr {
            builder = builder.acr(acr);
        }
        if let Some(at) = auth_time {
            builder = builder.auth_time(at);
        }
        if let Some(sid) = session_id {
            builder = builder.session_id(sid);
        }
        if let Some(client_id) = client_id {
            builder = builder.client_id(client_id);
        }
        Ok(builder.claims(Value::Object(claims.other)).build())
    }
}
