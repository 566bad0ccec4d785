//! Route guards: what a route requires of a session, checked per request.
//!
//! Put a [`Guard`] on a route with `route_layer` (so unknown paths stay `404`
//! instead of `401`), or on a group of routes, or take [`Require<R>`] as a handler
//! argument. Both use the same [`Requirement`] evaluation and the same challenges.
//!
//! **Which to choose.** A `Guard` keeps the rule next to the routing table, guards
//! a whole nested router at once, and works for any tower service. `Require<R>`
//! keeps the rule next to the handler's code and hands it the session in one
//! argument, but needs a named type per requirement (see [`requirement!`](crate::requirement)).

mod config;
#[cfg(feature = "axum")]
mod extract;
mod policy;
mod requirement;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use config::GuardConfig;
#[cfg(feature = "axum")]
pub use extract::{Require, RequirementSpec};
pub use policy::RbacPolicy;
pub use requirement::{FactorRequirement, Forbidden, Requirement, Shortfall, StepUpRequired};

use crate::challenge::{safe_return_to, ChallengeContext, Rejection};
use crate::error::{AuthError, AuthErrorKind};
use crate::service::{LayerHandle, RequestCredential};
use crate::session::{AuthState, Session};

/// A tower [`Layer`] that lets a request through only when its session meets a
/// [`Requirement`]; otherwise it answers with a challenge (see
/// [`DefaultChallenge`](crate::DefaultChallenge)).
///
/// Needs a [`SessionLayer`](crate::SessionLayer) in front of it (a `500` names the
/// missing layer otherwise).
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use tower_stepup::{FactorKind, Guard, Requirement};
///
/// let five_minutes = Duration::from_secs(300);
/// let app: Router = Router::new()
///     .route("/me", get(|| async { "me" }).route_layer(Guard::authenticated()))
///     .route(
///         "/transfer",
///         get(|| async { "sent" }).route_layer(Guard::new(Requirement::any([
///             Requirement::factor(FactorKind::WebAuthn).within(five_minutes),
///             Requirement::factor(FactorKind::Totp).within(five_minutes),
///         ]))),
///     );
/// // .layer(session_layer) goes on the outer router.
/// ```
#[derive(Clone, Debug)]
pub struct Guard {
    requirement: Arc<Requirement>,
}

impl Guard {
    /// A guard for `requirement`.
    pub fn new(requirement: impl Into<Requirement>) -> Self {
        Self { requirement: Arc::new(requirement.into()) }
    }
    /// A guard that requires any valid session.
    pub fn authenticated() -> Self {
        Self::new(Requirement::authenticated())
    }
    /// The requirement.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }
}

impl<S> Layer<S> for Guard {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService { inner, guard: self.clone() }
    }
}

/// The [`Service`] made by [`Guard`].
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
}

impl<S, B, ResBody> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match check(&self.guard.requirement, request.extensions(), request.headers(), request.uri()) {
            Ok(_) => GuardFuture { kind: GuardKind::Allowed { future: self.inner.call(request) } },
            Err(response) => GuardFuture { kind: GuardKind::Refused { response: Some(response.map(ResBody::from)) } },
        }
    }
}

pin_project! {
    /// Response future of [`GuardService`].
    pub struct GuardFuture<F, ResBody> {
        #[pin]
        kind: GuardKind<F, ResBody>,
    }
}

pin_project! {
    #[project = GuardKindProj]
    enum GuardKind<F, ResBody> {
        Allowed { #[pin] future: F },
        Refused { response: Option<Response<ResBody>> },
    }
}

impl<F, ResBody, E> Future for GuardFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            GuardKindProj::Allowed { future } => future.poll(cx),
            GuardKindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled after completion: a contract violation by the caller.
                None => Poll::Pending,
            },
        }
    }
}

impl<F, ResBody> std::fmt::Debug for GuardFuture<F, ResBody> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardFuture").finish_non_exhaustive()
    }
}

/// Checks a requirement against the request's [`AuthState`]. `Ok` carries the
/// session; `Err` the challenge response (with the typed reason in its extensions).
pub(crate) fn check(
    requirement: &Requirement,
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> Result<Session, Response<Bytes>> {
    let (Some(LayerHandle(layer)), Some(state)) = (extensions.get::<LayerHandle>(), extensions.get::<AuthState>())
    else {
        return Err(missing_layer());
    };
    let config = &layer.guards;
    let rejection = match state {
        AuthState::Authenticated(session) => {
            let now = SystemTime::now();
            if requirement.is_met(session, config, now) {
                return Ok(session.clone());
            }
            match requirement.shortfall(session, config, now) {
                None => return Ok(session.clone()),
                Some(shortfall) => match (shortfall.forbidden, shortfall.step_up) {
                    (Some(forbidden), _) => Rejection::Forbidden(forbidden),
                    (None, Some(step_up)) => Rejection::StepUp(step_up),
                    (None, None) => return Ok(session.clone()),
                },
            }
        }
        AuthState::Anonymous => Rejection::Unauthenticated,
        AuthState::Invalid(error) if error.kind().is_server_fault() => Rejection::Unavailable(error.clone()),
        AuthState::Invalid(error) => Rejection::InvalidCredential(error.clone()),
    };
    Err(refuse(&layer.realm, config, rejection, extensions, headers, uri))
}

/// Renders a refusal with the configured challenge and attaches the reason.
pub(crate) fn refuse(
    realm: &str,
    config: &GuardConfig,
    rejection: Rejection,
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> Response<Bytes> {
    let return_to = uri.path_and_query().map(http::uri::PathAndQuery::as_str).and_then(safe_return_to).unwrap_or("/");
    let context = ChallengeContext {
        realm,
        source: extensions.get::<RequestCredential>().and_then(|c| c.source),
        accept: headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
        return_to,
        login_url: config.login_url.as_deref(),
        step_up_url: config.step_up_url.as_deref(),
    };
    let mut response = config.challenge.respond(&rejection, &context);
    let error = match &rejection {
        Rejection::InvalidCredential(error) | Rejection::SessionEnded(error) | Rejection::Unavailable(error) => {
            Some(error.clone())
        }
        _ => None,
    };
    tracing::debug!(?rejection, "guard refused the request");
    if let Some(error) = error {
        response.extensions_mut().insert(error);
    }
    response.extensions_mut().insert(rejection);
    response
}

pub(crate) fn missing_layer() -> Response<Bytes> {
    tracing::error!("a tower-stepup guard ran without a SessionLayer in front of it");
    let mut response = Response::new(Bytes::from_static(
        b"tower-stepup: this route has a guard but no SessionLayer runs before it; add `.layer(session_layer)` to the Router",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.extensions_mut().insert(AuthError::new(AuthErrorKind::MissingLayer));
    response
}
