//! What a route requires of a session, and why a session falls short.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::ConfigError;
use crate::guard::config::GuardConfig;
use crate::guard::context::{self, RequestContext, Verdict};
use crate::rejection::{Forbidden, Rejection, Shortfall, StepUpRequired};
use crate::session::{FactorKind, Session};

/// What a route requires of a session. Built once at startup, evaluated per request
/// without allocating when the session passes.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_stepup::{FactorKind, Requirement};
///
/// let five_minutes = Duration::from_secs(300);
/// // "webauthn within 10 minutes, or totp within 5 minutes", and the admin role
/// let requirement = Requirement::any([
///     Requirement::factor(FactorKind::WEBAUTHN).within(Duration::from_secs(600)),
///     Requirement::factor(FactorKind::TOTP).within(five_minutes),
/// ])
/// .and(Requirement::role("admin"));
/// # let _ = requirement;
/// ```
#[derive(Clone)]
pub struct Requirement {
    pub(super) node: Node,
}

#[derive(Clone)]
pub(super) enum Node {
    Authenticated,
    Factor(FactorRule),
    AcrAtLeast(String),
    /// Authenticated with more than one factor, in whichever dialect says so.
    MultiFactor,
    MaxAge(Duration),
    Role(String),
    Scope(String),
    Permission {
        resource: String,
        action: String,
    },
    SecureSession,
    /// The request comes from where the session began (see `guard::context`).
    SameContext,
    Predicate {
        description: Arc<str>,
        check: Arc<dyn Fn(&Session) -> bool + Send + Sync>,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
    /// Built from an empty combinator: no session meets it. Only ever at the root
    /// (combinators that contain one become one), so one misconfigured part closes
    /// the whole route rather than leaving it to the other branches.
    Misconfigured(&'static str),
}

#[derive(Clone, Debug)]
pub(super) struct FactorRule {
    pub(super) kind: FactorKind,
    pub(super) delivery_method: Option<String>,
    pub(super) within: Option<Duration>,
}

/// A factor requirement under construction: add [`within`](Self::within) or
/// [`delivered_by`](Self::delivered_by), then use it as a [`Requirement`].
#[derive(Clone, Debug)]
#[must_use]
pub struct FactorRequirement {
    rule: FactorRule,
}

impl FactorRequirement {
    /// The factor must have been used within this long.
    pub fn within(mut self, duration: Duration) -> Requirement {
        self.rule.within = Some(duration);
        self.into()
    }
    /// The factor must have been delivered this way (`sms`, `email`, …).
    pub fn delivered_by(mut self, method: impl Into<String>) -> Self {
        self.rule.delivery_method = Some(method.into());
        self
    }
    /// Combines with another requirement: both must hold.
    pub fn and(self, other: impl Into<Requirement>) -> Requirement {
        Requirement::from(self).and(other)
    }
    /// Combines with another requirement: either may hold.
    pub fn or(self, other: impl Into<Requirement>) -> Requirement {
        Requirement::from(self).or(other)
    }
}

impl From<FactorRequirement> for Requirement {
    fn from(value: FactorRequirement) -> Self {
        Requirement { node: Node::Factor(value.rule) }
    }
}

impl Requirement {
    /// Any valid session.
    pub fn authenticated() -> Self {
        Self { node: Node::Authenticated }
    }
    /// A factor of this kind in the session. Chain [`within`](FactorRequirement::within)
    /// for recency: it uses the factor's `last_authenticated_at` (Stytch) or
    /// `auth_time` (OIDC, where the factor comes from `amr`).
    ///
    /// Recency rules (`within`, [`max_age`](Self::max_age),
    /// [`secure_session`](Self::secure_session)) count a time slightly ahead of the
    /// clock as now, but never one more than 5 minutes ahead (the largest leeway a
    /// layer accepts); the layer itself already refuses tokens with authentication
    /// times ahead by more than its leeway.
    pub fn factor(kind: FactorKind) -> FactorRequirement {
        FactorRequirement { rule: FactorRule { kind, delivery_method: None, within: None } }
    }
    /// Any one of these factor kinds, each used within `within` when given.
    ///
    /// An empty list is a configuration error: the requirement refuses every session
    /// (see [`validate`](Self::validate)).
    pub fn any_factor(kinds: impl IntoIterator<Item = FactorKind>, within: Option<Duration>) -> Self {
        Self::combine(factor_nodes(kinds, within), Node::Any, EMPTY_ANY_FACTOR)
    }
    /// Every one of these factor kinds, each used within `within` when given.
    ///
    /// An empty list is a configuration error, not "nothing to check": the requirement
    /// refuses every session (see [`validate`](Self::validate)).
    ///
    /// ```
    /// use tower_stepup::{FactorKind, Requirement};
    ///
    /// // e.g. read from an environment variable that turned out empty
    /// let configured: Vec<FactorKind> = Vec::new();
    /// assert!(Requirement::all_factors(configured, None).validate().is_err());
    /// ```
    pub fn all_factors(kinds: impl IntoIterator<Item = FactorKind>, within: Option<Duration>) -> Self {
        Self::combine(factor_nodes(kinds, within), Node::All, EMPTY_ALL_FACTORS)
    }
    /// `acr` at least this level, in the order configured with
    /// [`GuardConfig::with_acr_levels`]. An `acr` not in the list counts as below all.
    /// Sessions without an `acr` (Stytch) are judged at the level their factors give
    /// them: see [`GuardConfig::session_acr`].
    pub fn acr_at_least(level: impl Into<String>) -> Self {
        Self { node: Node::AcrAtLeast(level.into()) }
    }
    /// The user authenticated with more than one factor, as any dialect says it.
    /// Met when one of these holds:
    ///
    /// - the token's `amr` (RFC 8176) contains `mfa` (Auth0, Entra v1.0, Keycloak's
    ///   AMR mapper, …);
    /// - the session's factors are of two or more distinct kinds: two Stytch factor
    ///   types (`password` and `totp`), or two `amr` methods that map to different
    ///   kinds (`pwd` and `otp`, `pwd` and `hwk`; see
    ///   [`OidcProfile`](crate::OidcProfile) for the mapping). `otp` with `sms` is one
    ///   kind (both are one-time codes), and the context signals `geo` and `rba` are
    ///   not factors;
    /// - the token's own `acr` ranks at or above the multi-factor level of
    ///   [`GuardConfig::with_multi_factor_acr`] (default `mfa`, when it is among the
    ///   [configured levels](GuardConfig::with_acr_levels)), or is one of the OpenID
    ///   PAPE multi-factor policies
    ///   (`http://schemas.openid.net/pape/policies/2007/06/multi-factor`,
    ///   `…/multi-factor-physical`).
    ///
    /// A single method, however strong (`hwk` alone, a passkey), is one factor:
    /// map its `acr` or use a factor rule to accept it. Failing it is a step-up
    /// offering the multi-factor `acr` level, when one is configured.
    ///
    /// ```
    /// use tower_stepup::{Factor, FactorKind, GuardConfig, Requirement, Session};
    ///
    /// let config = GuardConfig::default().with_acr_levels(["pwd", "mfa"]);
    /// let now = std::time::SystemTime::now();
    /// let mfa = Requirement::multi_factor();
    /// let stytch = Session::builder("user-1", "stytch.com/project-1")
    ///     .factor(Factor::new(FactorKind::PASSWORD))
    ///     .factor(Factor::new(FactorKind::TOTP))
    ///     .build();
    /// assert!(mfa.is_met(&stytch, &config, now));
    /// let auth0 = Session::builder("auth0|1", "https://acme.auth0.com/").amr(vec!["mfa".into()]).build();
    /// assert!(mfa.is_met(&auth0, &config, now));
    /// let password_only = Session::builder("u", "https://idp.example").acr("pwd").amr(vec!["pwd".into()]).build();
    /// assert!(!mfa.is_met(&password_only, &config, now));
    /// ```
    pub fn multi_factor() -> Self {
        Self { node: Node::MultiFactor }
    }
    /// The user authenticated (`auth_time`) within this long (OIDC `max_age`).
    pub fn max_age(max_age: Duration) -> Self {
        Self { node: Node::MaxAge(max_age) }
    }
    /// The session has this role. Failing it is `403`, not a step-up.
    pub fn role(role: impl Into<String>) -> Self {
        Self { node: Node::Role(role.into()) }
    }
    /// The token has this OAuth scope. Failing it is `403 insufficient_scope`.
    pub fn scope(scope: impl Into<String>) -> Self {
        Self { node: Node::Scope(scope.into()) }
    }
    /// One of the session's roles grants `action` on `resource` in the RBAC policy
    /// configured with [`GuardConfig::with_rbac_policy`] or
    /// [`GuardConfig::with_stytch_rbac`], with Stytch's semantics: the resource id
    /// must match exactly, `*` is a wildcard for actions only (see
    /// [`RbacPolicy`](crate::RbacPolicy)). Failing it is `403`; without a policy it
    /// always fails. A policy loaded from Stytch that could never be loaded makes
    /// the guard answer `503` (fail closed).
    ///
    /// For Stytch B2B, also name the organization the route is about with
    /// [`Guard::for_organization`](crate::Guard::for_organization): the session's
    /// roles are roles in *its own* organization, so a member of another
    /// organization must be refused before any role is looked at.
    pub fn permission(resource: impl Into<String>, action: impl Into<String>) -> Self {
        Self { node: Node::Permission { resource: resource.into(), action: action.into() } }
    }
    /// Stytch's rule for a secure session: factors from two of {email / OAuth / SSO,
    /// phone, WebAuthn / TOTP}, at least one of them used within the last hour.
    pub fn secure_session() -> Self {
        Self { node: Node::SecureSession }
    }
    /// The request comes from the context the session began in: the same network
    /// (by default the same IPv4 `/24` or IPv6 `/64`) and the same `User-Agent` as
    /// the issuer recorded (Stytch session `attributes`; for OIDC the claims named
    /// with [`OidcProfile::with_ip_address_claim`](crate::OidcProfile::with_ip_address_claim)).
    /// Configure the comparison, trusted proxies and a hook that is told of
    /// mismatches with [`GuardConfig::with_same_context`].
    ///
    /// **Failing it** is a step-up the client can act on: `401` with an RFC 9470
    /// `insufficient_user_authentication` challenge carrying `max_age="0"` (a new
    /// authentication, now, from here: a session started in this context records
    /// it), and `"context": ["ip_address", "user_agent"]` (what differed) in the
    /// problem body; browsers go to the step-up page with `max_age=0`.
    ///
    /// **Fails closed**: a session that recorded no context (B2B member sessions
    /// from Stytch's API, OIDC tokens without the configured claims, Stytch sessions
    /// started without `attributes`) is asked to step up the same way, with
    /// [`StepUpRequired::context`](crate::StepUpRequired::context) naming what was not recorded, unless
    /// [`SameContext::allow_unrecorded`](crate::SameContext::allow_unrecorded). A request whose client
    /// address is unknown (no `ConnectInfo`, or a trusted proxy that did not say) is
    /// a server configuration error: `403` with
    /// [`Forbidden::configuration_error`], logged, since no step-up would help.
    /// Judged without a request ([`is_met`](Self::is_met)), it is never met.
    ///
    /// ```
    /// use tower_stepup::{Factor, FactorKind, GuardConfig, RequestContext, Requirement, Session, SessionAttributes};
    ///
    /// let began = SessionAttributes::new().with_ip_address("198.51.100.4".parse().unwrap()).with_user_agent("UA/1");
    /// let session = Session::builder("user-1", "stytch.com/project-1").attributes(began).build();
    /// let config = GuardConfig::default();
    /// let now = std::time::SystemTime::now();
    /// let same = Requirement::same_context();
    /// let here = RequestContext::new(Some("198.51.100.77".parse().unwrap()), Some("UA/1"));
    /// let elsewhere = RequestContext::new(Some("203.0.113.9".parse().unwrap()), Some("UA/1"));
    /// assert!(same.is_met_in(&session, &config, &here, now));
    /// assert!(!same.is_met_in(&session, &config, &elsewhere, now));
    /// assert!(!same.is_met(&session, &config, now), "no request: never met");
    /// ```
    pub fn same_context() -> Self {
        Self { node: Node::SameContext }
    }
    /// A custom check. Failing it is `403`; `description` explains it in challenges
    /// and logs.
    pub fn predicate(description: impl Into<String>, check: impl Fn(&Session) -> bool + Send + Sync + 'static) -> Self {
        Self { node: Node::Predicate { description: Arc::from(description.into()), check: Arc::new(check) } }
    }
    /// All of these must hold.
    ///
    /// An empty list is a configuration error, not "nothing to check": the requirement
    /// refuses every session (see [`validate`](Self::validate)). So does a list with a
    /// misconfigured member.
    pub fn all(requirements: impl IntoIterator<Item = impl Into<Requirement>>) -> Self {
        Self::combine(requirements.into_iter().map(|r| r.into().node).collect(), Node::All, EMPTY_ALL)
    }
    /// At least one of these must hold.
    ///
    /// An empty list is a configuration error: the requirement refuses every session
    /// (see [`validate`](Self::validate)). So does a list with a misconfigured member,
    /// even if another member would pass.
    pub fn any(requirements: impl IntoIterator<Item = impl Into<Requirement>>) -> Self {
        Self::combine(requirements.into_iter().map(|r| r.into().node).collect(), Node::Any, EMPTY_ANY)
    }
    /// This and `other`.
    #[must_use]
    pub fn and(self, other: impl Into<Requirement>) -> Self {
        let other = other.into().node;
        match (self.node, other) {
            (misconfigured @ Node::Misconfigured(_), _) | (_, misconfigured @ Node::Misconfigured(_)) => {
                Self { node: misconfigured }
            }
            (Node::All(mut nodes), other) => {
                nodes.push(other);
                Self { node: Node::All(nodes) }
            }
            (node, other) => Self { node: Node::All(vec![node, other]) },
        }
    }
    /// This or `other`.
    #[must_use]
    pub fn or(self, other: impl Into<Requirement>) -> Self {
        let other = other.into().node;
        match (self.node, other) {
            (misconfigured @ Node::Misconfigured(_), _) | (_, misconfigured @ Node::Misconfigured(_)) => {
                Self { node: misconfigured }
            }
            (Node::Any(mut nodes), other) => {
                nodes.push(other);
                Self { node: Node::Any(nodes) }
            }
            (node, other) => Self { node: Node::Any(vec![node, other]) },
        }
    }

    /// Checks that the requirement can be met at all. Call it at startup on
    /// requirements built from configuration.
    ///
    /// The constructors cannot fail, so an empty [`all`](Self::all),
    /// [`any`](Self::any), [`all_factors`](Self::all_factors) or
    /// [`any_factor`](Self::any_factor) (a list read from configuration that turned
    /// out empty) fails closed instead: it is logged once with `tracing::error!` when
    /// built, and every session is refused with a `403` whose
    /// [`Forbidden::configuration_error`] (`configuration_error` in the problem body)
    /// says so. The same goes for any requirement combined with such a one. This
    /// method turns that into a startup error.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the empty combinator.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_stepup::{FactorKind, Requirement};
    ///
    /// let strong = Requirement::all_factors([FactorKind::PASSWORD, FactorKind::TOTP], None);
    /// assert!(strong.validate().is_ok());
    ///
    /// let configured: Vec<FactorKind> = Vec::new(); // an empty setting
    /// let broken = Requirement::any_factor(configured, Some(Duration::from_secs(300)))
    ///     .and(Requirement::role("admin"));
    /// let error = broken.validate().unwrap_err();
    /// assert!(error.to_string().contains("any_factor"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.node {
            Node::Misconfigured(reason) => Err(ConfigError::invalid("requirement", *reason)),
            _ => Ok(()),
        }
    }

