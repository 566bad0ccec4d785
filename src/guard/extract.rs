//! [`Require<R>`]: a requirement as a handler argument.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use super::{check, Requirement};
use crate::session::Session;

/// A requirement named by a type, for [`Require<R>`]. Define one with
/// [`requirement!`](crate::requirement).
pub trait RequirementSpec: Send + Sync + 'static {
    /// The requirement, built once.
    fn requirement() -> &'static Requirement;
}

/// Defines a type implementing [`RequirementSpec`], whose requirement is built once
/// (on first use) from the given expression.
///
/// ```
/// use std::time::Duration;
/// use tower_stepup::{requirement, FactorKind, Requirement};
///
/// requirement!(pub RecentTotp = Requirement::factor(FactorKind::TOTP).within(Duration::from_secs(300)));
/// requirement!(Admin = Requirement::role("admin"));
/// ```
#[macro_export]
macro_rules! requirement {
    ($vis:vis $name:ident = $requirement:expr) => {
        #[doc = concat!("The requirement `", stringify!($requirement), "`.")]
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $crate::RequirementSpec for $name {
            fn requirement() -> &'static $crate::Requirement {
                static REQUIREMENT: ::std::sync::OnceLock<$crate::Requirement> = ::std::sync::OnceLock::new();
                REQUIREMENT.get_or_init(|| ::std::convert::Into::into($requirement))
            }
        }
    };
}

/// Extracts the session if it meets `R`'s requirement; otherwise rejects with the
/// same challenge a [`Guard`](crate::Guard) would send.
///
/// It dereferences to the [`Session`]; [`session`](Self::session) borrows it and
/// [`into_session`](Self::into_session) takes it. (The requirement is a type
/// parameter, so the value carries a marker for it: its fields stay private rather
/// than make every handler pattern spell the marker out.)
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use tower_stepup::{requirement, Require, Requirement, Session};
///
/// requirement!(Admin = Requirement::role("admin"));
///
/// async fn admin_panel(admin: Require<Admin>) -> String {
///     format!("welcome, {}", admin.subject())
/// }
///
/// async fn audit(admin: Require<Admin>) -> String {
///     let session: Session = admin.into_session();
///     format!("audit by {}", session.subject())
/// }
/// let app: Router = Router::new().route("/admin", get(admin_panel)).route("/audit", get(audit));
/// ```
pub struct Require<R> {
    session: Session,
    requirement: PhantomData<fn() -> R>,
}

impl<R> Require<R> {
    /// The session, which meets `R`'s requirement.
    pub fn session(&self) -> &Session {
        &self.session
    }
    /// Takes the session out.
    pub fn into_session(self) -> Session {
        self.session
    }
}

impl<R> Deref for Require<R> {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl<R> Clone for Require<R> {
    fn clone(&self) -> Self {
        Self { session: self.session.clone(), requirement: PhantomData }
    }
}

impl<R> std::fmt::Debug for Require<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Require").field(&self.session).finish()
    }
}

impl<R: RequirementSpec, S: Send + Sync> FromRequestParts<S> for Require<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let unavailable =
            super::permission::ensure_policy(R::requirement(), &parts.extensions, &parts.headers, &parts.uri);
        if let Some(response) = unavailable.await {
            return Err(response.map(axum::body::Body::from).into_response());
        }
        check(R::requirement(), &parts.extensions, &parts.headers, &parts.uri)
            .map(|session| Require { session, requirement: PhantomData })
            .map_err(|response| response.map(axum::body::Body::from).into_response())
    }
}
