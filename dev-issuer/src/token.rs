//! Authentication factors, Stytch session claims, and the JWT minting builders.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::shape::{DevShape, ShapedClaims};
use super::util::{random_uuid, rfc3339, stable_uuid, time_add, time_sub, unix_secs};
use super::{DevAlg, DevIssuer, Shared, DEFAULT_AUDIENCE, DEFAULT_MEMBER_ID, DEFAULT_SUBJECT};

/// One authentication factor of a dev session, as Stytch lists it in
/// `authentication_factors`.
///
/// `kind` is Stytch's `type` (`totp`, `webauthn`, `otp`, `magic_link`, `password`,
/// `oauth`, …), `delivery_method` its `delivery_method` (`authenticator_app`,
/// `webauthn_registration`, `sms`, `email`, `knowledge`, `oauth_google`, …). The matching
/// `*_factor` object (`email_factor`, `phone_number_factor`, …) is derived from the
/// delivery method when the factor is written into a token or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevFactor {
    /// Stytch factor `type`, e.g. `"totp"`.
    pub kind: String,
    /// Stytch `delivery_method`, e.g. `"authenticator_app"`.
    pub delivery_method: String,
    /// When the user last completed this factor (`last_authenticated_at`).
    pub last_authenticated_at: SystemTime,
}

impl DevFactor {
    /// A factor of any type and delivery method, authenticated now.
    pub fn custom(kind: impl Into<String>, delivery_method: impl Into<String>) -> Self {
        DevFactor {
            kind: kind.into(),
            delivery_method: delivery_method.into(),
            last_authenticated_at: SystemTime::now(),
        }
    }

    /// TOTP from an authenticator app (`totp` / `authenticator_app`).
    pub fn totp() -> Self {
        Self::custom("totp", "authenticator_app")
    }

    /// WebAuthn / passkey (`webauthn` / `webauthn_registration`).
    pub fn webauthn() -> Self {
        Self::custom("webauthn", "webauthn_registration")
    }

    /// One-time passcode by SMS (`otp` / `sms`).
    pub fn sms_otp() -> Self {
        Self::custom("otp", "sms")
    }

    /// One-time passcode by email (`otp` / `email`).
    pub fn email_otp() -> Self {
        Self::custom("otp", "email")
    }

    /// Email magic link (`magic_link` / `email`).
    pub fn magic_link() -> Self {
        Self::custom("magic_link", "email")
    }

    /// Password (`password` / `knowledge`).
    pub fn password() -> Self {
        Self::custom("password", "knowledge")
    }

    /// Google OAuth (`oauth` / `oauth_google`).
    pub fn oauth_google() -> Self {
        Self::custom("oauth", "oauth_google")
    }

    /// Sets `last_authenticated_at` to `age` before now.
    #[must_use]
    pub fn authenticated_ago(mut self, age: Duration) -> Self {
        self.last_authenticated_at = time_sub(SystemTime::now(), age);
        self
    }

    /// Sets `last_authenticated_at`.
    #[must_use]
    pub fn authenticated_at(mut self, at: SystemTime) -> Self {
        self.last_authenticated_at = at;
        self
    }

    /// Parses the short names used by the `/dev/login` and `/dev/step-up` endpoints:
    /// `password`, `totp`, `webauthn`, `sms_otp` (`sms`), `email_otp`, `magic_link`
    /// (`email`), `oauth_google` (`google`).
    pub(crate) fn from_short_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "password" | "pwd" => Self::password(),
            "totp" | "authenticator_app" => Self::totp(),
            "webauthn" | "passkey" => Self::webauthn(),
            "sms_otp" | "sms" => Self::sms_otp(),
            "email_otp" => Self::email_otp(),
            "magic_link" | "email" => Self::magic_link(),
            "oauth_google" | "google" | "oauth" => Self::oauth_google(),
            _ => return None,
        })
    }

    /// Whether `other` is the same kind of factor (same type and delivery method).
    pub(crate) fn same_kind(&self, other: &DevFactor) -> bool {
        self.kind == other.kind && self.delivery_method == other.delivery_method
    }
}

/// A factor attached to a session, with the time it was first added.
#[derive(Debug, Clone)]
pub(crate) struct StoredFactor {
    pub(crate) factor: DevFactor,
    pub(crate) created_at: SystemTime,
}

impl StoredFactor {
    pub(crate) fn new(factor: DevFactor) -> Self {
        let created_at = factor.last_authenticated_at;
        StoredFactor { factor, created_at }
    }
}

