//! [`SessionLayer`]: configuration and construction.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::authority::state::{AuthoritySettings, AuthorityState};
use crate::authority::{Authority, IssuerBudget, StytchAuthority};
use crate::cache::{SessionCache, TokenHashes, DEFAULT_CACHE_BYTES};
use crate::cookies::CookieAttributes;
use crate::credential::{CredentialConfig, DEFAULT_JWT_COOKIE, DEFAULT_TOKEN_COOKIE};
use crate::error::ConfigError;
use crate::guard::{Dialect, GuardConfig};
use crate::issuers::{Defaults, IssuerConfig, IssuerTable};
use crate::jwks::{JwksConfig, KeySource};
use crate::metadata::ResourceMetadata;
use crate::profile::{ClaimProfile, OidcProfile, StytchProfile};
use crate::service::SessionService;
use crate::state::{LayerState, LocalRevocations};
use crate::stytch::StytchProject;
use crate::verify::{TimeRules, TypPolicy, Verifier};

/// Default clock leeway: 30 seconds, enough for ordinary clock skew between the
/// issuer and this server, small next to Stytch's 5-minute JWTs.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Default reuse window of the issuer's answer about an opaque token: 30 seconds.
pub const DEFAULT_OPAQUE_TOKEN_TTL: Duration = Duration::from_secs(30);

/// A tower [`Layer`] that authenticates every request and puts an
/// [`AuthState`](crate::AuthState) in its extensions.
///
/// It never rejects a request by itself: routes without a guard stay public. Add
/// guards per route to require a session (see the crate docs).
///
/// Cloning is cheap: clones share the key set, caches and configuration.
///
/// # Example
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use tower_stepup::{Session, SessionLayer, StytchProject};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?;
/// let sessions = SessionLayer::stytch(&project).build().await?;
///
/// let app: Router = Router::new()
///     .route("/me", get(|session: Session| async move { session.subject().to_owned() }))
///     .layer(sessions);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    pub(crate) state: Arc<LayerState>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.state.clone())
    }
}

