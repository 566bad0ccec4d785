//! A real HTTP test issuer for Stytch sessions and OAuth 2.0 / OpenID Connect tokens,
//! the companion of [tower-stepup](https://docs.rs/tower-stepup). It uses nothing of
//! that crate: it imitates the issuers, so that tests of the library (and of your app)
//! talk HTTP to something shaped like production. The binary
//! `tower-stepup-dev-issuer` runs it standalone
//! (`cargo run -p tower-stepup-dev-issuer -- --listen 127.0.0.1:4000`).
//!
//! [`DevIssuer::start`] binds an axum server on `127.0.0.1` with a random port and serves:
//!
//! | Endpoint | What |
//! | --- | --- |
//! | `GET /.well-known/jwks.json` | all served public keys |
//! | `GET /v1/sessions/jwks/{project_id}`, `GET /v1/b2b/sessions/jwks/{project_id}` | the same keys, Stytch paths, with Stytch's `request_id` and `status_code` (RS256 keys only in [Stytch mode](DevIssuerConfig::with_stytch_mode)) |
//! | `GET /.well-known/openid-configuration` | OIDC discovery |
//! | `POST /v1/sessions/authenticate`, `POST /v1/b2b/sessions/authenticate` | Stytch session authentication (HTTP Basic `project_id:secret`) |
//! | `POST /v1/sessions/revoke`, `POST /v1/b2b/sessions/revoke` | Stytch session revocation |
//! | `GET /v1/sessions?user_id=`, `GET /v1/b2b/sessions?organization_id=&member_id=` | a user's (member's) live sessions |
//! | `POST /v1/totps/authenticate` | Stytch TOTP step-up of a session (the code is [`DEV_TOTP_CODE`]) |
//! | `GET /v1/rbac/policy`, `GET /v1/b2b/rbac/policy` | the project's RBAC policy ([`DevIssuerConfig::with_rbac_policy`]) |
//! | `POST /oauth2/introspect` | RFC 7662 introspection (`client_secret_basic`) |
//! | `POST /oauth2/revoke` | RFC 7009 revocation of opaque access tokens (`client_secret_basic`) |
//! | `POST /dev/login`, `POST /dev/step-up` | conveniences for demos (`curl`); `/dev/login` mints provider-shaped tokens, see below |
//! | `GET /realms/dev/…`, `/auth0/…`, `/{tenant}/v2.0/…` ([`DEV_ENTRA_TENANT`]), `/oauth2/default/…` + `/.well-known/openid-configuration` | discovery of the [provider-shaped issuers](DevShape) (same keys) |
//!
//! # `POST /dev/login`
//!
//! Logs a user in and answers with a credential shaped like the provider named by
//! `shape`. Every field is optional; for provider shapes, unknown fields are refused
//! with `400`.
//!
//! | field | type | shapes | meaning | default |
//! |---|---|---|---|---|
//! | `shape` | string | | `stytch`, `rfc9068`, `keycloak`, `auth0`, `entra`, `okta` ([`DevShape`]) | `stytch` |
//! | `user_id` | string | all | the subject (`sub`) | [`DEFAULT_SUBJECT`] |
//! | `factors` | array of strings | all | `password`, `totp`, `webauthn`, `sms_otp`, `email_otp`, `magic_link`, `oauth_google`; Stytch sessions list them, provider shapes turn them into `amr` (`pwd`, `otp`, `hwk`, `sms`, `otp`, `otp`, `fed`), as each provider sends it | `["password"]` |
//! | `organization_id`, `organization_slug` | string | `stytch` | a B2B member session | consumer session |
//! | `attributes` | object | `stytch` | `{ip_address, user_agent}` the session began with | the request's |
//! | `roles` | array of strings | provider shapes | the user's roles, where the provider puts them (`realm_access.roles`, [`DEV_AUTH0_ROLES_CLAIM`], `roles`, `groups`) | none |
//! | `client_roles` | object: client id → array of strings | `keycloak` | `resource_access.{client}.roles` | none |
//! | `roles_claim` | string | `auth0` | the namespaced claim roles go into | [`DEV_AUTH0_ROLES_CLAIM`] |
//! | `scope` | string | provider shapes | granted scopes, space separated (`scp` for Entra and Okta) | none (`profile email` for Keycloak) |
//! | `permissions` | array of strings | `auth0` | RBAC `permissions` | none |
//! | `acr` | string | `rfc9068`, `keycloak` | `acr` | Keycloak `1` |
//! | `audience` | string | provider shapes | `aud` | [`DEFAULT_AUDIENCE`] |
//! | `client_id` | string | provider shapes | the client (`client_id`, `azp`, `cid`) | [`DEFAULT_CLIENT_ID`] |
//! | `custom_claims` | object | provider shapes | top-level claims, written last (they may override any other) | none |
//!
//! The `stytch` shape answers `{session_token, session_jwt, session_id, user_id, …}`;
//! provider shapes answer `{access_token, token_type: "Bearer", expires_in, shape,
//! issuer}`, the token issued now with `auth_time` now.
//!
//! ```text
//! curl -s localhost:4000/dev/login -d '{
//!   "shape": "keycloak", "user_id": "alice", "factors": ["password", "totp"],
//!   "roles": ["admin"], "client_roles": {"orders-api": ["writer"]},
//!   "audience": "orders-api", "custom_claims": {"tenant": "acme"}
//! }'
//! ```
//!
//! It also mints tokens directly ([`DevIssuer::stytch_session`],
//! [`DevIssuer::access_token`], [`DevIssuer::sign_raw`]), rotates and removes keys, and
//! injects failures ([`Failure`]) so that caches, timeouts and fallbacks can be tested
//! against real HTTP.
//!
//! The Stytch session endpoints check what Stytch checks: HTTP Basic credentials
//! (`401 unauthorized_credentials`), only the body fields each endpoint takes, exactly
//! one credential (`400 bad_request`; B2B revoke takes `member_session_id`,
//! `member_id`, `session_token` or `session_jwt`, never `session_id`), and
//! `session_duration_minutes` within 5..=527040 (`400
//! invalid_session_duration_minutes`), never both `session_token` and `session_jwt`
//! (`400 too_many_session_arguments`). `session_custom_claims` merge as Stytch's guide
//! says: nested objects merge, a `null` deletes at any depth, reserved claims are
//! refused, and the claims stay within four kilobytes (`400 custom_claims_too_large`).
//! Errors carry Stytch's body,
//! `{status_code, request_id, error_type, error_message, error_url}`;
//! [`Failure::StytchError`] injects any of them.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tower_stepup_dev_issuer::{DevFactor, DevIssuer};
//!
//! let issuer = DevIssuer::start().await?;
//! let session = issuer.create_session("user-test-1", vec![DevFactor::password()]);
//! let stepped_up = issuer.add_factor(&session.session_token, DevFactor::totp());
//! let jwt = issuer.stytch_session().factor(DevFactor::webauthn()).mint();
//! # let _ = (stepped_up, jwt);
//! # Ok(())
//! # }
//! ```
//!
//! # ⚠️ Warning
//!
//! This is a test tool. Its secrets are generated per process, it keeps everything in
//! memory, and it authenticates nobody: never expose it beyond the loopback interface.

