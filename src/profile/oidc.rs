//! Standard OAuth 2.0 / OpenID Connect access tokens (RFC 9068).

use serde_json::{Map, Value};

use super::{ClaimPath, ClaimProfile, VerifiedClaims};
use crate::error::{AuthError, AuthErrorKind};
use crate::session::{Factor, FactorKind, Session, SessionAttributes};
use crate::verify::{numeric_date, secs_to_time};

/// Reads standard claims: `acr`, `amr` (also mapped to [`Factor`]s, authenticated at
/// `auth_time`), `auth_time`, scopes, `sid`, the client id, and roles, from claims
/// you can move ([`ClaimPath`]s).
///
/// Defaults: scopes from `scope` and `scp`, client id from `client_id`, roles from
/// `roles`. [`Preset`](crate::Preset)s configure one for each provider.
///
/// - **Scopes**: the union of every configured claim
///   ([`with_scopes_claim`](Self::with_scopes_claim)); each is a space-separated
///   string or an array of strings.
/// - **Client id**: the first configured claim present
///   ([`with_client_id_claim`](Self::with_client_id_claim)); two present with
///   different values are [`InvalidClaim`](crate::AuthErrorKind::InvalidClaim), as is
///   a client outside [`with_allowed_clients`](Self::with_allowed_clients).
/// - **Roles**: the union of every configured claim
///   ([`with_roles_claim`](Self::with_roles_claim),
///   [`with_additional_roles_claim`](Self::with_additional_roles_claim)); each is an
///   array of strings or one string.
/// - **Required values** ([`with_required_claim`](Self::with_required_claim)): e.g.
///   Keycloak's `typ` `Bearer`, which its ID tokens do not carry.
///
/// Claims read from a top-level path are removed from the custom claims; values read
/// from a nested path stay there. A value of the wrong type is
/// [`InvalidClaim`](crate::AuthErrorKind::InvalidClaim) naming the claim path.
///
/// `auth_time` is a NumericDate like `exp` (fractions of a second dropped; negative,
/// non-numeric or past-9999 values are [`InvalidClaim`](crate::AuthErrorKind::InvalidClaim));
/// the layer refuses a token whose `auth_time` lies in the future beyond its leeway.
///
/// [`OidcProfile::rfc9068`] also requires the claims RFC 9068 makes mandatory for
/// access tokens (a client id, `iat`, `jti`).
///
/// # `amr` values and factors
///
/// `amr` values (RFC 8176 §2) become [`Factor`]s, so factor requirements work for
/// OIDC tokens too, with the narrowest kind the value guarantees:
///
/// | `amr` | factor kind | why |
/// |---|---|---|
/// | `pwd` | `password` | |
/// | `otp` | `otp` | any one-time password (TOTP, HOTP, a code sent by mail or text): never `totp`, which would claim more than the value says |
/// | `sms` | `otp`, delivered by `sms` | a code sent by text message |
/// | `tel` | `otp`, delivered by `voice` | a code read out on a call |
/// | `hwk` | `webauthn` | proof of possession of a hardware-secured key |
/// | `mfa`, `mca` | none | summaries of other methods, not methods |
/// | anything else (`swk`, `face`, `fpt`, `pin`, `sc`, `kba`, `geo`, …) | its own name | |
///
/// [`Requirement::multi_factor`](crate::Requirement::multi_factor) reads `mfa` and
/// these factors (see there).
///
/// # Example
///
/// ```
/// use tower_stepup::OidcProfile;
///
/// // Keycloak: realm roles and the roles of the client `my-api`.
/// let profile = OidcProfile::new()
///     .with_client_id_claim("azp")
///     .with_roles_claim("realm_access.roles")
///     .with_additional_roles_claim(tower_stepup::ClaimPath::new(["resource_access", "my-api", "roles"]))
///     .with_required_claim("typ", "Bearer");
/// # let _ = profile;
/// ```
#[derive(Debug, Clone)]
pub struct OidcProfile {
    require_rfc9068: bool,
    roles_claims: Vec<ClaimPath>,
    scope_claims: Vec<ClaimPath>,
    client_id_claims: Vec<ClaimPath>,
    allowed_clients: Option<Vec<String>>,
    required: Vec<(ClaimPath, String)>,
    ip_address_claim: Option<String>,
    user_agent_claim: Option<String>,
}

