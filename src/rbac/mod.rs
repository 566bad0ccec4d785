//! Role-based access control as Stytch defines it: a policy of roles that grant
//! actions on resources ([`RbacPolicy`]), loaded from Stytch and kept fresh
//! ([`StytchRbac`]), and the `authorization_check` a [`fresh`](crate::Guard::fresh)
//! guard can have the issuer answer ([`AuthorizationCheck`], [`AuthorizationVerdict`]).
//!
//! Sources: stytch-node 14 (`lib/shared/rbac_local.ts`, `lib/b2c/rbac_local.ts`,
//! `lib/b2b/rbac_local.ts`, `lib/b2c/sessions.ts`, `lib/b2b/sessions.ts`) and
//! Stytch's API reference (RBAC policy; sessions authenticate; 403 errors).

mod cache;
mod check;
mod policy;
mod stytch;

use std::sync::Arc;
use std::time::Instant;

pub use check::{AuthorizationCheck, AuthorizationVerdict};
pub use policy::RbacPolicy;
pub use stytch::{StytchRbac, DEFAULT_RBAC_REFRESH};

pub(crate) use cache::PolicyCache;

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::rejection::Forbidden;

/// Where guards find the policy: given in code, or loaded from Stytch.
#[derive(Clone, Debug)]
pub(crate) enum RbacSource {
    Fixed(Arc<RbacPolicy>),
    Stytch(Arc<PolicyCache>),
}

impl RbacSource {
    /// The policy to judge by now without waiting; `None` when it must be loaded
    /// (or refreshed) first, see [`load`](Self::load).
    pub(crate) fn ready(&self, now: Instant) -> Option<Arc<RbacPolicy>> {
        match self {
            Self::Fixed(policy) => Some(Arc::clone(policy)),
            Self::Stytch(cache) => cache.ready(now),
        }
    }

    /// The policy loaded so far (due for a refresh or not): what a requirement is
    /// judged by once [`load`](Self::load) returned.
    pub(crate) fn current(&self) -> Option<Arc<RbacPolicy>> {
        match self {
            Self::Fixed(policy) => Some(Arc::clone(policy)),
            Self::Stytch(cache) => cache.loaded(),
        }
    }

    /// Loads or refreshes the policy (see [`PolicyCache::get`]).
    pub(crate) async fn load(&self, arrival: Instant) -> Result<(), AuthError> {
        match self {
            Self::Fixed(_) => Ok(()),
            Self::Stytch(cache) => cache.get(arrival).await.map(drop),
        }
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        match self {
            Self::Fixed(_) => Ok(()),
            Self::Stytch(cache) => cache.check(),
        }
    }
}

/// What an issuer's refusal of an authorization check lacked: the organization on a
/// tenancy mismatch, else the permission.
pub(crate) fn refusal(kind: AuthErrorKind, check: Option<&AuthorizationCheck>) -> Forbidden {
    match (kind, check) {
        (AuthErrorKind::TenancyMismatch, Some(check)) => Forbidden {
            organization: Some(check.organization_id().unwrap_or_default().to_owned()),
            ..Forbidden::default()
        },
        (_, Some(check)) => Forbidden { permissions: vec![check.permission()], ..Forbidden::default() },
        (_, None) => Forbidden::default(),
    }
}
