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

mod body;
mod config;
mod context;
mod diagnose;
#[cfg(feature = "axum")]
mod extract;
mod findings;
mod permission;
mod requirement;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use body::GuardBody;
pub use config::GuardConfig;
pub use context::{ContextMismatch, RequestContext, SameContext, DEFAULT_IPV4_PREFIX, DEFAULT_IPV6_PREFIX};
#[cfg(feature = "axum")]
pub use extract::{Require, RequirementSpec};
pub use findings::{Dialect, FindingKind, RequirementFinding};
pub use permission::OrganizationScope;
pub use requirement::{FactorRequirement, Requirement};

use crate::error::AuthErrorKind;
use crate::rbac::AuthorizationCheck;
use crate::rejection::Rejection;
use crate::session::{AuthState, Session};
use crate::state::{missing_layer, Confirmed, CookieUpdate, LayerHandle, LayerState, Unconfirmed};

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
///             Requirement::factor(FactorKind::WEBAUTHN).within(five_minutes),
///             Requirement::factor(FactorKind::TOTP).within(five_minutes),
///         ]))),
///     );
/// // .layer(session_layer) goes on the outer router.
/// ```
#[derive(Clone, Debug)]
pub struct Guard {
    requirement: Arc<Requirement>,
    freshness: Option<Duration>,
    fail_open: bool,
    /// Whether the requirement names a permission (known at construction, so the
    /// hot path does not walk the requirement).
    needs_policy: bool,
    organization: Option<Arc<OrganizationScope>>,
    /// `(resource_id, action)` of the `authorization_check` sent on confirmation.
    authorization: Option<Arc<(String, String)>>,
}