impl Default for OidcProfile {
    fn default() -> Self {
        Self {
            require_rfc9068: false,
            roles_claims: vec![ClaimPath::claim("roles")],
            scope_claims: vec![ClaimPath::claim("scope"), ClaimPath::claim("scp")],
            client_id_claims: vec![ClaimPath::claim("client_id")],
            allowed_clients: None,
            required: Vec::new(),
            ip_address_claim: None,
            user_agent_claim: None,
        }
    }
}

impl OidcProfile {
    /// A lenient profile: only the claims the layer always checks are required.
    pub fn new() -> Self {
        Self::default()
    }

    /// A profile for RFC 9068 access tokens: a client id, `iat` and `jti` required.
    pub fn rfc9068() -> Self {
        Self { require_rfc9068: true, ..Self::default() }
    }

    /// Reads roles from this claim path only (an array of strings, or one string),
    /// replacing the paths set before (default `roles`). A `&str` is read in the
    /// dotted form of [`ClaimPath::parse`]: `realm_access.roles` is nested,
    /// `https://example.com/roles` is one claim.
    #[must_use]
    pub fn with_roles_claim(mut self, path: impl Into<ClaimPath>) -> Self {
        self.roles_claims = vec![path.into()];
        self
    }

    /// Reads roles from these claim paths only (none: sessions have no roles).
    #[must_use]
    pub fn with_roles_claims<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<ClaimPath>,
    {
        self.roles_claims = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Also reads roles from this claim path: the session's roles are the union.
    #[must_use]
    pub fn with_additional_roles_claim(mut self, path: impl Into<ClaimPath>) -> Self {
        self.roles_claims.push(path.into());
        self
    }

    /// Also reads scopes from this claim path (a space-separated string or an array
    /// of strings), e.g. Auth0's `permissions`. Default: `scope` and `scp`.
    #[must_use]
    pub fn with_scopes_claim(mut self, path: impl Into<ClaimPath>) -> Self {
        self.scope_claims.push(path.into());
        self
    }

    /// Also reads the client id from this claim path (a string), after those set
    /// before (default `client_id`); e.g. `azp` for Keycloak and Auth0, `cid` for
    /// Okta. When several are present they must agree.
    #[must_use]
    pub fn with_client_id_claim(mut self, path: impl Into<ClaimPath>) -> Self {
        let path = path.into();
        if !self.client_id_claims.contains(&path) {
            self.client_id_claims.push(path);
        }
        self
    }

    /// Reads the client id from these claim paths only, in this order.
    #[must_use]
    pub fn with_client_id_claims<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<ClaimPath>,
    {
        self.client_id_claims = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Only tokens issued to these clients pass: the token must name a client id
    /// and it must be one of these ([`InvalidClaim`](crate::AuthErrorKind::InvalidClaim)
    /// otherwise; [`MissingClaim`](crate::AuthErrorKind::MissingClaim) without one).
    /// Default: any client.
    #[must_use]
    pub fn with_allowed_clients<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_clients = Some(clients.into_iter().map(Into::into).collect());
        self
    }

    /// The claim at `path` must be the string `value`: missing is
    /// [`MissingClaim`](crate::AuthErrorKind::MissingClaim), anything else
    /// [`InvalidClaim`](crate::AuthErrorKind::InvalidClaim). E.g. Keycloak marks
    /// access tokens `"typ": "Bearer"` and ID tokens `"typ": "ID"`.
    #[must_use]
    pub fn with_required_claim(mut self, path: impl Into<ClaimPath>, value: impl Into<String>) -> Self {
        self.required.push((path.into(), value.into()));
        self
    }

    /// Where roles are read from, in order.
    pub fn roles_claims(&self) -> &[ClaimPath] {
        &self.roles_claims
    }
    /// Where scopes are read from.
    pub fn scope_claims(&self) -> &[ClaimPath] {
        &self.scope_claims
    }
    /// Where the client id is read from, in order.
    pub fn client_id_claims(&self) -> &[ClaimPath] {
        &self.client_id_claims
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
        for (path, expected) in &self.required {
            check_required(&claims.other, path, expected)?;
        }
        let acr = claims.take_string("acr")?;
        let amr = claims.take_strings("amr")?;
        // A NumericDate like `exp` (fractions dropped); `null` reads as absent. Whether
        // it lies in the future is checked on the finished session (`check_times`).
        if claims.other.get("auth_time").is_some_and(Value::is_null) {
            claims.other.remove("auth_time");
        }
        let auth_time = numeric_date(&mut claims.other, "auth_time")?.map(secs_to_time);
        let mut scopes: Vec<String> = Vec::new();
        for path in &self.scope_claims {
            for scope in list(path.take(&mut claims.other), path, true)? {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        let mut roles: Vec<String> = Vec::new();
        for path in &self.roles_claims {
            for role in list(path.take(&mut claims.other), path, false)? {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        let attributes = self.attributes(&mut claims);
        let session_id = claims.take_string("sid")?;
        let client_id = self.client_id(&mut claims.other)?;
        if require_rfc9068 {
            for (present, name) in [
                (client_id.is_some(), "client_id"),
                (claims.issued_at.is_some(), "iat"),
                (claims.jwt_id.is_some(), "jti"),
            ] {
                if !present {
                    return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, name)
                        .with_diagnostic(format!("RFC 9068 access tokens must carry `{name}`; this token has none")));
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

        let roles_from = self.roles_claims.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let mut builder = claims
            .session_builder()
            .factors(factors)
            .amr(amr)
            .roles(roles)
            .scopes(scopes)
            .attributes(attributes)
            .roles_from(roles_from);
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

    /// The client id: the first configured claim present; all present must agree,
    /// and it must be an allowed client when those are configured.
    fn client_id(&self, claims: &mut Map<String, Value>) -> Result<Option<String>, AuthError> {
        let mut found: Option<(String, &ClaimPath)> = None;
        for path in &self.client_id_claims {
            let value = match path.take(claims) {
                None | Some(Value::Null) => continue,
                Some(Value::String(value)) => value,
                Some(_) => {
                    return Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, path.to_string())
                        .with_diagnostic(format!("`{path}` must be a string (the client id)")))
                }
            };
            match &found {
                Some((first, first_path)) if *first != value => {
                    // Two statements of who the client is that disagree: neither is
                    // trusted over the other.
                    return Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, "client id")
                        .with_diagnostic(format!("`{first_path}` says `{first}` but `{path}` says `{value}`")));
                }
                Some(_) => {}
                None => found = Some((value, path)),
            }
        }
        if let Some(allowed) = &self.allowed_clients {
            let names = || allowed.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
            match &found {
                None => {
                    let paths = self.client_id_claims.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
                    return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, "client id")
                        .with_diagnostic(format!("no client id in {paths}; expected one of {}", names())));
                }
                Some((client, path)) if !allowed.contains(client) => {
                    return Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, path.to_string())
                        .with_diagnostic(format!("`{path}` is `{client}`, not an allowed client ({})", names())));
                }
                Some(_) => {}
            }
        }
        Ok(found.map(|(client, _)| client))
    }
}