    /// A combinator over `nodes`, or a misconfigured requirement when there are none
    /// (logged here, once per construction) or one of them is misconfigured.
    fn combine(nodes: Vec<Node>, make: fn(Vec<Node>) -> Node, empty: &'static str) -> Self {
        if nodes.is_empty() {
            tracing::error!(requirement = empty, "misconfigured requirement: no session will be let through");
            return Self { node: Node::Misconfigured(empty) };
        }
        if let Some(reason) = nodes.iter().find_map(|node| match node {
            Node::Misconfigured(reason) => Some(*reason),
            _ => None,
        }) {
            return Self { node: Node::Misconfigured(reason) };
        }
        Self { node: make(nodes) }
    }

    /// Whether judging this requirement needs the RBAC policy (it has a
    /// [`permission`](Self::permission) somewhere).
    pub(crate) fn needs_policy(&self) -> bool {
        self.node.needs_policy()
    }

    /// Whether `session` meets the requirement at time `now`, judged without a
    /// request ([`same_context`](Self::same_context) is never met; see
    /// [`is_met_in`](Self::is_met_in)).
    pub fn is_met(&self, session: &Session, config: &GuardConfig, now: SystemTime) -> bool {
        self.node.is_met(session, config, None, now)
    }

    /// Whether `session`, used by a request from `request`, meets the requirement at
    /// time `now` (what guards judge).
    pub fn is_met_in(
        &self,
        session: &Session,
        config: &GuardConfig,
        request: &RequestContext<'_>,
        now: SystemTime,
    ) -> bool {
        self.node.is_met(session, config, Some(request), now)
    }