/// The `*_factor` object Stytch attaches to a factor, by delivery method.
fn factor_object(factor: &DevFactor, user_id: &str) -> Option<(String, Value)> {
    let email_id = format!("email-test-{}", stable_uuid(&[user_id, "email"]));
    let email_address = format!("dev+{}@example.com", &stable_uuid(&[user_id, "addr"])[..8]);
    let method = factor.delivery_method.as_str();
    let object = match method {
        "email" | "knowledge" | "embedded" => {
            (String::from("email_factor"), json!({ "email_id": email_id, "email_address": email_address }))
        }
        "sms" | "whatsapp" => (
            String::from("phone_number_factor"),
            json!({
                "phone_id": format!("phone-number-test-{}", stable_uuid(&[user_id, "phone"])),
                "phone_number": "+15555550100",
            }),
        ),
        "authenticator_app" => (
            String::from("authenticator_app_factor"),
            json!({ "totp_id": format!("totp-test-{}", stable_uuid(&[user_id, "totp"])) }),
        ),
        "webauthn_registration" => (
            String::from("webauthn_factor"),
            json!({
                "webauthn_registration_id":
                    format!("webauthn-registration-test-{}", stable_uuid(&[user_id, "webauthn"])),
                "domain": "localhost",
                "user_agent": "tower-stepup dev issuer",
            }),
        ),
        _ => {
            let provider = method.strip_prefix("oauth_")?;
            (
                format!("{provider}_oauth_factor"),
                json!({
                    "id": format!("oauth-user-test-{}", stable_uuid(&[user_id, method])),
                    "email_id": email_id,
                    "provider_subject": stable_uuid(&[user_id, "subject", method]),
                }),
            )
        }
    };
    Some(object)
}

/// One entry of `authentication_factors`.
pub(crate) fn factor_json(stored: &StoredFactor, user_id: &str) -> Value {
    let f = &stored.factor;
    let mut obj = Map::new();
    obj.insert("type".into(), Value::String(f.kind.clone()));
    obj.insert("delivery_method".into(), Value::String(f.delivery_method.clone()));
    obj.insert("last_authenticated_at".into(), Value::String(rfc3339(f.last_authenticated_at)));
    obj.insert("created_at".into(), Value::String(rfc3339(stored.created_at)));
    obj.insert("updated_at".into(), Value::String(rfc3339(f.last_authenticated_at)));
    if let Some((name, value)) = factor_object(f, user_id) {
        obj.insert(name, value);
    }
    Value::Object(obj)
}

/// What goes into the `https://stytch.com/session` claim.
pub(crate) struct SessionClaim<'a> {
    pub(crate) session_id: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) started_at: SystemTime,
    pub(crate) last_accessed_at: SystemTime,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) factors: &'a [StoredFactor],
    pub(crate) roles: &'a [String],
    /// `attributes`; `Value::Null` leaves the member out.
    pub(crate) attributes: &'a Value,
}

/// Attributes Stytch records for a session unless told otherwise.
pub(crate) fn session_attributes() -> Value {
    json!({ "ip_address": "127.0.0.1", "user_agent": "tower-stepup dev issuer" })
}

impl SessionClaim<'_> {
    pub(crate) fn factors_json(&self) -> Value {
        Value::Array(self.factors.iter().map(|f| factor_json(f, self.subject)).collect())
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("id".into(), Value::String(self.session_id.to_owned()));
        obj.insert("started_at".into(), Value::String(rfc3339(self.started_at)));
        obj.insert("last_accessed_at".into(), Value::String(rfc3339(self.last_accessed_at)));
        if let Some(expires_at) = self.expires_at {
            obj.insert("expires_at".into(), Value::String(rfc3339(expires_at)));
        }
        if !self.attributes.is_null() {
            obj.insert("attributes".into(), self.attributes.clone());
        }
        obj.insert("authentication_factors".into(), self.factors_json());
        obj.insert("roles".into(), json!(self.roles));
        Value::Object(obj)
    }
}

/// Claim name of the Stytch session object.
pub(crate) const SESSION_CLAIM: &str = "https://stytch.com/session";
/// Claim name of the Stytch B2B organization object.
pub(crate) const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";