mod claims;
mod keys;
mod rbac;
mod server;
mod session;
mod shape;
mod token;
mod util;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::watch;

pub use self::server::DEV_TOTP_CODE;
pub use self::session::{DevSession, OpaqueTokenSpec};
pub use self::shape::{DevShape, DEV_AUTH0_ROLES_CLAIM, DEV_ENTRA_TENANT, DEV_KEYCLOAK_REALM, DEV_OKTA_SERVER};
pub use self::token::{AccessTokenBuilder, DevFactor, StytchJwtBuilder};

use self::keys::{CryptoError, DevKey, KeyStore};
use self::session::{OpaqueRecord, Organization, SessionRecord, SessionStore};
use self::token::{stytch_claims, StoredFactor};
use self::util::{b64url, b64url_decode, random_token, time_add};

/// Every route the issuer serves, as `(method, path)`; `{project_id}` stands for the
/// project id. Printed by the standalone binary; a test checks each one answers.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/v1/sessions/jwks/{project_id}"),
    ("GET", "/v1/b2b/sessions/jwks/{project_id}"),
    ("GET", "/.well-known/openid-configuration"),
    ("POST", "/v1/sessions/authenticate"),
    ("POST", "/v1/b2b/sessions/authenticate"),
    ("POST", "/v1/sessions/revoke"),
    ("POST", "/v1/b2b/sessions/revoke"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/b2b/sessions"),
    ("POST", "/v1/totps/authenticate"),
    ("GET", "/v1/rbac/policy"),
    ("GET", "/v1/b2b/rbac/policy"),
    ("POST", "/oauth2/introspect"),
    ("POST", "/oauth2/revoke"),
    ("POST", "/dev/login"),
    ("POST", "/dev/step-up"),
    ("GET", "/realms/dev/.well-known/openid-configuration"),
    ("GET", "/auth0/.well-known/openid-configuration"),
    ("GET", "/11111111-2222-4333-8444-555555555555/v2.0/.well-known/openid-configuration"),
    ("GET", "/oauth2/default/.well-known/openid-configuration"),
];

