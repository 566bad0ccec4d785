//! The refusal vocabulary: why a request was refused ([`Rejection`]) and what would
//! have satisfied the route ([`StepUpRequired`], [`Forbidden`], [`Shortfall`]).
//!
//! Depends only on the session model and the errors, so requirements (which produce
//! these), challenges (which render them) and the layer state (which attaches them to
//! responses) all build on it without depending on each other.

use std::time::Duration;

use crate::error::AuthError;
use crate::session::FactorKind;

/// Why a guard refused a request. Attached to the response extensions of every
/// refusal (together with the [`AuthError`], when there is one), so apps can log or
/// rewrite it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No credential was sent.
    Unauthenticated,
    /// The credential was rejected (malformed, expired, bad signature, …).
    InvalidCredential(AuthError),
    /// The issuer reports the session ended (revoked, expired, unknown).
    SessionEnded(AuthError),
    /// The session is valid but not strong or recent enough: a step-up would help.
    StepUp(StepUpRequired),
    /// The session lacks authorization; no step-up would help.
    Forbidden(Forbidden),
    /// The issuer or its keys could not be reached; try again later.
    Unavailable(AuthError),
}

/// Why a session falls short of a [`Requirement`](crate::Requirement): what a step-up would fix and what
/// no step-up can fix.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shortfall {
    /// Authentication a step-up can provide (`None` when none would help).
    pub step_up: Option<StepUpRequired>,
    /// Authorization the session lacks (roles, scopes, permissions, predicates).
    pub forbidden: Option<Forbidden>,
}

/// What a step-up must achieve: the RFC 9470 parameters and the factors that would
/// satisfy the route.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUpRequired {
    /// Acceptable `acr` values, in order of preference (RFC 9470 `acr_values`).
    pub acr_values: Vec<String>,
    /// Maximum age of the authentication (RFC 9470 `max_age`).
    pub max_age: Option<Duration>,
    /// Factor kinds that would satisfy the route.
    pub factors: Vec<FactorKind>,
    /// Set by [`Requirement::same_context`](crate::Requirement::same_context): what
    /// differs from the context the session began in (`ip_address`, `user_agent`),
    /// or was not recorded. Empty otherwise.
    pub context: Vec<String>,
    /// The exact reasons, for developers: filled only with diagnostics on
    /// ([`GuardConfig::with_diagnostics`](crate::GuardConfig::with_diagnostics)).
    pub diagnostics: Vec<String>,
}

/// What authorization the session lacks.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forbidden {
    /// Missing scopes (RFC 6750 `scope`).
    pub scopes: Vec<String>,
    /// Missing roles.
    pub roles: Vec<String>,
    /// Missing permissions as `resource:action`.
    pub permissions: Vec<String>,
    /// Failed custom predicates, by description.
    pub predicates: Vec<String>,
    /// The organization the route is about, when the session is not one of its
    /// members (Stytch B2B tenancy mismatch): see
    /// [`Guard::for_organization`](crate::Guard::for_organization).
    pub organization: Option<String>,
    /// Set when the requirement itself is misconfigured (e.g. an empty
    /// [`Requirement::all_factors`](crate::Requirement::all_factors)): no session can pass until the server's
    /// configuration is fixed. See [`Requirement::validate`](crate::Requirement::validate).
    pub configuration_error: Option<String>,
    /// The exact reasons, for developers: filled only with diagnostics on
    /// ([`GuardConfig::with_diagnostics`](crate::GuardConfig::with_diagnostics)).
    pub diagnostics: Vec<String>,
}

fn push_unique<T: PartialEq>(into: &mut Vec<T>, items: impl IntoIterator<Item = T>) {
    for item in items {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

impl StepUpRequired {
    pub(crate) fn merge(&mut self, other: StepUpRequired) {
        push_unique(&mut self.acr_values, other.acr_values);
        push_unique(&mut self.factors, other.factors);
        push_unique(&mut self.context, other.context);
        push_unique(&mut self.diagnostics, other.diagnostics);
        // Re-authenticating now satisfies every bound, so the tightest one is right.
        self.max_age = match (self.max_age, other.max_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

impl Forbidden {
    pub(crate) fn merge(&mut self, other: Forbidden) {
        push_unique(&mut self.scopes, other.scopes);
        push_unique(&mut self.roles, other.roles);
        push_unique(&mut self.permissions, other.permissions);
        push_unique(&mut self.predicates, other.predicates);
        push_unique(&mut self.diagnostics, other.diagnostics);
        self.configuration_error = self.configuration_error.take().or(other.configuration_error);
        self.organization = self.organization.take().or(other.organization);
    }
}

impl Rejection {
    /// The exact reasons for this refusal, for developers: what a layer with
    /// diagnostics on ([`GuardConfig::with_diagnostics`](crate::GuardConfig::with_diagnostics))
    /// puts into problem bodies and logs. Empty for a step-up or forbidden refusal
    /// judged without diagnostics; for a rejected credential, the error's
    /// [diagnostic](AuthError::diagnostic), else its description and detail.
    ///
    /// ```
    /// use tower_stepup::{AuthError, AuthErrorKind, Rejection};
    ///
    /// let rejected = Rejection::InvalidCredential(AuthError::with_detail(AuthErrorKind::MissingClaim, "typ"));
    /// assert_eq!(rejected.diagnostics(), ["the token lacks a required claim (typ)"]);
    /// assert!(Rejection::Unauthenticated.diagnostics().is_empty());
    /// ```
    pub fn diagnostics(&self) -> Vec<String> {
        match self {
            Self::Unauthenticated => Vec::new(),
            Self::InvalidCredential(error) | Self::SessionEnded(error) | Self::Unavailable(error) => {
                vec![error.diagnostic().map_or_else(|| error.to_string(), str::to_owned)]
            }
            Self::StepUp(step_up) => step_up.diagnostics.clone(),
            Self::Forbidden(forbidden) => forbidden.diagnostics.clone(),
        }
    }
}

impl Shortfall {
    /// Adds what `part` asks for to what is already asked for.
    pub(crate) fn merge(&mut self, part: Shortfall) {
        if let Some(step_up) = part.step_up {
            match &mut self.step_up {
                Some(existing) => existing.merge(step_up),
                None => self.step_up = Some(step_up),
            }
        }
        if let Some(forbidden) = part.forbidden {
            match &mut self.forbidden {
                Some(existing) => existing.merge(forbidden),
                None => self.forbidden = Some(forbidden),
            }
        }
    }

    /// The refusal for a session with this shortfall: forbidden wins over a step-up
    /// (no step-up would let it through).
    pub(crate) fn into_rejection(self) -> Rejection {
        match (self.forbidden, self.step_up) {
            (Some(forbidden), _) => Rejection::Forbidden(forbidden),
            (None, Some(step_up)) => Rejection::StepUp(step_up),
            // Unmet, yet nothing to ask for (e.g. an empty `any`): fail closed.
            (None, None) => Rejection::Forbidden(Forbidden::default()),
        }
    }
}