/// Builds the full claim set of a Stytch session JWT.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stytch_claims(
    issuer: &str,
    audience: Value,
    claim: &SessionClaim<'_>,
    issued_at: SystemTime,
    not_before: SystemTime,
    expires: SystemTime,
    organization: Option<(&str, &str)>,
    custom: &Map<String, Value>,
) -> Value {
    let mut obj = Map::new();
    obj.insert("iss".into(), Value::String(issuer.to_owned()));
    obj.insert("aud".into(), audience);
    obj.insert("sub".into(), Value::String(claim.subject.to_owned()));
    obj.insert("iat".into(), json!(unix_secs(issued_at)));
    obj.insert("nbf".into(), json!(unix_secs(not_before)));
    obj.insert("exp".into(), json!(unix_secs(expires)));
    obj.insert(SESSION_CLAIM.into(), claim.to_json());
    if let Some((organization_id, slug)) = organization {
        obj.insert(ORGANIZATION_CLAIM.into(), json!({ "organization_id": organization_id, "slug": slug }));
    }
    for (k, v) in custom {
        obj.insert(k.clone(), v.clone());
    }
    Value::Object(obj)
}

/// Header `typ` choice.
#[derive(Debug, Clone, Default)]
enum Typ {
    #[default]
    Default,
    Omit,
    Set(String),
}

/// Header choices shared by both builders.
#[derive(Debug, Clone, Default)]
struct HeaderChoice {
    alg: Option<DevAlg>,
    kid: Option<String>,
    typ: Typ,
    signed_by: Option<String>,
}

impl HeaderChoice {
    /// Signs `claims` with the chosen key, writing the header.
    fn sign(&self, shared: &Shared, default_typ: &str, claims: &Value) -> String {
        let key = match &self.signed_by {
            Some(kid) => shared
                .key_any(kid)
                .unwrap_or_else(|| panic!("dev issuer: signed_by({kid:?}): no key with this kid was ever made")),
            None => shared.signer(self.alg.unwrap_or(shared.default_alg)).unwrap_or_else(|e| panic!("{e}")),
        };
        let mut header = Map::new();
        header.insert("alg".into(), Value::String(key.alg.as_str().to_owned()));
        header.insert("kid".into(), Value::String(self.kid.clone().unwrap_or_else(|| key.kid.clone())));
        let typ = match &self.typ {
            Typ::Default => Some(default_typ.to_owned()),
            Typ::Omit => None,
            Typ::Set(t) => Some(t.clone()),
        };
        if let Some(typ) = typ {
            header.insert("typ".into(), Value::String(typ));
        }
        super::sign_compact(&Value::Object(header), claims, &key).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Generates the header setters shared by both token builders.
macro_rules! header_setters {
    ($typ_default:literal) => {
        /// Signs with the current signer of `alg` (created on first use if the issuer
        /// has no key of that algorithm yet).
        pub fn alg(mut self, alg: DevAlg) -> Self {
            self.header.alg = Some(alg);
            self
        }

        /// Signs with this exact key (also a rotated or removed one); header `alg` and
        /// `kid` follow the key. Takes precedence over [`alg`](Self::alg).
        pub fn signed_by(mut self, kid: impl Into<String>) -> Self {
            self.header.signed_by = Some(kid.into());
            self
        }

        /// Overrides the header `kid` only; the signing key does not change.
        pub fn kid(mut self, kid: impl Into<String>) -> Self {
            self.header.kid = Some(kid.into());
            self
        }

        #[doc = concat!("Header `typ` (default `", $typ_default, "`); `None` omits it.")]
        pub fn typ(mut self, typ: Option<&str>) -> Self {
            self.header.typ = typ.map_or(Typ::Omit, |t| Typ::Set(t.to_owned()));
            self
        }
    };
}

/// Generates `with`-style setters that store `Some(value.into())` in a field.
macro_rules! option_setters {
    ($($(#[$doc:meta])* $name:ident => $field:ident: $ty:ty,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: impl Into<$ty>) -> Self {
                self.$field = Some(value.into());
                self
            }
        )*
    };
}

/// Mints a Stytch session JWT; see [`DevIssuer::stytch_session`].
///
/// Defaults: subject [`DEFAULT_SUBJECT`], a random session id not backed by any stored
/// session, one `magic_link` factor authenticated now, roles `["stytch_user"]`, issued now,
/// lifetime from the config (5 minutes), `iss` = `stytch.com/{project_id}`,
/// `aud` = `[project_id]`, signed by the current signer of the default algorithm, header
/// `typ` `JWT`.
#[must_use = "call mint() to get the token"]
pub struct StytchJwtBuilder<'a> {
    issuer: &'a DevIssuer,
    subject: Option<String>,
    session_id: Option<String>,
    factors: Option<Vec<DevFactor>>,
    roles: Option<Vec<String>>,
    extra_roles: Vec<String>,
    custom: Map<String, Value>,
    b2b: Option<(String, String)>,
    issued_at: Option<SystemTime>,
    lifetime: Option<Duration>,
    not_before: Option<SystemTime>,
    issuer_claim: Option<String>,
    audience: Option<String>,
    started_at: Option<SystemTime>,
    expires_at: Option<SystemTime>,
    without_expires_at: bool,
    attributes: Option<Value>,
    header: HeaderChoice,
}

impl fmt::Debug for StytchJwtBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchJwtBuilder")
            .field("subject", &self.subject)
            .field("session_id", &self.session_id)
            .field("b2b", &self.b2b)
            .finish_non_exhaustive()
    }
}