/// Default Stytch project id of a dev issuer.
pub const DEFAULT_PROJECT_ID: &str = "project-test-11111111-2222-3333-4444-555555555555";
/// Default subject (user id) of minted tokens.
pub const DEFAULT_SUBJECT: &str = "user-test-00000000-0000-4000-8000-000000000001";
/// Default subject (member id) of minted B2B session tokens.
pub const DEFAULT_MEMBER_ID: &str = "member-test-00000000-0000-4000-8000-000000000001";
/// Default `aud` of minted access tokens.
pub const DEFAULT_AUDIENCE: &str = "api://default";
/// Default OAuth client id for introspection and access tokens.
pub const DEFAULT_CLIENT_ID: &str = "client-test-00000000-0000-4000-8000-000000000001";

/// A JWS algorithm the dev issuer can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DevAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit key). Stytch's algorithm.
    RS256,
    /// RSASSA-PSS with SHA-256 (its own 2048-bit RSA key; the JWK says `PS256`).
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl DevAlg {
    /// Every algorithm.
    pub const ALL: [DevAlg; 5] = [DevAlg::RS256, DevAlg::PS256, DevAlg::ES256, DevAlg::ES384, DevAlg::EdDSA];

    /// The JOSE name (`"RS256"`, …), as written in the header `alg` and the JWK `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            DevAlg::RS256 => "RS256",
            DevAlg::PS256 => "PS256",
            DevAlg::ES256 => "ES256",
            DevAlg::ES384 => "ES384",
            DevAlg::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for DevAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure the issuer injects into its remote endpoints (JWKS, discovery, session
/// authenticate/revoke, introspection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Failure {
    /// Normal responses.
    #[default]
    None,
    /// `500` with a Stytch-style error body.
    Status500,
    /// Sleep this long, then answer normally (for client timeouts).
    Slow(Duration),
    /// `200` with a `text/plain` body that is not JSON.
    Garbage,
    /// `503 Service Unavailable`.
    Unavailable,
    /// A Stytch error answer: `status` with the body Stytch sends,
    /// `{status_code, request_id, error_type, error_message, error_url}`, e.g.
    /// `Failure::StytchError { status: 403, error_type: "use_https" }`. A `status`
    /// outside 400..=599 is answered as `500`.
    ///
    /// ```
    /// use tower_stepup_dev_issuer::Failure;
    ///
    /// let not_found = Failure::StytchError { status: 404, error_type: "session_not_found" };
    /// assert_ne!(not_found, Failure::None);
    /// ```
    StytchError {
        /// The HTTP status (and `status_code`).
        status: u16,
        /// The `error_type`, e.g. `session_not_found`, `too_many_requests`.
        error_type: &'static str,
    },
}

/// An endpoint whose requests the issuer counts (and into which it injects failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The three JWKS paths together.
    Jwks,
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// `/v1/sessions/authenticate` and `/v1/b2b/sessions/authenticate`.
    SessionsAuthenticate,
    /// `/v1/sessions/revoke`, `/v1/b2b/sessions/revoke` and `/oauth2/revoke` (RFC 7009).
    SessionsRevoke,
    /// `/oauth2/introspect`.
    Introspect,
    /// `GET /v1/sessions` and `GET /v1/b2b/sessions`.
    SessionsGet,
    /// `POST /v1/totps/authenticate`.
    TotpsAuthenticate,
    /// `/v1/rbac/policy` and `/v1/b2b/rbac/policy`.
    RbacPolicy,
    /// `POST /v1/otps/email/login_or_create`.
    OtpsEmailLoginOrCreate,
    /// `POST /v1/otps/authenticate`.
    OtpsAuthenticate,
}

impl Endpoint {
    const COUNT: usize = 10;

    fn index(self) -> usize {
        match self {
            Endpoint::Jwks => 0,
            Endpoint::Discovery => 1,
            Endpoint::SessionsAuthenticate => 2,
            Endpoint::SessionsRevoke => 3,
            Endpoint::Introspect => 4,
            Endpoint::SessionsGet => 5,
            Endpoint::TotpsAuthenticate => 6,
            Endpoint::RbacPolicy => 7,
            Endpoint::OtpsEmailLoginOrCreate => 8,
            Endpoint::OtpsAuthenticate => 9,
        }
    }
}

/// Configuration of a [`DevIssuer`]; `Default` plus `with_*` builders.
#[derive(Clone)]
pub struct DevIssuerConfig {
    addr: SocketAddr,
    project_id: String,
    secret: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    algs: Vec<DevAlg>,
    jwt_lifetime: Duration,
    session_lifetime: Duration,
    rbac_policy: Option<Value>,
    stytch_mode: bool,
}