    /// Why `session` falls short, judged without a request; `None` when it does not.
    pub fn shortfall(&self, session: &Session, config: &GuardConfig, now: SystemTime) -> Option<Shortfall> {
        self.shortfall_of(session, config, None, now)
    }

    /// Why `session`, used by a request from `request`, falls short; `None` when it
    /// does not.
    pub fn shortfall_in(
        &self,
        session: &Session,
        config: &GuardConfig,
        request: &RequestContext<'_>,
        now: SystemTime,
    ) -> Option<Shortfall> {
        self.shortfall_of(session, config, Some(request), now)
    }

    fn shortfall_of(
        &self,
        session: &Session,
        config: &GuardConfig,
        request: Option<&RequestContext<'_>>,
        now: SystemTime,
    ) -> Option<Shortfall> {
        if self.node.is_met(session, config, request, now) {
            return None;
        }
        Some(self.node.explain(session, config, request, now))
    }

    /// The refusal for `session` now, used from `request`, if it falls short.
    pub(crate) fn judge(
        &self,
        session: &Session,
        config: &GuardConfig,
        request: &RequestContext<'_>,
    ) -> Option<Rejection> {
        self.shortfall_of(session, config, Some(request), SystemTime::now()).map(Shortfall::into_rejection)
    }
}