impl<'a> StytchJwtBuilder<'a> {
    pub(crate) fn new(issuer: &'a DevIssuer) -> Self {
        StytchJwtBuilder {
            issuer,
            subject: None,
            session_id: None,
            factors: None,
            roles: None,
            extra_roles: Vec::new(),
            custom: Map::new(),
            b2b: None,
            issued_at: None,
            lifetime: None,
            not_before: None,
            issuer_claim: None,
            audience: None,
            started_at: None,
            expires_at: None,
            without_expires_at: false,
            attributes: None,
            header: HeaderChoice::default(),
        }
    }

    /// The session claim's `attributes` (default
    /// `{"ip_address": "127.0.0.1", "user_agent": "tower-stepup dev issuer"}`), as
    /// given: `Value::Null` leaves the member out, anything else is sent as is.
    pub fn attributes(mut self, attributes: Value) -> Self {
        self.attributes = Some(attributes);
        self
    }

    /// Adds an authentication factor (repeatable). The first call replaces the default
    /// `magic_link` factor.
    pub fn factor(mut self, factor: DevFactor) -> Self {
        self.factors.get_or_insert_with(Vec::new).push(factor);
        self
    }

    /// An empty `authentication_factors` list.
    pub fn without_factors(mut self) -> Self {
        self.factors = Some(Vec::new());
        self
    }

    /// Adds a role to the default roles (`stytch_user`, or `stytch_member` for B2B).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.extra_roles.push(role.into());
        self
    }

    /// Replaces the role list entirely (no default role).
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// A top-level custom claim. Applied last, so it can also override any registered
    /// claim (`aud`, `exp`, …) to craft malformed tokens.
    pub fn custom_claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.custom.insert(name.into(), value);
        self
    }

    /// Makes it a B2B member session: adds `https://stytch.com/organization`, and uses a
    /// member id, a member session id and the `stytch_member` role by default.
    pub fn b2b(mut self, organization_id: impl Into<String>, slug: impl Into<String>) -> Self {
        self.b2b = Some((organization_id.into(), slug.into()));
        self
    }

    /// Omits the session's `expires_at`, like tokens from older Stytch versions.
    pub fn without_expires_at(mut self) -> Self {
        self.without_expires_at = true;
        self
    }

    option_setters! {
        /// `sub`: the user id (member id for B2B).
        subject => subject: String,
        /// The session id (`https://stytch.com/session` → `id`).
        session_id => session_id: String,
        /// `iat` (default now). Also the default `nbf` and session `started_at`.
        issued_at => issued_at: SystemTime,
        /// `exp` = `iat` + `lifetime`. Use an old `issued_at` to make an expired token.
        lifetime => lifetime: Duration,
        /// `nbf` (default `iat`).
        not_before => not_before: SystemTime,
        /// `iss` (default `stytch.com/{project_id}`).
        issuer => issuer_claim: String,
        /// `aud` = `[audience]` (default `[project_id]`).
        audience => audience: String,
        /// Session `started_at` (default `iat`).
        session_started_at => started_at: SystemTime,
        /// Session `expires_at` (default `started_at` + the configured session lifetime).
        session_expires_at => expires_at: SystemTime,
    }

    header_setters!("JWT");

    /// Signs and returns the compact JWT.
    ///
    /// # Panics
    ///
    /// If [`signed_by`](Self::signed_by) names a key the issuer never made, or if the
    /// crypto library fails to generate or use a key.
    pub fn mint(self) -> String {
        let shared = self.issuer.shared();
        let now = SystemTime::now();
        let iat = self.issued_at.unwrap_or(now);
        let nbf = self.not_before.unwrap_or(iat);
        let exp = time_add(iat, self.lifetime.unwrap_or(shared.jwt_lifetime));
        let started_at = self.started_at.unwrap_or(iat);
        let expires_at = if self.without_expires_at {
            None
        } else {
            Some(self.expires_at.unwrap_or_else(|| time_add(started_at, shared.session_lifetime)))
        };
        let b2b = self.b2b.is_some();
        let subject =
            self.subject.unwrap_or_else(|| String::from(if b2b { DEFAULT_MEMBER_ID } else { DEFAULT_SUBJECT }));
        let session_id = self.session_id.unwrap_or_else(|| {
            if b2b {
                format!("member-session-test-{}", random_uuid())
            } else {
                format!("session-test-{}", random_uuid())
            }
        });
        let factors: Vec<StoredFactor> =
            self.factors.unwrap_or_else(|| vec![DevFactor::magic_link()]).into_iter().map(StoredFactor::new).collect();
        let mut roles =
            self.roles.unwrap_or_else(|| vec![String::from(if b2b { "stytch_member" } else { "stytch_user" })]);
        roles.extend(self.extra_roles);
        let attributes = self.attributes.unwrap_or_else(session_attributes);
        let claim = SessionClaim {
            session_id: &session_id,
            subject: &subject,
            started_at,
            last_accessed_at: iat,
            expires_at,
            factors: &factors,
            roles: &roles,
            attributes: &attributes,
        };
        let audience = json!([self.audience.unwrap_or_else(|| shared.project_id.clone())]);
        let issuer = self.issuer_claim.unwrap_or_else(|| shared.stytch_issuer.clone());
        let claims = stytch_claims(
            &issuer,
            audience,
            &claim,
            iat,
            nbf,
            exp,
            self.b2b.as_ref().map(|(o, s)| (o.as_str(), s.as_str())),
            &self.custom,
        );
        self.header.sign(self.issuer.shared(), "JWT", &claims)
    }
}