impl Default for DevIssuerConfig {
    fn default() -> Self {
        DevIssuerConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            project_id: String::from(DEFAULT_PROJECT_ID),
            secret: None,
            client_id: String::from(DEFAULT_CLIENT_ID),
            client_secret: None,
            algs: vec![DevAlg::RS256, DevAlg::ES256, DevAlg::EdDSA],
            jwt_lifetime: Duration::from_secs(5 * 60),
            session_lifetime: Duration::from_secs(60 * 60),
            rbac_policy: None,
            stytch_mode: false,
        }
    }
}

impl fmt::Debug for DevIssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuerConfig")
            .field("addr", &self.addr)
            .field("project_id", &self.project_id)
            .field("secret", &"[redacted]")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("algs", &self.algs)
            .field("jwt_lifetime", &self.jwt_lifetime)
            .field("session_lifetime", &self.session_lifetime)
            .field("rbac_policy", &self.rbac_policy.is_some())
            .field("stytch_mode", &self.stytch_mode)
            .finish()
    }
}

impl DevIssuerConfig {
    /// Same as `default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Address to bind (default `127.0.0.1:0`, a random free port). Keep it on loopback.
    #[must_use]
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Stytch project id (default [`DEFAULT_PROJECT_ID`]).
    #[must_use]
    pub fn with_project_id(mut self, project_id: impl Into<String>) -> Self {
        self.project_id = project_id.into();
        self
    }

    /// Stytch project secret (default: random per issuer).
    #[must_use]
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// OAuth client id accepted by introspection (default [`DEFAULT_CLIENT_ID`]).
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// OAuth client secret accepted by introspection (default: random per issuer).
    #[must_use]
    pub fn with_client_secret(mut self, client_secret: impl Into<String>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// Key types made at start, one signing key each (default RS256, ES256, EdDSA).
    /// The default signer is RS256 if listed, else the first one; an empty list means
    /// RS256 only. Other algorithms get a key on first use.
    #[must_use]
    pub fn with_algs(mut self, algs: &[DevAlg]) -> Self {
        self.algs = algs.to_vec();
        self
    }

    /// Signs like Stytch: RS256 only. The issuer starts with one RS256 key (whatever
    /// [`with_algs`](Self::with_algs) says), every session JWT is RS256, and the Stytch
    /// JWKS paths (`/v1/sessions/jwks/…`, `/v1/b2b/sessions/jwks/…`) serve the RS256
    /// keys only, so that a token signed with any other algorithm (e.g. by
    /// [`StytchJwtBuilder::alg`] in an attack test) fails there, as it would against
    /// Stytch. Default off: other tests use faster keys.
    ///
    /// ```
    /// use tower_stepup_dev_issuer::DevIssuerConfig;
    ///
    /// let config = DevIssuerConfig::new().with_stytch_mode();
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn with_stytch_mode(mut self) -> Self {
        self.stytch_mode = true;
        self
    }

    /// Lifetime of minted JWTs: `exp` − `iat` (default 5 minutes).
    #[must_use]
    pub fn with_jwt_lifetime(mut self, lifetime: Duration) -> Self {
        self.jwt_lifetime = lifetime;
        self
    }

    /// Lifetime of sessions: `expires_at` − `started_at` (default 60 minutes).
    #[must_use]
    pub fn with_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }
}

#[derive(Debug, Default)]
struct FailureState {
    all: Failure,
    per_endpoint: HashMap<Endpoint, Failure>,
}