const EMPTY_ALL: &str = "Requirement::all over no requirements";
const EMPTY_ANY: &str = "Requirement::any over no requirements";
const EMPTY_ALL_FACTORS: &str = "Requirement::all_factors over no factor kinds";
const EMPTY_ANY_FACTOR: &str = "Requirement::any_factor over no factor kinds";

fn factor_nodes(kinds: impl IntoIterator<Item = FactorKind>, within: Option<Duration>) -> Vec<Node> {
    kinds.into_iter().map(|kind| Node::Factor(FactorRule { kind, delivery_method: None, within })).collect()
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.node, f)
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authenticated => f.write_str("Authenticated"),
            Self::Factor(rule) => fmt::Debug::fmt(rule, f),
            Self::AcrAtLeast(level) => f.debug_tuple("AcrAtLeast").field(level).finish(),
            Self::MultiFactor => f.write_str("MultiFactor"),
            Self::MaxAge(age) => f.debug_tuple("MaxAge").field(age).finish(),
            Self::Role(role) => f.debug_tuple("Role").field(role).finish(),
            Self::Scope(scope) => f.debug_tuple("Scope").field(scope).finish(),
            Self::Permission { resource, action } => {
                f.debug_struct("Permission").field("resource", resource).field("action", action).finish()
            }
            Self::SecureSession => f.write_str("SecureSession"),
            Self::SameContext => f.write_str("SameContext"),
            Self::Predicate { description, .. } => f.debug_tuple("Predicate").field(description).finish(),
            Self::All(nodes) => f.debug_tuple("All").field(nodes).finish(),
            Self::Any(nodes) => f.debug_tuple("Any").field(nodes).finish(),
            Self::Misconfigured(reason) => f.debug_tuple("Misconfigured").field(reason).finish(),
        }
    }
}

