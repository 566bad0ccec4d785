//! How guards judge sessions and answer when they fall short. Configured once on
//! the [`SessionLayer`](crate::SessionLayer).

use std::collections::HashMap;
use std::sync::Arc;

use crate::challenge::{Challenge, DefaultChallenge};
use crate::error::ConfigError;
use crate::guard::context::SameContext;
use crate::rbac::{RbacPolicy, RbacSource, StytchRbac};
use crate::session::{FactorKind, Session};

/// The `realm` of challenges unless [`GuardConfig::with_realm`] says otherwise.
const DEFAULT_REALM: &str = "api";

/// Guard settings shared by every guard behind one layer.
///
/// Defaults: no `acr` levels (every `acr_at_least` fails until levels are set), no
/// factor → `acr` mapping (sessions without an `acr` of their own are judged at the
/// level their factors give them, see [`session_acr`](Self::session_acr)), no RBAC policy, no login or step-up URL (browsers get the
/// same `401` as API clients), realm `api`, the [`DefaultChallenge`] format.
///
/// # Example
///
/// ```
/// use tower_stepup::{FactorKind, GuardConfig};
///
/// let config = GuardConfig::default()
///     .with_acr_levels(["pwd", "mfa", "phr"])
///     .with_factor_acr(FactorKind::TOTP, "mfa")
///     .with_factor_acr(FactorKind::WEBAUTHN, "phr")
///     .with_login_url("/login")
///     .with_step_up_url("/step-up");
/// # Ok::<(), tower_stepup::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct GuardConfig {
    acr_levels: Vec<String>,
    factor_acr: HashMap<FactorKind, String>,
    secure_session_acr: Option<String>,
    rbac: Option<RbacSource>,
    pub(crate) login_url: Option<String>,
    pub(crate) step_up_url: Option<String>,
    pub(crate) realm: String,
    pub(crate) challenge: Arc<dyn Challenge>,
    same_context: SameContext,
    multi_factor_acr: Option<String>,
    diagnostics: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            acr_levels: Vec::new(),
            factor_acr: HashMap::new(),
            secure_session_acr: None,
            rbac: None,
            login_url: None,
            step_up_url: None,
            realm: DEFAULT_REALM.to_owned(),
            challenge: Arc::new(DefaultChallenge),
            same_context: SameContext::default(),
            multi_factor_acr: None,
            diagnostics: false,
        }
    }
}

impl std::fmt::Debug for GuardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardConfig")
            .field("acr_levels", &self.acr_levels)
            .field("factor_acr", &self.factor_acr)
            .field("login_url", &self.login_url)
            .field("step_up_url", &self.step_up_url)
            .field("realm", &self.realm)
            .field("same_context", &self.same_context)
            .field("multi_factor_acr", &self.multi_factor_acr)
            .field("diagnostics", &self.diagnostics)
            .finish_non_exhaustive()
    }
}