impl SessionLayer {
    /// A generic layer verifying JWTs with keys from `source`. Set at least an
    /// issuer and an audience before [`build`](SessionLayerBuilder::build).
    ///
    /// Nothing dialect-specific is assumed: claims are read with [`OidcProfile::new`]
    /// unless [`with_profile`](SessionLayerBuilder::with_profile) says otherwise,
    /// credentials come only from `Authorization: Bearer` unless cookies are named
    /// ([`with_jwt_cookie`](SessionLayerBuilder::with_jwt_cookie),
    /// [`with_token_cookie`](SessionLayerBuilder::with_token_cookie)), and opaque
    /// tokens get no local shape check. The presets [`stytch`](Self::stytch) and
    /// [`oidc`](Self::oidc) set these for their dialect.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_stepup::{KeySource, SessionLayer, StytchProfile, DEFAULT_JWT_COOKIE};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // Stytch session JWTs from a proxy of the key set, bearer or cookie.
    /// let layer = SessionLayer::builder(KeySource::url("https://keys.example.com/jwks"))
    ///     .with_issuer("stytch.com/project-live-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")
    ///     .with_audience("project-live-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")
    ///     .with_profile(StytchProfile::new())
    ///     .with_jwt_cookie(Some(DEFAULT_JWT_COOKIE))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(source: KeySource) -> SessionLayerBuilder {
        Self::new_builder(Some(source))
    }

    /// The generic builder, with the builder's own key source or (`None`) none.
    fn new_builder(source: Option<KeySource>) -> SessionLayerBuilder {
        SessionLayerBuilder {
            source,
            issuer_configs: Vec::new(),
            resource_metadata: None,
            jwks: JwksConfig::default(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            typ: TypPolicy::Jwt,
            profile: None,
            leeway: DEFAULT_LEEWAY,
            max_token_age: None,
            // Generic: no cookie is read (or written) unless named.
            credentials: CredentialConfig { jwt_cookie: None, token_cookie: None, ..CredentialConfig::default() },
            eager: true,
            cache_bytes: DEFAULT_CACHE_BYTES,
            guards: GuardConfig::default(),
            dialect: Dialect::Generic,
            authority: None,
            invalid: None,
            opaque_ttl: DEFAULT_OPAQUE_TOKEN_TTL,
            opaque_shape: None,
            issuer_budget: IssuerBudget::new(),
            authority_audience_optional: false,
            cookies: CookieAttributes::default(),
            remote_issuers: Vec::new(),
        }
    }

    /// A layer whose issuers all come from
    /// [`with_issuer_config`](SessionLayerBuilder::with_issuer_config): one
    /// configuration per issuer (its keys, and its audiences, `typ` policy and
    /// claim profile where they differ from the layer's). The token's `iss` selects
    /// its configuration before any signature check; see [`IssuerConfig`] for the
    /// rules. Like [`builder`](Self::builder), nothing dialect-specific is assumed:
    /// `typ` [`TypPolicy::Jwt`], [`OidcProfile::new`], bearer tokens only.
    ///
    /// [`build`](SessionLayerBuilder::build) refuses a layer without any issuer
    /// configuration, and [`with_issuer`](SessionLayerBuilder::with_issuer) on this
    /// builder (its issuers would have no keys: name them in an `IssuerConfig`).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_stepup::{IssuerConfig, KeySource, SessionLayer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // Two Keycloak realms behind one API.
    /// let staff = "https://sso.example.com/realms/staff";
    /// let partners = "https://sso.example.com/realms/partners";
    /// let layer = SessionLayer::multi_issuer()
    ///     .with_audience("orders-api")
    ///     .with_issuer_config(IssuerConfig::new(staff, KeySource::discovery(staff)))
    ///     .with_issuer_config(IssuerConfig::new(partners, KeySource::discovery(partners)))
    ///     .build()
    ///     .await?;
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    pub fn multi_issuer() -> SessionLayerBuilder {
        Self::new_builder(None)
    }

    /// The RFC 9728 protected resource metadata this layer names in its
    /// challenges, as completed by [`build`](SessionLayerBuilder::build) (see
    /// [`with_resource_metadata`](SessionLayerBuilder::with_resource_metadata));
    /// serve it with [`ResourceMetadata::router`].
    pub fn resource_metadata(&self) -> Option<&ResourceMetadata> {
        self.state.resource_metadata.as_ref()
    }

    /// A layer for Stytch session JWTs of `project`: its JWKS, its issuers
    /// (`stytch.com/{project_id}` and the custom domain), audience = project id,
    /// `typ` `JWT`, [`StytchProfile`], and the `stytch_session_jwt` / `stytch_session`
    /// cookies ([`DEFAULT_JWT_COOKIE`], [`DEFAULT_TOKEN_COOKIE`]), the shape check of
    /// Stytch session tokens, and a [`StytchAuthority`] when the project carries its
    /// secret. A problem with the project (an unusable base URL) is reported by
    /// [`build`](SessionLayerBuilder::build).
    pub fn stytch(project: &StytchProject) -> SessionLayerBuilder {
        let mut builder = Self::builder(KeySource::url(project.jwks_url()))
            .with_audience(project.project_id())
            .with_typ(TypPolicy::Jwt)
            .with_profile(StytchProfile::new())
            .with_jwt_cookie(Some(DEFAULT_JWT_COOKIE))
            .with_token_cookie(Some(DEFAULT_TOKEN_COOKIE))
            .with_opaque_token_check(is_stytch_session_token)
            .with_dialect(if project.is_b2b() { Dialect::StytchB2b } else { Dialect::Stytch });
        for issuer in project.issuers() {
            builder = builder.with_issuer(issuer.clone());
        }
        if let Err(error) = project.check() {
            return builder.refuse(error);
        }
        if project.secret().is_some() {
            match StytchAuthority::new(project) {
                Ok(authority) => builder = builder.with_authority(authority),
                Err(error) => builder = builder.refuse(error),
            }
        }
        builder
    }

    /// A layer for RFC 9068 JWT access tokens of an OpenID provider: keys through
    /// discovery, `typ` `at+jwt`, [`OidcProfile::rfc9068`], bearer tokens only (no
    /// cookies).
    pub fn oidc(issuer: impl Into<String>, audience: impl Into<String>) -> SessionLayerBuilder {
        let issuer = issuer.into();
        Self::builder(KeySource::discovery(issuer.clone()))
            .with_issuer(issuer)
            .with_audience(audience)
            .with_typ(TypPolicy::AccessToken)
            .with_profile(OidcProfile::rfc9068())
            .with_dialect(Dialect::Oidc)
    }
}