/// The most a time may lie ahead of `now` and still count as "now": the largest
/// leeway a [`SessionLayer`](crate::SessionLayer) accepts. Verification already
/// refuses times beyond the layer's own leeway; this bound holds even for sessions
/// judged without it (built by hand, or by a custom authority).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

fn within(at: Option<SystemTime>, max: Option<Duration>, now: SystemTime) -> bool {
    match max {
        None => true,
        Some(max) => at.is_some_and(|at| match now.duration_since(at) {
            Ok(age) => age <= max,
            // Ahead of us by clock skew counts as now; further ahead is not an
            // authentication that happened, and would otherwise count as recent forever.
            Err(ahead) => ahead.duration() <= MAX_CLOCK_SKEW,
        }),
    }
}

const CLIENT_UNKNOWN: &str = "Requirement::same_context: the client address is unknown (serve with \
     `into_make_service_with_connect_info`, and check the trusted proxies)";

const SECURE_SESSION_RECENCY: Duration = Duration::from_secs(3600);

impl Node {
    fn needs_policy(&self) -> bool {
        match self {
            Self::Permission { .. } => true,
            Self::All(nodes) | Self::Any(nodes) => nodes.iter().any(Node::needs_policy),
            _ => false,
        }
    }

    fn is_met(
        &self,
        session: &Session,
        config: &GuardConfig,
        request: Option<&RequestContext<'_>>,
        now: SystemTime,
    ) -> bool {
        match self {
            Self::Authenticated => true,
            Self::Factor(rule) => session.factors().iter().any(|factor| {
                *factor.kind() == rule.kind
                    && rule.delivery_method.as_ref().is_none_or(|m| factor.delivery_method() == Some(m.as_str()))
                    && within(factor.last_authenticated_at(), rule.within, now)
            }),
            Self::AcrAtLeast(level) => {
                let required = config.acr_rank(level);
                let actual = config.session_acr(session).and_then(|acr| config.acr_rank(acr));
                matches!((actual, required), (Some(actual), Some(required)) if actual >= required)
            }
            Self::MultiFactor => is_multi_factor(session, config),
            Self::MaxAge(max_age) => within(session.auth_time(), Some(*max_age), now),
            Self::Role(role) => session.has_role(role),
            Self::Scope(scope) => session.has_scope(scope),
            Self::Permission { resource, action } => config.rbac_allows(session.roles(), resource, action),
            Self::SecureSession => secure_session(session, now),
            Self::SameContext => request
                .is_some_and(|request| context::compare(session, request, config.same_context()) == Verdict::Same),
            Self::Predicate { check, .. } => check(session),
            Self::All(nodes) => nodes.iter().all(|n| n.is_met(session, config, request, now)),
            Self::Any(nodes) => nodes.iter().any(|n| n.is_met(session, config, request, now)),
            Self::Misconfigured(_) => false,
        }
    }