/// State shared by the handle and the server task.
pub(crate) struct Shared {
    base_url: String,
    project_id: String,
    stytch_issuer: String,
    secret: String,
    client_id: String,
    client_secret: String,
    default_alg: DevAlg,
    jwt_lifetime: Duration,
    session_lifetime: Duration,
    stytch_mode: bool,
    keys: Mutex<KeyStore>,
    sessions: Mutex<SessionStore>,
    email_otps: Mutex<server::EmailOtps>,
    opaque: Mutex<HashMap<String, OpaqueRecord>>,
    failure: Mutex<FailureState>,
    cache_control: Mutex<Option<String>>,
    counters: [AtomicUsize; Endpoint::COUNT],
    rbac: rbac::RbacState,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex; a poisoned lock (a panic elsewhere) still yields the data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Signs `header.claims` with `key` (always with the key's own algorithm).
pub(crate) fn sign_compact(header: &Value, claims: &Value, key: &DevKey) -> Result<String, CryptoError> {
    let header = b64url(header.to_string().as_bytes());
    let claims = b64url(claims.to_string().as_bytes());
    let message = format!("{header}.{claims}");
    let signature = key.sign(message.as_bytes())?;
    Ok(format!("{message}.{}", b64url(&signature)))
}

impl Shared {
    /// The current signer for `alg`, making one if the issuer has none yet.
    fn signer(&self, alg: DevAlg) -> Result<Arc<DevKey>, CryptoError> {
        if let Some(key) = lock(&self.keys).signer(alg) {
            return Ok(key);
        }
        // Generate outside the lock (RSA takes a while), then re-check.
        let key = DevKey::generate(alg)?;
        let mut keys = lock(&self.keys);
        if let Some(existing) = keys.signer(alg) {
            return Ok(existing);
        }
        Ok(keys.insert(key, true))
    }

    fn key_any(&self, kid: &str) -> Option<Arc<DevKey>> {
        lock(&self.keys).any(kid)
    }

    /// Verifies a compact JWS against the served keys (header `alg` must be the key's);
    /// returns the claims. Does not look at any time claim.
    pub(crate) fn verify_compact(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (header_b64, claims_b64, signature_b64) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&b64url_decode(header_b64)?).ok()?;
        let kid = header.get("kid")?.as_str()?;
        let alg = header.get("alg")?.as_str()?;
        let key = lock(&self.keys).served(kid)?;
        if key.alg.as_str() != alg {
            return None;
        }
        let signature = b64url_decode(signature_b64)?;
        let message_len = header_b64.len() + 1 + claims_b64.len();
        let message = token.get(..message_len)?;
        if !key.verify(message.as_bytes(), &signature) {
            return None;
        }
        let claims: Value = serde_json::from_slice(&b64url_decode(claims_b64)?).ok()?;
        claims.is_object().then_some(claims)
    }

    /// Verifies a Stytch session JWT: as [`verify_compact`](Self::verify_compact), and in
    /// Stytch mode only when signed with RS256 (the only algorithm Stytch uses).
    pub(crate) fn verify_stytch_jwt(&self, token: &str) -> Option<Value> {
        if self.stytch_mode {
            let header = b64url_decode(token.split('.').next()?)?;
            let header: Value = serde_json::from_slice(&header).ok()?;
            if header.get("alg")?.as_str()? != DevAlg::RS256.as_str() {
                return None;
            }
        }
        self.verify_compact(token)
    }

    fn count(&self, endpoint: Endpoint) {
        self.counters[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn failure_for(&self, endpoint: Endpoint) -> Failure {
        let state = lock(&self.failure);
        state.per_endpoint.get(&endpoint).copied().unwrap_or(state.all)
    }

    fn jwks(&self) -> Value {
        lock(&self.keys).jwks()
    }

    /// The key set of the Stytch JWKS paths: RS256 keys only in Stytch mode.
    fn stytch_jwks(&self) -> Value {
        let keys = lock(&self.keys);
        if self.stytch_mode {
            keys.jwks_of(|alg| alg == DevAlg::RS256)
        } else {
            keys.jwks()
        }
    }

    fn cache_control(&self) -> Option<String> {
        lock(&self.cache_control).clone()
    }

    /// Mints the session JWT of a stored session.
    fn session_jwt(&self, record: &SessionRecord) -> Result<String, CryptoError> {
        let key = self.signer(self.default_alg)?;
        let now = SystemTime::now();
        let claim = server::session_claim(record);
        let claims = stytch_claims(
            &self.stytch_issuer,
            Value::Array(vec![Value::String(self.project_id.clone())]),
            &claim,
            now,
            now,
            time_add(now, self.jwt_lifetime),
            record.organization.as_ref().map(|o| (o.id.as_str(), o.slug.as_str())),
            &record.custom_claims,
        );
        let header = serde_json::json!({ "alg": key.alg.as_str(), "kid": key.kid, "typ": "JWT" });
        sign_compact(&header, &claims, &key)
    }

    fn dev_session(&self, record: &SessionRecord) -> Result<DevSession, CryptoError> {
        Ok(DevSession {
            session_id: record.session_id.clone(),
            session_token: record.token.clone(),
            session_jwt: self.session_jwt(record)?,
            user_id: record.user_id.clone(),
        })
    }

    fn create_session(
        &self,
        user_id: &str,
        factors: Vec<DevFactor>,
        organization: Option<Organization>,
    ) -> Result<DevSession, CryptoError> {
        self.create_session_with(user_id, factors, organization, token::session_attributes())
    }

    /// [`create_session`](Self::create_session) recording these `attributes`.
    fn create_session_with(
        &self,
        user_id: &str,
        factors: Vec<DevFactor>,
        organization: Option<Organization>,
        attributes: Value,
    ) -> Result<DevSession, CryptoError> {
        let factors = factors.into_iter().map(StoredFactor::new).collect();
        let mut record = SessionRecord::new(user_id, factors, self.session_lifetime, organization);
        record.attributes = attributes;
        let session = self.dev_session(&record)?;
        lock(&self.sessions).insert(record);
        Ok(session)
    }

    /// Appends (or replaces) a factor on the live session of `token`.
    fn add_factor(&self, token: &str, factor: DevFactor) -> Option<Result<DevSession, CryptoError>> {
        let now = SystemTime::now();
        let record = {
            let mut sessions = lock(&self.sessions);
            let id = sessions.id_for_token(token)?;
            let record = sessions.get_mut(&id)?;
            if !record.is_live(now) {
                return None;
            }
            match record.factors.iter_mut().find(|f| f.factor.same_kind(&factor)) {
                Some(existing) => existing.factor = factor,
                None => record.factors.push(StoredFactor::new(factor)),
            }
            record.last_accessed_at = now;
            record.clone()
        };
        Some(self.dev_session(&record))
    }
}

/// Owner of the server task: dropping the last handle stops the server.
struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

/// A running dev issuer. Cheap to clone; the server stops when the last clone is dropped
/// or on [`shutdown`](Self::shutdown).
///
/// Must be started inside a tokio runtime; the server task lives on that runtime (so an
/// issuer shared between `#[tokio::test]`s stops with the test that started it). Every
/// method but `start`/`start_with` is synchronous and may be called from any thread.
#[derive(Clone)]
pub struct DevIssuer {
    inner: Arc<Inner>,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("base_url", &self.inner.shared.base_url)
            .field("project_id", &self.inner.shared.project_id)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Starts an issuer with the default configuration on `127.0.0.1` and a random port.
    pub async fn start() -> std::io::Result<DevIssuer> {
        Self::start_with(DevIssuerConfig::default()).await
    }

    /// Starts an issuer with `config`.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound, or a key cannot be generated.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub async fn start_with(config: DevIssuerConfig) -> std::io::Result<DevIssuer> {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");

        let mut algs = if config.stytch_mode { vec![DevAlg::RS256] } else { config.algs.clone() };
        if algs.is_empty() {
            algs.push(DevAlg::RS256);
        }
        let default_alg = if algs.contains(&DevAlg::RS256) {
            DevAlg::RS256
        } else {
            // Not empty: RS256 was pushed above when it was.
            algs[0]
        };
        let mut keys = KeyStore::default();
        for alg in &algs {
            if keys.signer(*alg).is_none() {
                let key = DevKey::generate(*alg).map_err(std::io::Error::other)?;
                keys.insert(key, true);
            }
        }

        let shared = Arc::new(Shared {
            stytch_issuer: format!("stytch.com/{}", config.project_id),
            base_url,
            project_id: config.project_id,
            secret: config.secret.unwrap_or_else(|| format!("secret-test-{}", random_token::<24>())),
            client_id: config.client_id,
            client_secret: config
                .client_secret
                .unwrap_or_else(|| format!("client-secret-test-{}", random_token::<24>())),
            default_alg,
            jwt_lifetime: config.jwt_lifetime,
            session_lifetime: config.session_lifetime,
            stytch_mode: config.stytch_mode,
            keys: Mutex::new(keys),
            sessions: Mutex::new(SessionStore::default()),
            email_otps: Mutex::new(server::EmailOtps::default()),
            opaque: Mutex::new(HashMap::new()),
            failure: Mutex::new(FailureState::default()),
            cache_control: Mutex::new(None),
            counters: Default::default(),
            rbac: rbac::RbacState::new(config.rbac_policy),
        });

        let (shutdown, mut stop) = watch::channel(false);
        let app = server::router(Arc::clone(&shared));
        tokio::spawn(async move {
            let signal = async move {
                // Resolves on shutdown() or when the last handle (the sender) is dropped.
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            // With the peer address: `/dev/login` records it, as Stytch does.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
                tracing::warn!(%error, "dev issuer server stopped with an error");
            }
        });
        tracing::debug!(%addr, "dev issuer listening");
        Ok(DevIssuer { inner: Arc::new(Inner { shared, shutdown }) })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Stops the server now (for every clone). In-flight requests finish first.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash. Also the OIDC issuer.
    pub fn base_url(&self) -> String {
        self.shared().base_url.clone()
    }

    /// OIDC issuer (`iss` of access tokens): the base URL.
    pub fn issuer(&self) -> String {
        self.base_url()
    }

    /// Stytch project id.
    pub fn project_id(&self) -> &str {
        &self.shared().project_id
    }

    /// Stytch project secret, for HTTP Basic `project_id:secret`.
    pub fn secret(&self) -> &str {
        &self.shared().secret
    }

    /// Stytch issuer: `stytch.com/{project_id}`.
    pub fn stytch_issuer(&self) -> String {
        self.shared().stytch_issuer.clone()
    }

    /// `{base}/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.shared().base_url)
    }

    /// `{base}/v1/sessions/jwks/{project_id}` (the B2B path
    /// `/v1/b2b/sessions/jwks/{project_id}` serves the same keys).
    pub fn stytch_jwks_url(&self) -> String {
        format!("{}/v1/sessions/jwks/{}", self.shared().base_url, self.shared().project_id)
    }

    /// `{base}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared().base_url)
    }

    /// The issuer of `shape`'s tokens (see [`DevShape`]); keys are discovered at
    /// `{issuer}/.well-known/openid-configuration`.
    pub fn shape_issuer(&self, shape: DevShape) -> String {
        shape.issuer(&self.shared().base_url)
    }

    /// Mints an access token shaped like `shape`'s provider: shorthand for
    /// `access_token().shape(shape)`.
    pub fn shaped_token(&self, shape: DevShape) -> AccessTokenBuilder<'_> {
        self.access_token().shape(shape)
    }