/// Removes repeated values, keeping the first of each.
fn dedup(values: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    values.retain(|value| seen.insert(value.clone()));
}

/// Stytch session tokens: 44 characters of base64url.
fn is_stytch_session_token(token: &str) -> bool {
    token.len() == 44 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Builds a [`SessionLayer`]. Consuming `with_*` methods; secure defaults.
///
/// # Where configuration errors surface
///
/// One rule for the whole crate: a `with_*` method never fails. It stores what it
/// is given, and [`build`](Self::build) reports the first unusable setting as a
/// [`ConfigError`]: a missing issuer or audience, a leeway over 5 minutes, a
/// cookie `Domain` or `Path` that could not be one, a zero token length, an invalid [`IssuerBudget`], an unusable
/// [`StytchProject`] URL, and whatever the authority's
/// [`Authority::check`] reports (a zero timeout or an out-of-range Stytch session
/// duration). Only constructors that take a required value validate it at once
/// ([`StytchProject::consumer`], [`StytchAuthority::new`],
/// [`IntrospectionAuthority::new`](crate::IntrospectionAuthority::new),
/// [`KeySource::from_json`]), since there is nothing to build from without it.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_stepup::{ConfigError, SessionLayer, StytchAuthority, StytchProject};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
///     .with_secret("secret-test-…");
/// // Stytch refuses session durations under 5 minutes: `build()` says so at startup.
/// let authority = StytchAuthority::new(&project)?.with_session_duration(Duration::from_secs(60));
/// let error = SessionLayer::stytch(&project).with_authority(authority).build().await.unwrap_err();
/// assert!(matches!(error, ConfigError::Invalid { .. }));
/// # Ok(()) }
/// ```
#[must_use]
pub struct SessionLayerBuilder {
    /// The key source of the builder's own issuers (`with_issuer`); `None` for
    /// [`SessionLayer::multi_issuer`], whose issuers all come from configurations.
    source: Option<KeySource>,
    /// Further issuers, each with its own keys and rules.
    issuer_configs: Vec<IssuerConfig>,
    resource_metadata: Option<ResourceMetadata>,
    jwks: JwksConfig,
    issuers: Vec<String>,
    audiences: Vec<String>,
    typ: TypPolicy,
    profile: Option<Arc<dyn ClaimProfile>>,
    leeway: Duration,
    max_token_age: Option<Duration>,
    credentials: CredentialConfig,
    eager: bool,
    cache_bytes: u64,
    guards: GuardConfig,
    dialect: Dialect,
    authority: Option<Arc<dyn Authority>>,
    /// The first error found before `build` (the Stytch preset's project).
    invalid: Option<ConfigError>,
    opaque_ttl: Duration,
    opaque_shape: Option<fn(&str) -> bool>,
    issuer_budget: IssuerBudget,
    authority_audience_optional: bool,
    cookies: CookieAttributes,
    /// Issuers the authority vouches for (see `with_authority`).
    remote_issuers: Vec<String>,
}

impl std::fmt::Debug for SessionLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("source", &self.source)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("typ", &self.typ)
            .field("issuer_configs", &self.issuer_configs)
            .field("resource_metadata", &self.resource_metadata)
            .finish_non_exhaustive()
    }
}