    /// Explains a failing node, with the exact reason when diagnostics are on.
    fn explain(
        &self,
        session: &Session,
        config: &GuardConfig,
        request: Option<&RequestContext<'_>>,
        now: SystemTime,
    ) -> Shortfall {
        let mut shortfall = self.explain_part(session, config, request, now);
        if config.diagnostics() && !matches!(self, Self::All(_) | Self::Any(_)) {
            let reason = super::diagnose::reason(self, session, config, now);
            if let Some(step_up) = &mut shortfall.step_up {
                step_up.diagnostics.push(reason.clone());
            }
            if let Some(forbidden) = &mut shortfall.forbidden {
                forbidden.diagnostics.push(reason);
            }
        }
        shortfall
    }

    /// Explains a failing node. Only called on the (allocating) failure path.
    fn explain_part(
        &self,
        session: &Session,
        config: &GuardConfig,
        request: Option<&RequestContext<'_>>,
        now: SystemTime,
    ) -> Shortfall {
        let step_up = |s: StepUpRequired| Shortfall { step_up: Some(s), forbidden: None };
        let forbidden = |f: Forbidden| Shortfall { step_up: None, forbidden: Some(f) };
        match self {
            Self::Authenticated => Shortfall::default(),
            Self::Factor(rule) => step_up(StepUpRequired {
                acr_values: config.factor_acr(&rule.kind).map(str::to_owned).into_iter().collect(),
                max_age: rule.within,
                factors: vec![rule.kind.clone()],
                ..StepUpRequired::default()
            }),
            Self::AcrAtLeast(level) => {
                step_up(StepUpRequired { acr_values: config.acr_values_from(level), ..StepUpRequired::default() })
            }
            Self::MultiFactor => {
                step_up(StepUpRequired { acr_values: config.multi_factor_acr_values(), ..StepUpRequired::default() })
            }
            Self::MaxAge(max_age) => step_up(StepUpRequired { max_age: Some(*max_age), ..StepUpRequired::default() }),
            Self::SecureSession => step_up(StepUpRequired {
                acr_values: config.secure_session_acr().map(str::to_owned).into_iter().collect(),
                max_age: Some(SECURE_SESSION_RECENCY),
                ..StepUpRequired::default()
            }),
            Self::SameContext => match request.map(|request| context::compare(session, request, config.same_context()))
            {
                // A new authentication, now, from here: a session started in this
                // context records it.
                Some(Verdict::Differs { differs, .. }) => step_up(StepUpRequired {
                    max_age: Some(Duration::ZERO),
                    context: differs.into_iter().map(str::to_owned).collect(),
                    ..StepUpRequired::default()
                }),
                Some(Verdict::Same) => Shortfall::default(),
                Some(Verdict::ClientUnknown) | None => {
                    tracing::error!("same_context: the client address is unknown (serve with ConnectInfo, or check the trusted proxies)");
                    forbidden(Forbidden {
                        configuration_error: Some(CLIENT_UNKNOWN.to_owned()),
                        ..Forbidden::default()
                    })
                }
            },
            Self::Role(role) => forbidden(Forbidden { roles: vec![role.clone()], ..Forbidden::default() }),
            Self::Scope(scope) => forbidden(Forbidden { scopes: vec![scope.clone()], ..Forbidden::default() }),
            Self::Permission { resource, action } => {
                forbidden(Forbidden { permissions: vec![format!("{resource}:{action}")], ..Forbidden::default() })
            }
            Self::Predicate { description, .. } => {
                forbidden(Forbidden { predicates: vec![description.to_string()], ..Forbidden::default() })
            }
            Self::Misconfigured(reason) => {
                forbidden(Forbidden { configuration_error: Some((*reason).to_owned()), ..Forbidden::default() })
            }
            Self::All(nodes) => {
                // Authorization first: a step-up cannot grant a missing role.
                let mut out = Shortfall::default();
                for node in nodes.iter().filter(|n| !n.is_met(session, config, request, now)) {
                    let part = node.explain(session, config, request, now);
                    out.merge(part);
                }
                if out.forbidden.is_some() {
                    out.step_up = None;
                }
                out
            }
            Self::Any(nodes) => {
                // Any branch a step-up can cure is enough: offer those.
                let parts: Vec<Shortfall> = nodes.iter().map(|n| n.explain(session, config, request, now)).collect();
                let curable = parts.iter().any(|p| p.forbidden.is_none() && p.step_up.is_some());
                let mut out = Shortfall::default();
                for part in parts {
                    if !curable || part.forbidden.is_none() {
                        out.merge(part);
                    }
                }
                if curable {
                    out.forbidden = None;
                }
                out
            }
        }
    }
}