    /// `{base}/oauth2/introspect`.
    pub fn introspection_url(&self) -> String {
        format!("{}/oauth2/introspect", self.shared().base_url)
    }

    /// `{base}/oauth2/revoke` (RFC 7009).
    pub fn revocation_url(&self) -> String {
        format!("{}/oauth2/revoke", self.shared().base_url)
    }

    /// OAuth client id accepted by introspection (`client_secret_basic`).
    pub fn client_id(&self) -> &str {
        &self.shared().client_id
    }

    /// OAuth client secret accepted by introspection.
    pub fn client_secret(&self) -> &str {
        &self.shared().client_secret
    }

    /// The kid of the current signer for `alg` (made on first use if needed).
    ///
    /// # Panics
    ///
    /// If the crypto library fails to generate a key.
    pub fn current_kid(&self, alg: DevAlg) -> String {
        self.shared().signer(alg).unwrap_or_else(|e| panic!("{e}")).kid.clone()
    }

    /// Makes a new key the signer for `alg`; the old one stays in the JWKS. Returns the
    /// new kid.
    ///
    /// # Panics
    ///
    /// If the crypto library fails to generate a key.
    pub fn rotate(&self, alg: DevAlg) -> String {
        let key = DevKey::generate(alg).unwrap_or_else(|e| panic!("{e}"));
        lock(&self.shared().keys).insert(key, true).kid.clone()
    }