/// Mints an RFC 9068 JWT access token; see [`DevIssuer::access_token`].
///
/// Defaults: subject [`DEFAULT_SUBJECT`], `aud` [`DEFAULT_AUDIENCE`], `client_id` the
/// issuer's client id, `iss` the issuer's base URL, issued now, 5-minute lifetime (the
/// configured JWT lifetime), a random `jti`, header `typ` `at+jwt`; no `scope`, `acr`,
/// `amr`, `auth_time`, `sid`, `roles` or `nbf` unless set.
#[must_use = "call mint() to get the token"]
pub struct AccessTokenBuilder<'a> {
    issuer: &'a Shared,
    subject: Option<String>,
    audience: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    acr: Option<String>,
    amr: Option<Vec<String>>,
    auth_time: Option<SystemTime>,
    sid: Option<String>,
    roles: Option<Vec<String>>,
    custom: Map<String, Value>,
    issued_at: Option<SystemTime>,
    lifetime: Option<Duration>,
    not_before: Option<SystemTime>,
    issuer_claim: Option<String>,
    jti: Option<String>,
    header: HeaderChoice,
    shape: DevShape,
    permissions: Option<Vec<String>>,
    client_roles: Vec<(String, Vec<String>)>,
    roles_claim: Option<String>,
}