/// `amr` values and factor kinds that are context signals, not factors a user
/// presents (RFC 8176 `geo`: geolocation; `rba`: risk-based authentication).
const CONTEXT_SIGNALS: [&str; 2] = ["geo", "rba"];

/// The OpenID Provider Authentication Policy Extension's multi-factor policies,
/// which providers (Auth0) send as `acr`.
pub(super) const PAPE_MULTI_FACTOR: [&str; 2] = [
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor-physical",
];

/// The distinct factor kinds of `session` that are factors (context signals aside).
pub(super) fn distinct_factor_kinds(session: &Session) -> Vec<&FactorKind> {
    let mut kinds: Vec<&FactorKind> = Vec::new();
    for factor in session.factors() {
        if !CONTEXT_SIGNALS.contains(&factor.kind().as_str()) && !kinds.contains(&factor.kind()) {
            kinds.push(factor.kind());
        }
    }
    kinds
}

/// See [`Requirement::multi_factor`].
fn is_multi_factor(session: &Session, config: &GuardConfig) -> bool {
    session.amr().iter().any(|method| method == "mfa")
        || distinct_factor_kinds(session).len() >= 2
        || session.acr().is_some_and(|acr| config.is_multi_factor_acr(acr))
}

/// Stytch's factor categories for the secure-session rule.
fn category(kind: &FactorKind, delivery: Option<&str>) -> u8 {
    const EMAIL_OR_OAUTH: u8 = 1;
    const PHONE: u8 = 2;
    const STRONG: u8 = 4;
    // Constants of an open name type are compared, not matched as patterns.
    if [FactorKind::MAGIC_LINK, FactorKind::EMAIL_OTP, FactorKind::OAUTH, FactorKind::SSO].contains(kind) {
        EMAIL_OR_OAUTH
    } else if *kind == FactorKind::OTP {
        match delivery {
            Some("sms" | "whatsapp" | "voice") => PHONE,
            Some("email") => EMAIL_OR_OAUTH,
            _ => 0,
        }
    } else if *kind == FactorKind::WEBAUTHN || *kind == FactorKind::TOTP {
        STRONG
    } else {
        0
    }
}