    /// Stops serving `kid`; tokens signed with it no longer verify. Returns whether it
    /// was served. A removed signer stays the signer of its algorithm (so new tokens fail
    /// too) until [`rotate`](Self::rotate).
    pub fn remove_key(&self, kid: &str) -> bool {
        lock(&self.shared().keys).remove(kid)
    }

    /// Adds `n` served keys that never sign (e.g. for a large JWKS). RSA keys take tens of
    /// milliseconds each to generate; prefer ES256 or EdDSA for large sets.
    ///
    /// # Panics
    ///
    /// If the crypto library fails to generate a key.
    pub fn add_keys(&self, alg: DevAlg, n: usize) -> Vec<String> {
        let generated: Vec<DevKey> = (0..n).map(|_| DevKey::generate(alg).unwrap_or_else(|e| panic!("{e}"))).collect();
        let mut keys = lock(&self.shared().keys);
        generated.into_iter().map(|key| keys.insert(key, false).kid.clone()).collect()
    }

    /// The `Cache-Control` header of JWKS responses (`None`: no header, the default).
    pub fn set_jwks_cache_control(&self, value: Option<&str>) {
        *lock(&self.shared().cache_control) = value.map(str::to_owned);
    }

    /// Injects `failure` into every remote endpoint (JWKS, discovery, session
    /// authenticate/revoke, introspection) until set back to [`Failure::None`]. Clears
    /// any per-endpoint setting.
    pub fn set_failure(&self, failure: Failure) {
        let mut state = lock(&self.shared().failure);
        state.all = failure;
        state.per_endpoint.clear();
    }

    /// Injects `failure` into one endpoint only (overrides [`set_failure`](Self::set_failure)
    /// for that endpoint).
    pub fn set_endpoint_failure(&self, endpoint: Endpoint, failure: Failure) {
        lock(&self.shared().failure).per_endpoint.insert(endpoint, failure);
    }

    /// Requests received by `endpoint` since start or the last
    /// [`reset_counts`](Self::reset_counts), failed ones included.
    pub fn request_count(&self, endpoint: Endpoint) -> usize {
        self.shared().counters[endpoint.index()].load(Ordering::Relaxed)
    }