impl fmt::Debug for AccessTokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenBuilder")
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<'a> AccessTokenBuilder<'a> {
    pub(crate) fn new(issuer: &'a Shared) -> Self {
        AccessTokenBuilder {
            issuer,
            subject: None,
            audience: None,
            client_id: None,
            scope: None,
            acr: None,
            amr: None,
            auth_time: None,
            sid: None,
            roles: None,
            custom: Map::new(),
            issued_at: None,
            lifetime: None,
            not_before: None,
            issuer_claim: None,
            jti: None,
            header: HeaderChoice::default(),
            shape: DevShape::default(),
            permissions: None,
            client_roles: Vec::new(),
            roles_claim: None,
        }
    }

    /// Shapes the token like `shape`'s provider (see [`DevShape`]): its issuer,
    /// header `typ`, and where the client, roles, scopes, `acr`, `amr` and
    /// `auth_time` go (or that they are left out, as the provider leaves them out).
    /// An explicit [`issuer`](Self::issuer) or [`typ`](Self::typ) still wins.
    pub fn shape(mut self, shape: DevShape) -> Self {
        self.shape = shape;
        self
    }

    /// Auth0's `permissions` (RBAC "Add Permissions in the Access Token"); only the
    /// `auth0` shape writes them.
    pub fn permissions<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.permissions = Some(permissions.into_iter().map(Into::into).collect());
        self
    }

    /// Keycloak client roles: `resource_access.{client}.roles`; only the `keycloak`
    /// shape writes them.
    pub fn client_roles<I, S>(mut self, client: impl Into<String>, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_roles.push((client.into(), roles.into_iter().map(Into::into).collect()));
        self
    }

    /// The claim the `auth0` shape puts roles into (default [`DEV_AUTH0_ROLES_CLAIM`](crate::DEV_AUTH0_ROLES_CLAIM)).
    pub fn roles_claim(mut self, claim: impl Into<String>) -> Self {
        self.roles_claim = Some(claim.into());
        self
    }

    /// `amr`, e.g. `&["pwd", "otp"]`.
    pub fn amr(mut self, amr: &[&str]) -> Self {
        self.amr = Some(amr.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Adds one entry to the `roles` claim.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.get_or_insert_with(Vec::new).push(role.into());
        self
    }

    /// Sets the `roles` claim.
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// A top-level claim. Applied last, so it can override any other claim.
    pub fn custom_claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.custom.insert(name.into(), value);
        self
    }

    option_setters! {
        /// `sub`.
        subject => subject: String,
        /// `aud` as a single string (default `api://default`). Use
        /// [`custom_claim`](Self::custom_claim) for an array.
        audience => audience: String,
        /// `client_id` (default the issuer's [`client_id`](DevIssuer::client_id)).
        client_id => client_id: String,
        /// `scope`, space separated, e.g. `"read write"`.
        scope => scope: String,
        /// `acr`.
        acr => acr: String,
        /// `auth_time`.
        auth_time => auth_time: SystemTime,
        /// `sid` (session id).
        sid => sid: String,
        /// `iat` (default now).
        issued_at => issued_at: SystemTime,
        /// `exp` = `iat` + `lifetime` (default 5 minutes).
        lifetime => lifetime: Duration,
        /// `nbf` (omitted by default).
        not_before => not_before: SystemTime,
        /// `iss` (default the issuer's base URL).
        issuer => issuer_claim: String,
        /// `jti` (default random).
        jti => jti: String,
    }

    header_setters!("at+jwt");

    /// Signs and returns the compact JWT.
    ///
    /// # Panics
    ///
    /// If [`signed_by`](Self::signed_by) names a key the issuer never made, or if the
    /// crypto library fails to generate or use a key.
    pub fn mint(self) -> String {
        let shared = self.issuer;
        let iat = self.issued_at.unwrap_or_else(SystemTime::now);
        let exp = time_add(iat, self.lifetime.unwrap_or(shared.jwt_lifetime));
        let mut obj = Map::new();
        let iss = self.issuer_claim.unwrap_or_else(|| self.shape.issuer(&shared.base_url));
        obj.insert("iss".into(), Value::String(iss));
        obj.insert("sub".into(), Value::String(self.subject.unwrap_or_else(|| String::from(DEFAULT_SUBJECT))));
        obj.insert("iat".into(), json!(unix_secs(iat)));
        if let Some(nbf) = self.not_before {
            obj.insert("nbf".into(), json!(unix_secs(nbf)));
        }
        obj.insert("exp".into(), json!(unix_secs(exp)));
        let claims = ShapedClaims {
            client_id: self.client_id.unwrap_or_else(|| shared.client_id.clone()),
            jti: self.jti.unwrap_or_else(random_uuid),
            audience: self.audience.unwrap_or_else(|| String::from(DEFAULT_AUDIENCE)),
            scope: self.scope,
            permissions: self.permissions,
            acr: self.acr,
            amr: self.amr,
            auth_time: self.auth_time.map(unix_secs),
            sid: self.sid,
            roles: self.roles,
            client_roles: self.client_roles,
            roles_claim: self.roles_claim,
        };
        claims.write(self.shape, &mut obj);
        for (k, v) in self.custom {
            obj.insert(k, v);
        }
        let mut header = self.header;
        if matches!(header.typ, Typ::Default) {
            header.typ = self.shape.typ().map_or(Typ::Omit, |typ| Typ::Set(typ.to_owned()));
        }
        header.sign(self.issuer, "at+jwt", &Value::Object(obj))
    }
}