fn secure_session(session: &Session, now: SystemTime) -> bool {
    let mut categories = 0u8;
    let mut recent = false;
    for factor in session.factors() {
        let bit = category(factor.kind(), factor.delivery_method());
        if bit != 0 {
            categories |= bit;
            recent |= within(factor.last_authenticated_at(), Some(SECURE_SESSION_RECENCY), now);
        }
    }
    categories.count_ones() >= 2 && recent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Factor;

    fn session(factors: Vec<Factor>) -> Session {
        Session::builder("u", "i").factors(factors).acr("mfa").role("editor").build()
    }

    fn ago(secs: u64) -> SystemTime {
        SystemTime::now() - Duration::from_secs(secs)
    }

    #[test]
    fn factors_and_recency() {
        let config = GuardConfig::default();
        let now = SystemTime::now();
        let s = session(vec![
            Factor::new(FactorKind::TOTP).with_last_authenticated_at(ago(600)),
            Factor::new(FactorKind::OTP).with_delivery_method("sms").with_last_authenticated_at(ago(10)),
        ]);
        assert!(Requirement::factor(FactorKind::TOTP).within(Duration::from_secs(900)).is_met(&s, &config, now));
        assert!(!Requirement::factor(FactorKind::TOTP).within(Duration::from_secs(300)).is_met(&s, &config, now));
        assert!(Requirement::from(Requirement::factor(FactorKind::OTP).delivered_by("sms")).is_met(&s, &config, now));
        assert!(!Requirement::from(Requirement::factor(FactorKind::OTP).delivered_by("email")).is_met(&s, &config, now));
        let either = Requirement::factor(FactorKind::WEBAUTHN)
            .within(Duration::from_secs(600))
            .or(Requirement::factor(FactorKind::TOTP).within(Duration::from_secs(300)));
        let shortfall = either.shortfall(&s, &config, now).unwrap();
        let step_up = shortfall.step_up.unwrap();
        assert_eq!(step_up.factors, [FactorKind::WEBAUTHN, FactorKind::TOTP]);
        assert_eq!(step_up.max_age, Some(Duration::from_secs(300)));
        assert!(shortfall.forbidden.is_none());
    }

    #[test]
    fn authorization_beats_step_up_in_all() {
        let config = GuardConfig::default();
        let now = SystemTime::now();
        let s = session(vec![]);
        let requirement = Requirement::factor(FactorKind::TOTP).and(Requirement::role("admin"));
        let shortfall = requirement.shortfall(&s, &config, now).unwrap();
        assert!(shortfall.step_up.is_none());
        assert_eq!(shortfall.forbidden.unwrap().roles, ["admin"]);
    }

    #[test]
    fn acr_levels() {
        let config = GuardConfig::default().with_acr_levels(["pwd", "mfa", "phr"]);
        let now = SystemTime::now();
        let s = session(vec![]);
        assert!(Requirement::acr_at_least("pwd").is_met(&s, &config, now));
        assert!(Requirement::acr_at_least("mfa").is_met(&s, &config, now));
        let shortfall = Requirement::acr_at_least("phr").shortfall(&s, &config, now).unwrap();
        assert_eq!(shortfall.step_up.unwrap().acr_values, ["phr"]);
        assert!(!Requirement::acr_at_least("unknown-level").is_met(&s, &config, now));
    }

    #[test]
    fn multi_factor_across_dialects() {
        let now = SystemTime::now();
        let levels = GuardConfig::default().with_acr_levels(["pwd", "mfa", "phr"]);
        let mfa = Requirement::multi_factor();
        let oidc = |amr: &[&str], acr: Option<&str>| {
            let factors = amr.iter().filter_map(|m| crate::profile::amr_factor(m)).collect();
            let builder =
                Session::builder("u", "i").amr(amr.iter().map(|m| (*m).to_owned()).collect()).factors(factors);
            match acr {
                Some(acr) => builder.acr(acr).build(),
                None => builder.build(),
            }
        };
        // amr
        assert!(mfa.is_met(&oidc(&["mfa"], None), &levels, now));
        assert!(mfa.is_met(&oidc(&["pwd", "otp"], None), &levels, now));
        assert!(mfa.is_met(&oidc(&["pwd", "hwk"], None), &levels, now));
        assert!(!mfa.is_met(&oidc(&["otp", "sms"], None), &levels, now), "two one-time codes are one kind");
        assert!(!mfa.is_met(&oidc(&["pwd", "geo"], None), &levels, now), "geolocation is no factor");
        assert!(!mfa.is_met(&oidc(&["hwk"], None), &levels, now));
        assert!(!mfa.is_met(&oidc(&["mca"], None), &levels, now));
        // acr
        assert!(mfa.is_met(&oidc(&[], Some("phr")), &levels, now));
        assert!(!mfa.is_met(&oidc(&[], Some("pwd")), &levels, now));
        assert!(!mfa.is_met(&oidc(&[], Some("mfa")), &GuardConfig::default(), now), "no levels configured");
        assert!(mfa.is_met(&oidc(&[], Some(PAPE_MULTI_FACTOR[0])), &GuardConfig::default(), now));
        let keycloak = GuardConfig::default().with_acr_levels(["0", "1", "2"]).with_multi_factor_acr("2");
        assert!(mfa.is_met(&oidc(&[], Some("2")), &keycloak, now));
        assert!(!mfa.is_met(&oidc(&[], Some("1")), &keycloak, now));
        let shortfall = mfa.shortfall(&oidc(&[], Some("1")), &keycloak, now).unwrap();
        assert_eq!(shortfall.step_up.unwrap().acr_values, ["2"]);
        // Stytch factors
        let stytch = |kinds: &[FactorKind]| session(kinds.iter().cloned().map(Factor::new).collect());
        assert!(mfa.is_met(&stytch(&[FactorKind::EMAIL_OTP, FactorKind::TOTP]), &levels, now));
        assert!(!mfa.is_met(&stytch(&[FactorKind::TOTP, FactorKind::TOTP]), &GuardConfig::default(), now));
    }

    #[test]
    fn secure_session_rule() {
        let now = SystemTime::now();
        let config = GuardConfig::default();
        let email = Factor::new(FactorKind::MAGIC_LINK).with_last_authenticated_at(ago(7200));
        let totp_recent = Factor::new(FactorKind::TOTP).with_last_authenticated_at(ago(60));
        let totp_old = Factor::new(FactorKind::TOTP).with_last_authenticated_at(ago(7200));
        let secure = Requirement::secure_session();
        assert!(secure.is_met(&session(vec![email.clone(), totp_recent.clone()]), &config, now));
        assert!(!secure.is_met(&session(vec![email.clone(), totp_old]), &config, now));
        assert!(!secure.is_met(&session(vec![totp_recent.clone(), totp_recent]), &config, now));
        assert!(!secure.is_met(&session(vec![email]), &config, now));
    }
}