impl GuardConfig {
    /// The `acr` values from weakest to strongest, e.g. `["pwd", "mfa", "phr"]`.
    pub fn with_acr_levels(mut self, levels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.acr_levels = levels.into_iter().map(Into::into).collect();
        self
    }
    /// The `acr` value a client should ask for to obtain this factor: step-up
    /// challenges for factor requirements carry it in `acr_values`.
    ///
    /// It also raises sessions without an `acr` of their own (Stytch sessions): one
    /// with a factor of this kind is judged at least at this level, when the level
    /// ranks higher than the one its factors give it by default (see
    /// [`session_acr`](Self::session_acr)).
    pub fn with_factor_acr(mut self, kind: FactorKind, acr: impl Into<String>) -> Self {
        self.factor_acr.insert(kind, acr.into());
        self
    }
    /// The `acr` value that stands for Stytch's "secure session" (offered in
    /// challenges of [`Requirement::secure_session`](crate::Requirement::secure_session)).
    pub fn with_secure_session_acr(mut self, acr: impl Into<String>) -> Self {
        self.secure_session_acr = Some(acr.into());
        self
    }
    /// The role → permission policy for [`Requirement::permission`](crate::Requirement::permission),
    /// given in code (replaces one set before, also a [`with_stytch_rbac`](Self::with_stytch_rbac)).
    pub fn with_rbac_policy(mut self, policy: RbacPolicy) -> Self {
        self.rbac = Some(RbacSource::Fixed(Arc::new(policy)));
        self
    }
    /// The Stytch project's own RBAC policy for
    /// [`Requirement::permission`](crate::Requirement::permission), loaded from Stytch
    /// when a guard first needs it and refreshed every 5 minutes (see [`StytchRbac`]);
    /// replaces a policy set before.
    ///
    /// The layers built from one `GuardConfig` share the loaded policy.
    ///
    /// ```
    /// use tower_stepup::{GuardConfig, StytchProject, StytchRbac};
    ///
    /// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
    ///     .with_secret("secret-test-…");
    /// let config = GuardConfig::default().with_stytch_rbac(StytchRbac::new(&project)?);
    /// assert!(config.validate().is_ok());
    /// # Ok::<(), tower_stepup::ConfigError>(())
    /// ```
    pub fn with_stytch_rbac(mut self, rbac: StytchRbac) -> Self {
        self.rbac = Some(RbacSource::Stytch(rbac.into_cache()));
        self
    }
    /// Where browsers without a valid session are sent (`303`, with `return_to`).
    /// A same-site path (`/login`) or an absolute `https` URL.
    /// Checked by [`validate`](Self::validate), which the layer's `build()` calls.
    pub fn with_login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into());
        self
    }
    /// Where browsers whose session falls short are sent to step up (`303`, with
    /// `return_to`, `acr_values`, `max_age` and `factors`).
    /// Checked by [`validate`](Self::validate), which the layer's `build()` calls.
    pub fn with_step_up_url(mut self, url: impl Into<String>) -> Self {
        self.step_up_url = Some(url.into());
        self
    }
    /// How [`Requirement::same_context`](crate::Requirement::same_context) compares
    /// a request with where its session began: prefix tolerance (default IPv4 `/24`,
    /// IPv6 `/64`), trusted proxies (default none: `X-Forwarded-For` is ignored),
    /// the mismatch hook. See [`SameContext`].
    pub fn with_same_context(mut self, same_context: SameContext) -> Self {
        self.same_context = same_context;
        self
    }
    /// Checks the settings (the login and step-up URLs must be a same-site path or
    /// an absolute `https` URL, without query or fragment; the trusted proxies of
    /// [`with_same_context`](Self::with_same_context) must parse, its prefixes fit).
    /// [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build) calls it; call
    /// it yourself only to check a configuration earlier.
    ///
    /// ```
    /// use tower_stepup::GuardConfig;
    ///
    /// assert!(GuardConfig::default().with_login_url("/login").validate().is_ok());
    /// assert!(GuardConfig::default().with_login_url("//evil.example").validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(rbac) = &self.rbac {
            rbac.check()?;
        }
        if let Some(url) = &self.login_url {
            check_redirect_target("login URL", url)?;
        }
        if let Some(url) = &self.step_up_url {
            check_redirect_target("step-up URL", url)?;
        }
        self.same_context.validate()
    }
    /// The `realm` of `WWW-Authenticate` challenges (default `api`), as
    /// [`ChallengeContext::realm`](crate::ChallengeContext::realm). Characters a header
    /// cannot carry are dropped when the challenge is rendered.
    ///
    /// ```
    /// use tower_stepup::GuardConfig;
    ///
    /// let config = GuardConfig::default().with_realm("billing");
    /// # let _ = config;
    /// ```
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }
    /// The lowest `acr` level that means "multi-factor" for
    /// [`Requirement::multi_factor`](crate::Requirement::multi_factor): a token
    /// whose `acr` ranks at or above it (in [`with_acr_levels`](Self::with_acr_levels))
    /// passes. Default: `mfa`, when it is a configured level. E.g. Keycloak's
    /// levels of assurance `["0", "1", "2"]` with `"2"` for the second factor.
    ///
    /// ```
    /// use tower_stepup::GuardConfig;
    ///
    /// let config = GuardConfig::default().with_acr_levels(["0", "1", "2"]).with_multi_factor_acr("2");
    /// # let _ = config;
    /// ```
    pub fn with_multi_factor_acr(mut self, level: impl Into<String>) -> Self {
        self.multi_factor_acr = Some(level.into());
        self
    }
    /// **Development only.** Puts the exact reason of every refusal into the
    /// problem+json body (`"diagnostics": [...]`, for clients that accept JSON) and
    /// logs it with `tracing::info!`: which claim, which value was expected, what was
    /// found ("role `admin` required; the session's roles, read from
    /// `realm_access.roles`: none"). Default off.
    ///
    /// The reasons name claims and the claim values needed to tell what is wrong
    /// (roles, scopes, `acr`, a client id, the `typ` header), never a token or a
    /// signature; still, they tell a caller how your authorization is configured:
    /// leave it off in production.
    ///
    /// ```
    /// use tower_stepup::GuardConfig;
    ///
    /// let dev = std::env::var("APP_ENV").as_deref() == Ok("development");
    /// let config = GuardConfig::default().with_diagnostics(dev);
    /// # let _ = config;
    /// ```
    pub fn with_diagnostics(mut self, enabled: bool) -> Self {
        self.diagnostics = enabled;
        self
    }
    /// Whether refusals carry their exact reason ([`with_diagnostics`](Self::with_diagnostics)).
    pub fn diagnostics(&self) -> bool {
        self.diagnostics
    }
    /// Replaces how challenges are rendered.
    pub fn with_challenge(mut self, challenge: impl Challenge) -> Self {
        self.challenge = Arc::new(challenge);
        self
    }

    /// The level given to a session without an `acr` of its own whose factors are of
    /// one kind (e.g. a password, or an email OTP alone).
    pub const SINGLE_FACTOR_ACR: &'static str = "pwd";
    /// The level given to a session without an `acr` of its own whose factors are of
    /// two or more distinct kinds (e.g. email OTP and TOTP).
    pub const MULTI_FACTOR_ACR: &'static str = "mfa";

    /// The `acr` level guards judge `session` at
    /// ([`Requirement::acr_at_least`](crate::Requirement::acr_at_least)).
    ///
    /// - A session with an `acr` (from the issuer: OIDC tokens) is judged at it, as sent.
    /// - A session without one (Stytch sessions, which carry none) is judged by its
    ///   factors: two or more distinct factor kinds are [`MULTI_FACTOR_ACR`](Self::MULTI_FACTOR_ACR)
    ///   (`mfa`), one kind is [`SINGLE_FACTOR_ACR`](Self::SINGLE_FACTOR_ACR) (`pwd`), and
    ///   a factor mapped with [`with_factor_acr`](Self::with_factor_acr) to a level that
    ///   ranks higher in [`with_acr_levels`](Self::with_acr_levels) raises it to that
    ///   level. No factors, no level.
    ///
    /// The derivation lives here, not in the claim profile, because it needs the level
    /// order and the factor mapping this configuration holds; [`Session::acr`] stays
    /// what the token said. The names only count when they are among the configured
    /// levels, which the defaults of the example server (`pwd,mfa`) are.
    ///
    /// ```
    /// use tower_stepup::{Factor, FactorKind, GuardConfig, Session};
    ///
    /// let config = GuardConfig::default()
    ///     .with_acr_levels(["pwd", "mfa", "phr"])
    ///     .with_factor_acr(FactorKind::WEBAUTHN, "phr");
    /// let session = |kinds: &[FactorKind]| {
    ///     let factors = kinds.iter().cloned().map(Factor::new).collect();
    ///     Session::builder("user-1", "stytch.com/project-1").factors(factors).build()
    /// };
    /// assert_eq!(config.session_acr(&session(&[FactorKind::EMAIL_OTP])), Some("pwd"));
    /// assert_eq!(config.session_acr(&session(&[FactorKind::EMAIL_OTP, FactorKind::TOTP])), Some("mfa"));
    /// assert_eq!(config.session_acr(&session(&[FactorKind::WEBAUTHN])), Some("phr"));
    /// assert_eq!(config.session_acr(&session(&[])), None);
    /// ```
    pub fn session_acr<'a>(&'a self, session: &'a Session) -> Option<&'a str> {
        if let Some(acr) = session.acr() {
            return Some(acr);
        }
        let factors = session.factors();
        let first = factors.first()?;
        let distinct = factors.iter().any(|factor| factor.kind() != first.kind());
        let mut level = if distinct { Self::MULTI_FACTOR_ACR } else { Self::SINGLE_FACTOR_ACR };
        for mapped in factors.iter().filter_map(|factor| self.factor_acr(factor.kind())) {
            // `None` (not a configured level) ranks below every configured one.
            if self.acr_rank(mapped) > self.acr_rank(level) {
                level = mapped;
            }
        }
        Some(level)
    }

    /// The configured level that means multi-factor, if any.
    pub(crate) fn multi_factor_level(&self) -> Option<&str> {
        match &self.multi_factor_acr {
            Some(level) => Some(level.as_str()),
            None => self.acr_rank(Self::MULTI_FACTOR_ACR).map(|_| Self::MULTI_FACTOR_ACR),
        }
    }
    /// Whether a token's own `acr` means multi-factor.
    pub(crate) fn is_multi_factor_acr(&self, acr: &str) -> bool {
        if super::requirement::PAPE_MULTI_FACTOR.contains(&acr) {
            return true;
        }
        let Some(level) = self.multi_factor_level() else { return false };
        matches!((self.acr_rank(acr), self.acr_rank(level)), (Some(actual), Some(required)) if actual >= required)
    }
    /// What a multi-factor step-up asks for.
    pub(crate) fn multi_factor_acr_values(&self) -> Vec<String> {
        self.multi_factor_level().map(|level| self.acr_values_from(level)).unwrap_or_default()
    }
    /// The configured levels, weakest first.
    pub(crate) fn acr_levels(&self) -> &[String] {
        &self.acr_levels
    }

    pub(crate) fn acr_rank(&self, acr: &str) -> Option<usize> {
        self.acr_levels.iter().position(|level| level == acr)
    }
    /// The acceptable values for "at least `level`": it and every stronger one.
    pub(crate) fn acr_values_from(&self, level: &str) -> Vec<String> {
        match self.acr_rank(level) {
            Some(rank) => self.acr_levels[rank..].to_vec(),
            None => vec![level.to_owned()],
        }
    }
    /// Every level a factor is mapped to with [`with_factor_acr`](Self::with_factor_acr).
    pub(crate) fn factor_acr_levels(&self) -> impl Iterator<Item = &str> {
        self.factor_acr.values().map(String::as_str)
    }
    pub(crate) fn factor_acr(&self, kind: &FactorKind) -> Option<&str> {
        self.factor_acr.get(kind).map(String::as_str)
    }
    pub(crate) fn secure_session_acr(&self) -> Option<&str> {
        self.secure_session_acr.as_deref()
    }
    pub(crate) fn same_context(&self) -> &SameContext {
        &self.same_context
    }
    pub(crate) fn rbac(&self) -> Option<&RbacSource> {
        self.rbac.as_ref()
    }
    /// Whether one of `roles` may take `action` on `resource` by the policy loaded so
    /// far; never without a policy.
    pub(crate) fn rbac_allows(&self, roles: &[String], resource: &str, action: &str) -> bool {
        match &self.rbac {
            Some(RbacSource::Fixed(policy)) => policy.allows_any(roles, resource, action),
            Some(source @ RbacSource::Stytch(_)) => {
                source.current().is_some_and(|policy| policy.allows_any(roles, resource, action))
            }
            None => false,
        }
    }
}

fn check_redirect_target(name: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.contains('?') || url.contains('#') {
        return Err(ConfigError::invalid(name, "must not carry a query or fragment; parameters are appended"));
    }
    if crate::challenge::safe_return_to(url).is_some() {
        return Ok(());
    }
    crate::http_client::check_url(name, url, false)?;
    Ok(())
}