impl SessionLayerBuilder {
    /// Accepts tokens from this issuer (`iss`, compared exactly), verified with the
    /// builder's [`KeySource`]. Call again to accept several sharing those keys;
    /// issuers with keys of their own are added with
    /// [`with_issuer_config`](Self::with_issuer_config).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }
    /// Accepts tokens from one more issuer (`iss`, compared exactly), next to those
    /// already set: by [`with_issuer`](Self::with_issuer), or by a preset
    /// ([`SessionLayer::stytch`] accepts `stytch.com/{project_id}` and the project's
    /// API domain, see [`StytchProject::issuers`]). Call it once per issuer.
    ///
    /// The same rule as `with_issuer`, named for presets, where adding an issuer
    /// is what one means: e.g. a custom domain's issuer while the project is still
    /// reached through the default base URL, or the other form of a migrated
    /// issuer. Every accepted issuer applies to the authority's answers too.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_stepup::{SessionLayer, StytchProject};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let project = StytchProject::consumer("project-live-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?;
    /// let layer = SessionLayer::stytch(&project)
    ///     .with_additional_issuer("https://login.example.com")
    ///     .with_additional_issuer("https://auth.example.org")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn with_additional_issuer(self, issuer: impl Into<String>) -> Self {
        self.with_issuer(issuer)
    }
    /// Accepts tokens of one more issuer, with its own keys and rules (repeatable).
    /// The token's `iss` selects the configuration that verifies it, before any
    /// signature check; an `iss` no configuration names is refused without any key
    /// set fetch. The builder's own issuers ([`with_issuer`](Self::with_issuer),
    /// verified with the builder's [`KeySource`], audiences, `typ` and profile)
    /// stay one configuration among them. See [`IssuerConfig`] for the rules, and
    /// [`SessionLayer::multi_issuer`] for a layer made of configurations only.
    ///
    /// The authority's answers ([`with_authority`](Self::with_authority)) are held
    /// to the rules of the issuer they name: its audiences, its tenant, its profile.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_stepup::{IssuerConfig, KeySource, SessionLayer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // An RFC 9068 issuer, and the partner realm next to it.
    /// let partners = "https://sso.example.com/realms/partners";
    /// let layer = SessionLayer::oidc("https://login.example.com", "orders-api")
    ///     .with_issuer_config(IssuerConfig::new(partners, KeySource::discovery(partners)))
    ///     .build()
    ///     .await?;
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    pub fn with_issuer_config(mut self, config: IssuerConfig) -> Self {
        self.issuer_configs.push(config);
        self
    }

    /// Names the RFC 9728 protected resource metadata in every `Bearer` challenge
    /// (`resource_metadata="…"`, RFC 9728 §5.1), so that clients (MCP clients
    /// among them) discover the authorization servers to get a token from.
    ///
    /// The layer does not serve the document itself (it may run behind a prefix
    /// the well-known path is not under): mount [`ResourceMetadata::router`] at
    /// the root of the app, from [`SessionLayer::resource_metadata`], which
    /// [`build`](Self::build) completes: without
    /// [`with_authorization_server`](ResourceMetadata::with_authorization_server),
    /// `authorization_servers` lists the layer's issuers that are `http(s)` URLs.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use axum::{routing::get, Router};
    /// use tower_stepup::{Guard, ResourceMetadata, SessionLayer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let metadata = ResourceMetadata::new("https://api.example.com/mcp")?.with_scopes_supported(["tools:read"]);
    /// let layer = SessionLayer::oidc("https://login.example.com", "https://api.example.com/mcp")
    ///     .with_resource_metadata(metadata)
    ///     .build()
    ///     .await?;
    /// // Served at https://api.example.com/.well-known/oauth-protected-resource/mcp
    /// let document = layer.resource_metadata().map(|m| m.router()).unwrap_or_default();
    /// let app: Router = Router::new()
    ///     .route("/mcp", get(|| async { "ok" }).route_layer(Guard::authenticated()))
    ///     .layer(layer)
    ///     .merge(document);
    /// # Ok(()) }
    /// ```
    pub fn with_resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.resource_metadata = Some(metadata);
        self
    }

    /// Accepts tokens whose `aud` contains this value. Call again to accept several.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }
    /// The `typ` header policy (default [`TypPolicy::Jwt`]).
    pub fn with_typ(mut self, typ: TypPolicy) -> Self {
        self.typ = typ;
        self
    }
    /// How claims become a [`Session`](crate::Session) (default [`OidcProfile::new`];
    /// [`SessionLayer::stytch`] sets [`StytchProfile`], [`SessionLayer::oidc`]
    /// [`OidcProfile::rfc9068`]).
    pub fn with_profile(mut self, profile: impl ClaimProfile) -> Self {
        self.profile = Some(Arc::new(profile));
        self
    }
    /// Clock leeway (default [`DEFAULT_LEEWAY`], at most 5 min) for every time the
    /// layer checks: `exp`, `nbf`, `iat`, authentication times (`auth_time`, Stytch
    /// factor times: later than now plus the leeway is invalid) and a Stytch session's
    /// own `expires_at`, in tokens and in the issuer's answers alike.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
    /// The maximum token age, as in Stytch's SDKs (`max_token_age_seconds`): a JWT
    /// is too old once `now - iat >= max_age` (whole seconds, no leeway), whatever
    /// its `exp`; a token without `iat` is then refused
    /// ([`MissingClaim`](crate::AuthErrorKind::MissingClaim)). Default: no maximum.
    ///
    /// What "too old" means depends on the [authority](Self::with_authority):
    ///
    /// - **With one**, a too-old JWT is *confirmed*, not refused: the layer asks the
    ///   issuer about the JWT itself (Stytch `sessions/authenticate` with
    ///   `session_jwt`), within the [issuer-call budget](Self::with_issuer_budget),
    ///   and admits the session the issuer confirms; cookie clients get the renewed
    ///   cookies. The answer is reused for the
    ///   [opaque-token window](Self::with_opaque_token_ttl). `Duration::ZERO` makes
    ///   every JWT too old: every session is confirmed remotely.
    /// - **Without one**, a too-old JWT is refused
    ///   ([`TooOld`](crate::AuthErrorKind::TooOld)); `Duration::ZERO` refuses every JWT.
    ///
    /// Sessions in the layer's cache are held to the same rule on every hit.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_stepup::{SessionLayer, StytchProject};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
    ///     .with_secret("secret-test-…");
    /// // JWTs minted more than a minute ago are confirmed with Stytch (and renewed).
    /// let layer = SessionLayer::stytch(&project).with_max_token_age(Duration::from_secs(60)).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_max_token_age(mut self, max_age: Duration) -> Self {
        self.max_token_age = Some(max_age);
        self
    }
    /// Key set refresh and limits.
    pub fn with_jwks_config(mut self, config: JwksConfig) -> Self {
        self.jwks = config;
        self
    }
    /// The cookie holding the session JWT, read when no `Authorization` header is
    /// sent and written when the issuer renews the session. Default `None` (no JWT
    /// cookie); [`SessionLayer::stytch`] sets [`DEFAULT_JWT_COOKIE`].
    pub fn with_jwt_cookie(mut self, name: Option<&str>) -> Self {
        self.credentials.jwt_cookie = name.map(str::to_owned);
        self
    }
    /// The cookie holding the opaque session token, read when no `Authorization`
    /// header is sent and written when the issuer renews the session. Default `None`
    /// (no token cookie); [`SessionLayer::stytch`] sets [`DEFAULT_TOKEN_COOKIE`].
    pub fn with_token_cookie(mut self, name: Option<&str>) -> Self {
        self.credentials.token_cookie = name.map(str::to_owned);
        self
    }
    /// Longest accepted token (default 8 KiB).
    pub fn with_max_token_len(mut self, bytes: usize) -> Self {
        self.credentials.max_token_len = bytes;
        self
    }
    /// Starts without fetching keys: the first request fetches them. By default
    /// [`build`](Self::build) fetches them and fails fast when it cannot.
    pub fn with_lazy_start(mut self) -> Self {
        self.eager = false;
        self
    }
    /// Budget of the verified-session cache, in bytes of heap (default 64 MiB);
    /// `0` disables the cache.
    ///
    /// Each cached session weighs what it really holds: the compact session, its
    /// token's times and fingerprint, and the cache's own bookkeeping (its slot
    /// and index). A typical Stytch session (a session JWT with two factors and
    /// two roles) weighs about 660 bytes, so the default holds about 100 000 of
    /// them; sessions with large custom claims or factor objects weigh more. When
    /// the budget is full, sessions not used since the eviction clock last passed
    /// them go first (CLOCK, an approximation of least recently used), and ended
    /// sessions before any other; an evicted session is only verified again.
    pub fn with_session_cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// How guards behind this layer judge sessions and answer (acr levels, RBAC
    /// policy, login and step-up pages, challenge realm and format).
    pub fn with_guard_config(mut self, config: GuardConfig) -> Self {
        self.guards = config;
        self
    }

    /// The kind of sessions this layer makes, against which
    /// [`SessionLayer::guard`] checks requirements at startup (default
    /// [`Dialect::Generic`]; [`SessionLayer::stytch`] and [`SessionLayer::oidc`] set
    /// theirs). Set it when a generic builder reads one dialect's tokens.
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The issuing server's API, for opaque tokens, [`fresh`](crate::Guard::fresh)
    /// guards and renewing expired Stytch JWTs. [`SessionLayer::stytch`] sets a
    /// [`StytchAuthority`] when the project carries its secret.
    ///
    /// Every answer of the authority is held to this layer's issuers
    /// ([`with_issuer`](Self::with_issuer), [`with_issuer_config`](Self::with_issuer_config))
    /// and to the audiences ([`with_audience`](Self::with_audience)), tenant and
    /// claim profile of the issuer it names, as JWTs are: an answer naming
    /// another issuer is refused as [`WrongIssuer`](crate::AuthErrorKind::WrongIssuer),
    /// an audience not of its issuer as [`WrongAudience`](crate::AuthErrorKind::WrongAudience),
    /// none as [`MissingClaim`](crate::AuthErrorKind::MissingClaim) (see
    /// [`with_authority_audience_optional`](Self::with_authority_audience_optional)).
    /// A [`StytchAuthority`] answers for the project whose credentials asked, so
    /// its sessions carry that project's issuer and audience: they pass when the
    /// authority and the layer name the same project.
    ///
    /// [`build`](Self::build) reports what [`Authority::check`] finds wrong with it.
    ///
    /// # Remote fallback
    ///
    /// As stytch-node's `authenticateJwt`, a JWT that fails locally *only* because
    /// it expired (its `exp`, or its Stytch session's `expires_at`), is older than
    /// the [maximum token age](Self::with_max_token_age), or names as issuer the
    /// project's API base URL (a [`StytchAuthority`] vouches for its project's
    /// issuers and [base URL](StytchProject::with_base_url), where this layer does
    /// not accept them itself), is confirmed with the authority using the JWT itself; a session token sent next to it in the cookies is
    /// asked about instead, and must name the same session. Everything else about
    /// the JWT must pass locally first: signature, algorithm, `typ`, audience,
    /// shape, no time in the future, the claim profile. A session the issuer
    /// already ended is refused without a call; calls spend the
    /// [issuer-call budget](Self::with_issuer_budget); the answer must be about the
    /// JWT's own session; cookie clients get the renewed cookies (only the JWT
    /// cookie when they sent no session token), bearer clients never get cookies.
    pub fn with_authority(mut self, authority: impl Authority) -> Self {
        // A Stytch authority vouches for its project's issuers (see above).
        self.remote_issuers = (&authority as &dyn std::any::Any)
            .downcast_ref::<StytchAuthority>()
            .map(|stytch| stytch.project_issuers().to_vec())
            .unwrap_or_default();
        self.authority = Some(Arc::new(authority));
        self
    }
    /// How long the issuer's answer about an opaque token is reused (default
    /// [`DEFAULT_OPAQUE_TOKEN_TTL`]). A revocation takes up to this long to reach
    /// routes without a [`fresh`](crate::Guard::fresh) guard.
    pub fn with_opaque_token_ttl(mut self, ttl: Duration) -> Self {
        self.opaque_ttl = ttl;
        self
    }
    /// A local check of opaque tokens before they are sent to the issuer (the
    /// Stytch preset checks the shape of Stytch session tokens). Tokens failing it
    /// are rejected as [`Malformed`](crate::AuthErrorKind::Malformed) without a
    /// call; well-shaped tokens that pass it still only reach the issuer within
    /// the [issuer-call budget](Self::with_issuer_budget).
    pub fn with_opaque_token_check(mut self, check: fn(&str) -> bool) -> Self {
        self.opaque_shape = Some(check);
        self
    }
    /// The budget of issuer calls for credentials that cannot be verified locally
    /// (opaque tokens, and JWTs that only lapsed, with or without their session
    /// token: see the remote fallback of [`with_authority`](Self::with_authority)).
    /// Default [`IssuerBudget::new`]; over budget, a request gets `503` with
    /// `Retry-After` and no call is made. Locally verified JWTs never need it.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_stepup::{IssuerBudget, SessionLayer, StytchProject};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
    ///     .with_secret("secret-test-…");
    /// let layer = SessionLayer::stytch(&project).with_issuer_budget(IssuerBudget::per_second(20)).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_issuer_budget(mut self, budget: IssuerBudget) -> Self {
        self.issuer_budget = budget;
        self
    }
    /// Accepts answers of the authority that carry no audience at all (an RFC 7662
    /// introspection response without `aud`). Answers naming another audience are
    /// still refused. Default: an answer without an audience is refused.
    ///
    /// # ⚠️ Warning
    ///
    /// Without an audience, nothing says the token was issued for this API: any
    /// token the authorization server issued to any client, for any resource (and
    /// that the introspection endpoint agrees to describe to this client), is
    /// accepted here. Only use this with an authorization server that never issues
    /// `aud` and serves a single resource, or whose introspection endpoint only
    /// reports tokens meant for the calling resource server.
    pub fn with_authority_audience_optional(mut self) -> Self {
        self.authority_audience_optional = true;
        self
    }
    /// Attributes of the session cookies this layer writes: when the issuer renews
    /// or ends a session, on logout, and after a step-up. Default
    /// [`CookieAttributes::default`] ([`CookieMode::BackendOwned`](crate::CookieMode::BackendOwned),
    /// `HttpOnly`); pages running Stytch's frontend SDK need
    /// [`CookieMode::FrontendSdk`](crate::CookieMode::FrontendSdk), see there why.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_stepup::{CookieAttributes, CookieMode, SessionLayer, StytchProject};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
    ///     .with_secret("secret-test-…");
    /// // The SDK runs with `availableToSubdomains` on example.com.
    /// let cookies = CookieAttributes::new(CookieMode::FrontendSdk).with_domain("example.com");
    /// let layer = SessionLayer::stytch(&project).with_cookie_attributes(cookies).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_cookie_attributes(mut self, attributes: CookieAttributes) -> Self {
        self.cookies = attributes;
        self
    }

    /// Every issuer configuration: the builder's own issuers first (with the
    /// issuers its authority vouches for), then the added ones. Makes their key
    /// stores, which start nothing yet.
    fn issuer_table(&mut self) -> Result<IssuerTable, ConfigError> {
        let profile: Arc<dyn ClaimProfile> = self.profile.take().unwrap_or_else(|| Arc::new(OidcProfile::new()));
        let defaults = Defaults { audiences: &self.audiences, typ: self.typ, profile: &profile, jwks: &self.jwks };
        let mut entries = Vec::with_capacity(1 + self.issuer_configs.len());
        if let Some(source) = self.source.take() {
            let mut issuers = std::mem::take(&mut self.issuers);
            dedup(&mut issuers);
            let mut remote = std::mem::take(&mut self.remote_issuers);
            remote.retain(|issuer| !issuers.contains(issuer));
            dedup(&mut remote);
            let (first, rest) = issuers.split_first().ok_or(ConfigError::Missing("issuer"))?;
            let mut config = IssuerConfig::new(first.clone(), source);
            for issuer in rest {
                config = config.with_additional_issuer(issuer.clone());
            }
            let mut rules = config.compile(&defaults)?;
            rules.remote = remote;
            entries.push(rules);
        }
        for config in std::mem::take(&mut self.issuer_configs) {
            entries.push(config.compile(&defaults)?);
        }
        IssuerTable::new(entries)
    }

    /// Keeps the first error found while presetting, for [`build`](Self::build).
    pub(crate) fn refuse(mut self, error: ConfigError) -> Self {
        self.invalid.get_or_insert(error);
        self
    }

    /// Builds the layer. Must run inside a tokio runtime: it starts the background
    /// key refresh, and (unless [`with_lazy_start`](Self::with_lazy_start)) fetches
    /// the key set now.
    ///
    /// # Errors
    ///
    /// The first unusable setting (see [where configuration errors
    /// surface](Self#where-configuration-errors-surface)), or
    /// [`ConfigError::KeySet`] when the eager key fetch fails.
    pub async fn build(mut self) -> Result<SessionLayer, ConfigError> {
        if let Some(error) = self.invalid.take() {
            return Err(error);
        }
        if self.source.is_some() && self.issuers.is_empty() {
            return Err(ConfigError::Missing("issuer"));
        }
        if self.source.is_none() && !self.issuers.is_empty() {
            return Err(ConfigError::invalid(
                "issuer",
                "a multi-issuer layer has no keys of its own: name the issuer in an IssuerConfig",
            ));
        }
        if self.source.is_none() && self.issuer_configs.is_empty() {
            return Err(ConfigError::Missing("issuer configuration"));
        }
        if self.source.is_some() && self.audiences.is_empty() {
            return Err(ConfigError::Missing("audience"));
        }
        if let Some(metadata) = &self.resource_metadata {
            metadata.check()?;
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::invalid("leeway", "at most 5 minutes"));
        }
        self.guards.validate()?;
        if self.credentials.max_token_len == 0 {
            return Err(ConfigError::invalid("max token length", "must be above zero"));
        }
        self.issuer_budget.validate()?;
        self.cookies.check()?;
        if let Some(authority) = &self.authority {
            authority.check()?;
        }
        crate::verify::ensure_crypto_provider();
        let issuers = Arc::new(self.issuer_table()?);
        let settings = AuthoritySettings {
            opaque_ttl: self.opaque_ttl,
            budget: self.issuer_budget,
            issuers: Arc::clone(&issuers),
            audience_optional: self.authority_audience_optional,
            leeway: self.leeway,
        };
        // Which cached sessions a revocation remembers by token (`LayerState::forget`).
        let token_hashes = match &self.authority {
            None => TokenHashes::Never,
            Some(authority) if authority.confirms_whole_session() => TokenHashes::WithoutSessionId,
            Some(_) => TokenHashes::Always,
        };
        let authority = self.authority.map(|authority| AuthorityState::new(authority, settings));
        let opaque_shape = self.opaque_shape.unwrap_or(|_| true);
        for rules in issuers.entries() {
            let first_refresh = if self.eager && rules.keys.is_remote() {
                rules.keys.load().await.map_err(ConfigError::KeySet)?
            } else {
                // Lazy: the first request with a key we lack fetches the set.
                self.jwks.default_refresh
            };
            rules.keys.spawn_refresher(first_refresh);
        }
        let resource_metadata = self.resource_metadata.map(|metadata| metadata.completed(issuers.issuer_names()));
        let time = TimeRules { leeway: self.leeway.as_secs(), max_age: self.max_token_age };
        let verifier = Verifier { issuers, algorithms: self.jwks.algorithms, time };
        let cache = (self.cache_bytes > 0).then(|| SessionCache::new(self.cache_bytes, time.leeway, token_hashes));
        let state = LayerState {
            credentials: self.credentials,
            verifier,
            cache,
            guards: self.guards,
            dialect: self.dialect,
            authority,
            opaque_shape,
            cookies: self.cookies,
            logged_out: LocalRevocations::new(),
            resource_metadata,
        };
        Ok(SessionLayer { state: Arc::new(state) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stytch_session_token_shape() {
        assert!(is_stytch_session_token("mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q"));
        assert!(!is_stytch_session_token("short"));
        assert!(!is_stytch_session_token("mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q="));
        assert!(!is_stytch_session_token("mZAYn5aLEqKUlZ+Ad9U/fWr38GaAQ1oFAhT8ds245v7Q"));
    }
}