impl Guard {
    /// A guard for `requirement`.
    pub fn new(requirement: impl Into<Requirement>) -> Self {
        let requirement = requirement.into();
        Self {
            needs_policy: requirement.needs_policy(),
            requirement: Arc::new(requirement),
            freshness: None,
            fail_open: false,
            organization: None,
            authorization: None,
        }
    }
    /// The route is about one organization, which the request names (Stytch B2B
    /// tenancy): a session that is not a member of it is refused with `403` (the
    /// problem body's `organization` names the organization asked for) before the
    /// requirement is judged and before any issuer call, as Stytch's SDKs throw
    /// `tenancy_mismatch` before looking at a role. So is a session of no
    /// organization (a consumer session), and a request that names no organization
    /// (or two, in two headers).
    ///
    /// Use it on every route whose URL or headers pick an organization: the roles in
    /// a member's session are roles in *their own* organization, and without this an
    /// admin of organization A would pass `Requirement::permission(…)` on
    /// `/orgs/B/…`. With [`with_authorization_check`](Self::with_authorization_check)
    /// the issuer is asked about this organization too.
    ///
    /// Not available to the [`Require`] extractor; use a guard.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use axum::{routing::delete, Router};
    /// use tower_stepup::{Guard, OrganizationScope, Requirement};
    ///
    /// let app: Router = Router::new().route(
    ///     "/orgs/{org_id}/documents/{id}",
    ///     delete(|| async { "deleted" }).route_layer(
    ///         Guard::new(Requirement::permission("documents", "delete"))
    ///             .for_organization(OrganizationScope::path_param("org_id")),
    ///     ),
    /// );
    /// ```
    #[must_use]
    pub fn for_organization(mut self, scope: OrganizationScope) -> Self {
        self.organization = Some(Arc::new(scope));
        self
    }
    /// Has the issuer authorize `action` on `resource_id` when it confirms the
    /// session: Stytch's `authorization_check` on `sessions/authenticate` (B2B: in
    /// the organization of [`for_organization`](Self::for_organization), else the
    /// member's own). The issuer judges with the roles it holds *now* and the
    /// project's current policy, so a role revoked a second ago is refused here,
    /// while a local [`Requirement::permission`] trusts the roles in the JWT.
    ///
    /// Makes the guard [`fresh`](Self::fresh) unless a window was set with
    /// [`fresh_within`](Self::fresh_within) (answers are then reused per session
    /// *and* check). The route is let through only when the issuer's `verdict` says
    /// `authorized` and the requirement holds too; an issuer refusal (`403`, or a
    /// tenancy mismatch) is answered `403` naming the permission (or organization),
    /// never a step-up, and never ends the session. An authority that cannot check
    /// authorization fails closed (`503`).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use axum::{routing::post, Router};
    /// use tower_stepup::Guard;
    ///
    /// let app: Router = Router::new().route(
    ///     "/documents/purge",
    ///     post(|| async { "purged" })
    ///         .route_layer(Guard::authenticated().with_authorization_check("documents", "delete")),
    /// );
    /// ```
    #[must_use]
    pub fn with_authorization_check(mut self, resource_id: impl Into<String>, action: impl Into<String>) -> Self {
        self.authorization = Some(Arc::new((resource_id.into(), action.into())));
        self.freshness.get_or_insert(Duration::ZERO);
        self
    }
    /// Confirms the session with the issuer on every request before letting it
    /// through, so a session revoked at the issuer is refused at once. Concurrent
    /// requests with one token share one call (with one session, where the
    /// authority [confirms whole sessions](crate::Authority::confirms_whole_session),
    /// as Stytch does). Needs an authority on the layer
    /// ([`SessionLayerBuilder::with_authority`](crate::SessionLayerBuilder::with_authority)).
    ///
    /// What is confirmed is the credential that produced the locally verified
    /// session (the JWT, or the opaque token). The requirement is then judged on the
    /// session as the issuer returns it (with factors added by a step-up), and
    /// renewed tokens are written to the cookies. An answer about any other session
    /// is refused (`401`), as are errors about the credential (expired, another
    /// audience); only issuer faults are `503`.
    #[must_use]
    pub fn fresh(self) -> Self {
        self.fresh_within(Duration::ZERO)
    }
    /// Like [`fresh`](Self::fresh), but a confirmation at most `window` old is
    /// enough: one issuer call per token (per session, where the authority
    /// confirms whole sessions) per window, however many requests.
    #[must_use]
    pub fn fresh_within(mut self, window: Duration) -> Self {
        self.freshness = Some(window);
        self
    }
    /// When the issuer cannot be reached, judge the locally verified session instead
    /// of answering `503`. A session the issuer *says* is gone is still refused.
    ///
    /// # ⚠️ Warning
    /// Only for routes where serving a possibly revoked session during an issuer
    /// outage is acceptable. Sensitive routes should fail closed (the default).
    #[must_use]
    pub fn fail_open(mut self) -> Self {
        self.fail_open = true;
        self
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

impl<S> GuardService<S> {
    /// The inner service.
    ///
    /// ```
    /// use tower::{service_fn, Layer};
    /// use tower_stepup::Guard;
    ///
    /// let inner = service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// let mut guarded = Guard::authenticated().layer(inner);
    /// let _: &_ = guarded.get_ref();
    /// let _: &mut _ = guarded.get_mut();
    /// let _inner = guarded.into_inner();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// The inner service, without the guard.
    pub fn into_inner(self) -> S {
        self.inner
    }
    /// The guard.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}

impl<S, B, ResBody> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let guard = &self.guard;
        let mut authorization = None;
        if guard.organization.is_some() || guard.authorization.is_some() || guard.needs_policy {
            let prepared = permission::prepare(
                guard.organization.as_deref(),
                guard.authorization.as_deref(),
                guard.needs_policy,
                &mut request,
            );
            match prepared {
                permission::Prepared::Ready(check) => authorization = check,
                permission::Prepared::Refused(response) => return GuardFuture::refused(response),
                permission::Prepared::Load(source, check) => {
                    // The policy from Stytch is not loaded yet, or due: load it, then
                    // judge (the path the SDKs take on every check after 5 minutes).
                    let inner = self.take_inner();
                    let guard = self.guard.clone();
                    let arrival = Instant::now();
                    return GuardFuture::confirming(Box::pin(async move {
                        if let Err(error) = source.load(arrival).await {
                            let layer = request.extensions().get::<LayerHandle>().map(|h| Arc::clone(&h.layer));
                            let response = match layer {
                                Some(layer) => refuse(&layer, Rejection::Unavailable(error), &request),
                                None => missing_layer(),
                            };
                            return Ok(response.map(GuardBody::refusal));
                        }
                        match decide(&guard, request) {
                            Next::Call(request) => {
                                let mut inner = inner;
                                inner.call(request).await.map(|response| response.map(GuardBody::route))
                            }
                            Next::Refuse(response) => Ok(response.map(GuardBody::refusal)),
                            Next::Confirm { layer, window, session, request } => {
                                confirm_then_call(layer, guard, window, session, request, inner, check).await
                            }
                        }
                    }));
                }
            }
        }
        match decide(&self.guard, request) {
            Next::Call(request) => GuardFuture::allowed(self.inner.call(request)),
            Next::Refuse(response) => GuardFuture::refused(response),
            Next::Confirm { layer, window, session, request } => {
                let inner = self.take_inner();
                let guard = self.guard.clone();
                GuardFuture::confirming(Box::pin(confirm_then_call(
                    layer,
                    guard,
                    window,
                    session,
                    request,
                    inner,
                    authorization,
                )))
            }
        }
    }
}

impl<S: Clone> GuardService<S> {
    /// The inner service for a future that outlives this call (the ready clone goes,
    /// a fresh clone stays, as tower's docs advise).
    fn take_inner(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// What the guard does with a request, once any policy it needs is loaded.
enum Next<B> {
    /// Let it through.
    Call(Request<B>),
    /// Refuse it with this response.
    Refuse(Response<Bytes>),
    /// Fresh routes: confirm the session with the issuer first.
    Confirm { layer: Arc<LayerState>, window: Duration, session: Session, request: Request<B> },
}

fn decide<B>(guard: &Guard, request: Request<B>) -> Next<B> {
    let Some(window) = guard.freshness else {
        return match check(&guard.requirement, request.extensions(), request.headers(), request.uri()) {
            Ok(_) => Next::Call(request),
            Err(response) => Next::Refuse(response),
        };
    };
    // The local verdict is not final here: a mismatch is reported (if at all)
    // once, on the confirmed session.
    let local = judge_request(&guard.requirement, request.extensions(), request.headers(), request.uri(), false);
    // Fresh routes: anything refused locally (no session, bad token) is refused
    // without asking the issuer. A session that falls short locally is still
    // confirmed: the issuer may know of a step-up the token does not show yet.
    let session = match (local, request.extensions().get::<AuthState>()) {
        (Ok(session), _) => session,
        (Err(_), Some(AuthState::Authenticated(session))) => session.clone(),
        (Err(response), _) => return Next::Refuse(response),
    };
    let Some(LayerHandle { layer, .. }) = request.extensions().get::<LayerHandle>().cloned() else {
        return Next::Refuse(missing_layer());
    };
    Next::Confirm { layer, window, session, request }
}

/// The fresh-route path: [confirm](LayerState::confirm) the session with the
/// issuer (with the guard's `authorization_check`, if any), judge the confirmed
/// session, call the route, write renewed cookies.
async fn confirm_then_call<S, B, ResBody>(
    layer: Arc<LayerState>,
    guard: Guard,
    window: Duration,
    local_session: Session,
    mut request: Request<B>,
    mut inner: S,
    authorization: Option<AuthorizationCheck>,
) -> Result<Response<GuardBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    let source = request.extensions().get::<LayerHandle>().and_then(|h| h.source);
    let confirmed =
        layer.confirm(local_session, request.headers(), source, window, guard.fail_open, authorization.as_ref()).await;
    let Confirmed { session, renewed } = match confirmed {
        Ok(confirmed) => confirmed,
        Err(Unconfirmed::NoAuthority) => return Ok(no_authority().map(GuardBody::refusal)),
        Err(Unconfirmed::Refused(rejection)) => return Ok(refuse(&layer, rejection, &request).map(GuardBody::refusal)),
    };
    let context = RequestContext::of(request.extensions(), request.headers(), layer.guards().same_context());
    let verdict = guard.requirement.judge(&session, layer.guards(), &context);
    if let Some(rejection) = &verdict {
        notify_mismatch(&layer, rejection, &session, &context);
    }
    let mut response = match verdict {
        None => {
            request.extensions_mut().insert(AuthState::Authenticated(session));
            inner.call(request).await?.map(GuardBody::route)
        }
        Some(rejection) => refuse(&layer, rejection, &request).map(GuardBody::refusal),
    };
    if let Some(renewed) = renewed {
        layer.write_cookies(response.headers_mut(), &CookieUpdate::Renew(renewed));
    }
    Ok(response)
}

pin_project! {
    /// Response future of [`GuardService`]: the route's own future when the session
    /// passed locally, a ready refusal, or (fresh routes only) a boxed confirmation
    /// with the issuer.
    ///
    /// # Panics
    ///
    /// When polled again after it completed (a contract violation by the caller, as
    /// for tower-http's futures).
    pub struct GuardFuture<F, ResBody, E> {
        #[pin]
        kind: GuardKind<F, ResBody, E>,
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    #[project = GuardKindProj]
    #[project_replace = GuardKindReplace]
    enum GuardKind<F, ResBody, E> {
        Allowed { #[pin] future: F },
        Refused { response: Option<Response<Bytes>> },
        Confirming { future: BoxFuture<Result<Response<GuardBody<ResBody>>, E>> },
        Done,
    }
}

impl<F, ResBody, E> GuardFuture<F, ResBody, E> {
    fn allowed(future: F) -> Self {
        Self { kind: GuardKind::Allowed { future } }
    }
    fn refused(response: Response<Bytes>) -> Self {
        Self { kind: GuardKind::Refused { response: Some(response) } }
    }
    fn confirming(future: BoxFuture<Result<Response<GuardBody<ResBody>>, E>>) -> Self {
        Self { kind: GuardKind::Confirming { future } }
    }
}

impl<F, ResBody, E> Future for GuardFuture<F, ResBody, E>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<GuardBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let output = match kind.as_mut().project() {
            GuardKindProj::Allowed { future } => ready!(future.poll(cx)).map(|response| response.map(GuardBody::route)),
            GuardKindProj::Refused { response } => match response.take() {
                Some(response) => Ok(response.map(GuardBody::refusal)),
                None => panic!("GuardFuture polled after completion"),
            },
            GuardKindProj::Confirming { future } => ready!(future.as_mut().poll(cx)),
            // A contract violation by the caller: say so rather than hang.
            GuardKindProj::Done => panic!("GuardFuture polled after completion"),
        };
        // Drops the finished future now, and makes a further poll a clear panic.
        kind.project_replace(GuardKind::Done);
        Poll::Ready(output)
    }
}

impl<F, ResBody, E> std::fmt::Debug for GuardFuture<F, ResBody, E> {
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
    judge_request(requirement, extensions, headers, uri, true)
}

/// [`check`], telling the [`SameContext`] hook of a mismatch when `final_verdict`
/// (not for the local look of a `fresh()` route, which judges again).
fn judge_request(
    requirement: &Requirement,
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    uri: &http::Uri,
    final_verdict: bool,
) -> Result<Session, Response<Bytes>> {
    let (Some(LayerHandle { layer, .. }), Some(state)) =
        (extensions.get::<LayerHandle>(), extensions.get::<AuthState>())
    else {
        return Err(missing_layer());
    };
    let rejection = match state {
        AuthState::Authenticated(session) => {
            let context = RequestContext::of(extensions, headers, layer.guards().same_context());
            match requirement.judge(session, layer.guards(), &context) {
                None => return Ok(session.clone()),
                Some(rejection) => {
                    if final_verdict {
                        notify_mismatch(layer, &rejection, session, &context);
                    }
                    rejection
                }
            }
        }
        AuthState::Anonymous => Rejection::Unauthenticated,
        AuthState::Invalid(error) if error.kind() == AuthErrorKind::SessionRevoked => {
            Rejection::SessionEnded(error.clone())
        }
        AuthState::Invalid(error) if error.kind().is_server_fault() => Rejection::Unavailable(error.clone()),
        AuthState::Invalid(error) => Rejection::InvalidCredential(error.clone()),
    };
    Err(layer.refuse(rejection, extensions, headers, uri))
}

/// Tells the app's hook when `rejection` asks for a step-up because the request
/// comes from another context than `session` began in.
fn notify_mismatch(layer: &LayerState, rejection: &Rejection, session: &Session, context: &RequestContext<'_>) {
    let Rejection::StepUp(step_up) = rejection else { return };
    if step_up.context.is_empty() {
        return;
    }
    let same_context = layer.guards().same_context();
    if let Some(mismatch) = ContextMismatch::of(session, context, same_context) {
        tracing::info!(differs = ?mismatch.differs, "session used from another context; step-up required");
        same_context.notify(&mismatch);
    }
}

fn refuse<B>(layer: &LayerState, rejection: Rejection, request: &Request<B>) -> Response<Bytes> {
    layer.refuse(rejection, request.extensions(), request.headers(), request.uri())
}

fn no_authority() -> Response<Bytes> {
    tracing::error!("a fresh() guard needs an authority on the SessionLayer");
    let mut response = Response::new(Bytes::from_static(
        b"tower-stepup: this route's guard is fresh() but the SessionLayer has no authority; configure one with `with_authority`",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    type Refusal = GuardFuture<std::future::Ready<Result<Response<()>, ()>>, (), ()>;

    #[test]
    #[should_panic(expected = "GuardFuture polled after completion")]
    fn a_refusal_polled_after_completion_panics() {
        let mut future = std::pin::pin!(Refusal::refused(Response::new(Bytes::new())));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        let _ = future.as_mut().poll(&mut cx);
    }

    #[test]
    #[should_panic(expected = "GuardFuture polled after completion")]
    fn an_allowed_future_polled_after_completion_panics() {
        let mut future = std::pin::pin!(Refusal::allowed(std::future::ready(Ok(Response::new(())))));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        let _ = future.as_mut().poll(&mut cx);
    }
}
