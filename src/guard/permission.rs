//! The RBAC side of a guard: which organization a route is about (B2B tenancy),
//! loading the RBAC policy before judging, and the `authorization_check` a fresh
//! guard sends.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, Request, Response};

use crate::rbac::{AuthorizationCheck, RbacSource};
use crate::rejection::{Forbidden, Rejection};
use crate::session::{AuthState, Session};
use crate::state::{missing_layer, LayerHandle};

/// Where a route finds the id of the organization it is about, for Stytch B2B
/// tenancy: see [`Guard::for_organization`](crate::Guard::for_organization).
///
/// A B2B member's roles are roles in *their own* organization. A route such as
/// `/orgs/{org_id}/invoices` is about the organization in its path, and must refuse
/// a member of any other one, whatever their roles say (Stytch's SDKs throw
/// `tenancy_mismatch` before looking at a role).
///
/// # Example
///
/// ```
/// use http::HeaderName;
/// use tower_stepup::OrganizationScope;
///
/// let from_header = OrganizationScope::header(HeaderName::from_static("x-organization-id"));
/// # #[cfg(feature = "axum")]
/// let from_path = OrganizationScope::path_param("org_id");
/// # let _ = from_header;
/// ```
#[derive(Clone, Debug)]
pub struct OrganizationScope {
    from: From,
}

#[derive(Clone, Debug)]
enum From {
    Header(HeaderName),
    #[cfg(feature = "axum")]
    PathParam(Arc<str>),
}

impl OrganizationScope {
    /// The organization id is the value of this request header.
    pub fn header(name: HeaderName) -> Self {
        Self { from: From::Header(name) }
    }
    /// The organization id is this path parameter of the matched axum route (e.g.
    /// `org_id` of `/orgs/{org_id}/invoices`), percent-decoded.
    #[cfg(feature = "axum")]
    pub fn path_param(name: impl Into<String>) -> Self {
        Self { from: From::PathParam(Arc::from(name.into())) }
    }

    /// The organization id the request names, if any.
    fn find<B>(&self, request: &mut Request<B>) -> Option<String> {
        match &self.from {
            From::Header(name) => {
                let mut values = request.headers().get_all(name).iter();
                let value = values.next()?;
                // Two values name no single organization.
                if values.next().is_some() {
                    return None;
                }
                value.to_str().ok().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
            }
            #[cfg(feature = "axum")]
            From::PathParam(name) => path_param(request, name),
        }
    }
}

/// Reads a path parameter of the matched route: axum keeps them in the request
/// extensions, readable through its `RawPathParams` extractor (which resolves at once).
#[cfg(feature = "axum")]
fn path_param<B>(request: &mut Request<B>, name: &str) -> Option<String> {
    use axum::extract::{FromRequestParts, RawPathParams};
    use futures_util::FutureExt as _;

    let (mut parts, ()) = Request::new(()).into_parts();
    parts.extensions = std::mem::take(request.extensions_mut());
    let params = RawPathParams::from_request_parts(&mut parts, &()).now_or_never().and_then(Result::ok);
    *request.extensions_mut() = parts.extensions;
    params?.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_owned()).filter(|v| !v.is_empty())
}

/// What the guard does before judging the requirement.
pub(super) enum Prepared {
    /// Judge now; send this `authorization_check` if the route is fresh.
    Ready(Option<AuthorizationCheck>),
    /// Load (or refresh) the RBAC policy first, then judge.
    Load(RbacSource, Option<AuthorizationCheck>),
    /// Refused already (tenancy), or no layer.
    Refused(Response<Bytes>),
}

/// Tenancy, the `authorization_check` to send, and whether the policy must be loaded.
pub(super) fn prepare<B>(
    organization: Option<&OrganizationScope>,
    authorization: Option<&(String, String)>,
    needs_policy: bool,
    request: &mut Request<B>,
) -> Prepared {
    let Some(LayerHandle { layer, .. }) = request.extensions().get::<LayerHandle>().cloned() else {
        return Prepared::Refused(missing_layer());
    };
    let session = match request.extensions().get::<AuthState>() {
        Some(AuthState::Authenticated(session)) => Some(session.clone()),
        // Anonymous or invalid: the requirement's own check answers (401, 503, …).
        _ => None,
    };
    let mut route_organization = None;
    if let (Some(scope), Some(session)) = (organization, &session) {
        match tenancy(scope, request, session) {
            Ok(id) => route_organization = Some(id),
            Err(rejection) => {
                let response = layer.refuse(rejection, request.extensions(), request.headers(), request.uri());
                return Prepared::Refused(response);
            }
        }
    }
    let check = match (authorization, &session) {
        (Some((resource, action)), Some(session)) => {
            let check = AuthorizationCheck::new(resource.clone(), action.clone());
            // B2B: the organization the route is about, else the member's own.
            let organization = route_organization.or_else(|| session.organization().map(|o| o.id.clone()));
            Some(match organization {
                Some(id) => check.in_organization(id),
                None => check,
            })
        }
        _ => None,
    };
    match layer.guards().rbac() {
        Some(source) if needs_policy && source.ready(Instant::now()).is_none() => Prepared::Load(source.clone(), check),
        _ => Prepared::Ready(check),
    }
}

/// The organization the request names, when `session` belongs to it; otherwise the
/// refusal: `403` naming the organization (Stytch's `tenancy_mismatch`), also for a
/// session of no organization at all (a consumer session on a B2B route).
fn tenancy<B>(scope: &OrganizationScope, request: &mut Request<B>, session: &Session) -> Result<String, Rejection> {
    let Some(requested) = scope.find(request) else {
        tracing::debug!(?scope, "the request names no organization; refused");
        let forbidden = Forbidden { predicates: vec![NO_ORGANIZATION.to_owned()], ..Forbidden::default() };
        return Err(Rejection::Forbidden(forbidden));
    };
    if session.organization().is_some_and(|own| own.id == requested) {
        return Ok(requested);
    }
    tracing::debug!("tenancy mismatch: the session belongs to another organization");
    Err(Rejection::Forbidden(Forbidden { organization: Some(requested), ..Forbidden::default() }))
}

/// The refusal of a request whose organization is not in the request at all.
const NO_ORGANIZATION: &str = "the request names the organization the route is about";

/// For the [`Require`](crate::Require) extractor: loads the RBAC policy a
/// permission needs before it is judged; the refusal (`503`) when it cannot be.
#[cfg(feature = "axum")]
pub(super) async fn ensure_policy(
    requirement: &crate::guard::Requirement,
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> Option<Response<Bytes>> {
    if !requirement.needs_policy() {
        return None;
    }
    let LayerHandle { layer, .. } = extensions.get::<LayerHandle>()?;
    let source = layer.guards().rbac()?;
    if source.ready(Instant::now()).is_some() {
        return None;
    }
    let error = source.load(Instant::now()).await.err()?;
    Some(layer.refuse(Rejection::Unavailable(error), extensions, headers, uri))
}