/// The claim at `path` must be the string `expected`.
fn check_required(claims: &Map<String, Value>, path: &ClaimPath, expected: &str) -> Result<(), AuthError> {
    match path.find(claims) {
        Some(Value::String(value)) if value == expected => Ok(()),
        None | Some(Value::Null) => Err(AuthError::with_detail(AuthErrorKind::MissingClaim, path.to_string())
            .with_diagnostic(format!("`{path}` must be `{expected}`; the token has none"))),
        Some(Value::String(value)) => Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, path.to_string())
            .with_diagnostic(format!("`{path}` must be `{expected}`, found `{value}`"))),
        Some(_) => Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, path.to_string())
            .with_diagnostic(format!("`{path}` must be the string `{expected}`, found another JSON type"))),
    }
}

/// A list claim: an array of strings, or one string (split on whitespace when
/// `split`, for scopes; kept whole for roles).
fn list(value: Option<Value>, path: &ClaimPath, split: bool) -> Result<Vec<String>, AuthError> {
    let invalid = || {
        AuthError::with_detail(AuthErrorKind::InvalidClaim, path.to_string())
            .with_diagnostic(format!("`{path}` must be a string or an array of strings"))
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if split => Ok(s.split_ascii_whitespace().map(str::to_owned).collect()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(values)) => values
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}