    /// Sets every request counter to zero.
    pub fn reset_counts(&self) {
        for counter in &self.shared().counters {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Mints a Stytch session JWT.
    pub fn stytch_session(&self) -> StytchJwtBuilder<'_> {
        StytchJwtBuilder::new(self)
    }

    /// Mints an RFC 9068 JWT access token (`typ` `at+jwt`).
    pub fn access_token(&self) -> AccessTokenBuilder<'_> {
        AccessTokenBuilder::new(self.shared())
    }

    /// Signs `claims` with the key `kid` using exactly `header` (for attack tests: `jku`,
    /// `jwk`, `crit`, odd `typ`, a lying `alg`, …). The signature always uses the key's own
    /// algorithm, whatever `header` says. Removed keys can still sign.
    ///
    /// # Panics
    ///
    /// If the issuer never made a key `kid`, or the crypto library fails.
    #[allow(clippy::needless_pass_by_value)] // by value: the documented public signature
    pub fn sign_raw(&self, header: Value, claims: &Value, kid: &str) -> String {
        let key = self.shared().key_any(kid).unwrap_or_else(|| panic!("dev issuer: sign_raw: no key with kid {kid:?}"));
        sign_compact(&header, claims, &key).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The public key `kid` as X.509 `SubjectPublicKeyInfo` DER (served or removed), e.g.
    /// to try the "HS256 keyed with the public key" attack.
    pub fn public_key_der(&self, kid: &str) -> Option<Vec<u8>> {
        self.shared().key_any(kid).map(|k| k.spki_der.clone())
    }

    /// Logs `user_id` in with `factors`: a new stored session, its opaque token and a
    /// session JWT.
    ///
    /// # Panics
    ///
    /// If the crypto library fails to sign.
    pub fn create_session(&self, user_id: &str, factors: Vec<DevFactor>) -> DevSession {
        self.shared().create_session(user_id, factors, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Logs a B2B member in (served by `/v1/b2b/sessions/authenticate` only).
    ///
    /// # Panics
    ///
    /// If the crypto library fails to sign.
    pub fn create_b2b_session(
        &self,
        member_id: &str,
        organization_id: &str,
        organization_slug: &str,
        factors: Vec<DevFactor>,
    ) -> DevSession {
        let organization = Organization { id: organization_id.to_owned(), slug: organization_slug.to_owned() };
        self.shared().create_session(member_id, factors, Some(organization)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Step-up: adds `factor` to the live session of `session_token` (replacing a factor
    /// of the same type and delivery method) and mints a new JWT. `None` if the session is
    /// unknown, revoked or expired.
    ///
    /// # Panics
    ///
    /// If the crypto library fails to sign.
    pub fn add_factor(&self, session_token: &str, factor: DevFactor) -> Option<DevSession> {
        self.shared().add_factor(session_token, factor).map(|r| r.unwrap_or_else(|e| panic!("{e}")))
    }

    /// The live email one-time passcode last "sent" to `email` by
    /// `POST /v1/otps/email/login_or_create` (the dev issuer mails nothing: a dev
    /// app shows this code on its page instead); `None` when none is pending.
    pub fn sent_email_otp(&self, email: &str) -> Option<String> {
        lock(&self.shared().email_otps).sent_to(email, SystemTime::now())
    }

    /// Revokes a session by id. Returns whether it existed.
    pub fn revoke_session(&self, session_id: &str) -> bool {
        lock(&self.shared().sessions).remove(session_id)
    }

    /// Makes a stored session expire now (its token and JWTs then get `session_not_found`).
    /// Returns whether it existed.
    pub fn expire_session(&self, session_id: &str) -> bool {
        let mut sessions = lock(&self.shared().sessions);
        match sessions.get_mut(session_id) {
            Some(record) => {
                record.expires_at = SystemTime::now();
                true
            }
            None => false,
        }
    }

    /// Issues an opaque access token that introspection reports per `spec`.
    pub fn issue_opaque_access_token(&self, spec: OpaqueTokenSpec) -> String {
        let token = format!("ot-test-{}", random_token::<32>());
        let issued_at = spec.issued_at.unwrap_or_else(SystemTime::now);
        let expires_at = time_add(issued_at, spec.lifetime);
        lock(&self.shared().opaque).insert(token.clone(), OpaqueRecord { spec, issued_at, expires_at });
        token
    }

    /// Revokes an opaque access token. Returns whether it existed.
    pub fn revoke_opaque_access_token(&self, token: &str) -> bool {
        lock(&self.shared().opaque).remove(token).is_some()
    }
}
