//! [`SessionControl`]: the handler's handle on the current session, to end it (a
//! logout).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponseParts, ResponseParts};
use http::request::Parts;
use http::HeaderMap;

use crate::credential::CredentialSource;
use crate::error::AuthError;
use crate::extract::SessionRejection;
use crate::session::Session;
use crate::state::{CookieUpdate, LayerHandle, LayerState};

/// The current session, with the power to end it: an axum extractor for logout
/// routes.
///
/// Extracted like [`Session`] (the same `401` challenge without a session, a `500`
/// without a [`SessionLayer`](crate::SessionLayer)). [`revoke`](Self::revoke) ends
/// the session at the issuer and in the layer; [`cleared_cookies`](Self::cleared_cookies)
/// is the response part that clears the session cookies of a cookie client (with
/// the layer's [`CookieAttributes`](crate::CookieAttributes), so the same `Domain`
/// and `Path`), and nothing for a bearer client. Return it whatever `revoke` said:
/// the session is refused locally either way.
///
/// # Example
///
/// ```no_run
/// use axum::{http::StatusCode, routing::post, Router};
/// use tower_stepup::SessionControl;
///
/// async fn logout(control: SessionControl) -> (tower_stepup::ClearSessionCookies, StatusCode) {
///     let status = match control.revoke().await {
///         Ok(()) => StatusCode::NO_CONTENT,
///         // The issuer did not answer: the session is still refused here.
///         Err(_) => StatusCode::SERVICE_UNAVAILABLE,
///     };
///     (control.cleared_cookies(), status)
/// }
/// let app: Router = Router::new().route("/logout", post(logout)); // plus `.layer(session_layer)`
/// ```
#[derive(Clone)]
pub struct SessionControl {
    session: Session,
    layer: Arc<LayerState>,
    source: Option<CredentialSource>,
    /// The request's headers: the credential to revoke is read from them only
    /// when `revoke` is called.
    headers: HeaderMap,
}

impl std::fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the headers: they hold the credential.
        f.debug_struct("SessionControl")
            .field("session", &self.session)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl SessionControl {
    /// The session this handle controls.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Ends the session: from the next request on, every route behind this layer
    /// refuses it (whichever of its credentials is presented where the authority
    /// answers about whole sessions, as Stytch does; else the presented credential),
    /// and the authority revokes it at the issuer: Stytch `sessions/revoke`
    /// (`member_session_id` for B2B), RFC 7009 when
    /// [`IntrospectionAuthority::with_revocation_url`](crate::IntrospectionAuthority::with_revocation_url)
    /// is set, nothing for an authority that cannot revoke (local only). Without an
    /// authority, the layer itself remembers the logout (by session id, else by
    /// token) until the session would have ended.
    ///
    /// # Errors
    ///
    /// The issuer's failure (e.g. [`AuthorityUnavailable`](crate::AuthErrorKind::AuthorityUnavailable),
    /// to answer `503`); the session is refused locally all the same.
    pub async fn revoke(&self) -> Result<(), AuthError> {
        self.layer.revoke(&self.session, &self.headers).await
    }

    /// The response part clearing the session cookies, for a client that sent
    /// its session in cookies; empty for a bearer client.
    pub fn cleared_cookies(&self) -> ClearSessionCookies {
        ClearSessionCookies { layer: (self.source == Some(CredentialSource::Cookie)).then(|| self.layer.clone()) }
    }
}

/// Clears the session cookies (`Max-Age=0`, the layer's `Domain` and `Path`) of a
/// response; see [`SessionControl::cleared_cookies`].
#[derive(Clone)]
#[must_use]
pub struct ClearSessionCookies {
    layer: Option<Arc<LayerState>>,
}

impl std::fmt::Debug for ClearSessionCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClearSessionCookies").field("clears", &self.layer.is_some()).finish()
    }
}

impl IntoResponseParts for ClearSessionCookies {
    type Error = Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Some(layer) = &self.layer {
            layer.write_cookies(parts.headers_mut(), &CookieUpdate::Clear);
        }
        Ok(parts)
    }
}

/// Rejects like [`Session`].
impl<S: Send + Sync> FromRequestParts<S> for SessionControl {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = <Session as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        let Some(handle) = parts.extensions.get::<LayerHandle>() else {
            return Err(SessionRejection { response: crate::state::missing_layer() });
        };
        Ok(Self { session, layer: handle.layer.clone(), source: handle.source, headers: parts.headers.clone() })
    }
}
