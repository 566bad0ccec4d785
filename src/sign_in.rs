//! [`SignIn`]: the handler's handle on starting a session, so that the cookies of
//! a sign-in are written by the same writer as every other session cookie.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponseParts, ResponseParts};
use http::request::Parts;

use crate::authority::RenewedTokens;
use crate::error::AuthError;
use crate::extract::SessionRejection;
use crate::session::Session;
use crate::state::{CookieUpdate, LayerHandle, LayerState};

/// Starts a browser session from the tokens of a sign-in: an axum extractor for
/// the route that finishes a login (any request, signed in or not).
///
/// [`complete`](Self::complete) checks the tokens the issuer answered (Stytch's
/// `otps/authenticate`, `magic_links/authenticate`, … with
/// `session_duration_minutes`) and returns the response part that writes them as
/// the session cookies, with the layer's [`CookieAttributes`](crate::CookieAttributes):
/// the same names, `Domain`, `Path` and [`CookieMode`](crate::CookieMode) the layer
/// later renews and clears them with. Extraction fails (`500`) only without a
/// [`SessionLayer`](crate::SessionLayer) in front of the route.
///
/// # Example
///
/// ```no_run
/// use axum::{http::StatusCode, response::Redirect, routing::post, Json, Router};
/// use tower_stepup::{RenewedTokens, SignIn, SignedIn};
///
/// /// The app called Stytch's `otps/authenticate` with the code the user typed and
/// /// `session_duration_minutes`, and got back `session_jwt` and `session_token`.
/// async fn finish_sign_in(
///     sign_in: SignIn,
///     Json(stytch): Json<serde_json::Value>,
/// ) -> Result<(SignedIn, Redirect), StatusCode> {
///     let tokens = RenewedTokens::new()
///         .with_session_jwt(stytch["session_jwt"].as_str().unwrap_or_default())
///         .with_session_token(stytch["session_token"].as_str().unwrap_or_default());
///     match sign_in.complete(tokens).await {
///         Ok(signed_in) => Ok((signed_in, Redirect::to("/dashboard"))),
///         Err(_) => Err(StatusCode::UNAUTHORIZED),
///     }
/// }
/// let app: Router = Router::new().route("/sign-in/done", post(finish_sign_in)); // plus `.layer(session_layer)`
/// ```
#[derive(Clone)]
pub struct SignIn {
    layer: Arc<LayerState>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").finish_non_exhaustive()
    }
}

impl SignIn {
    /// Checks the tokens of a new session and returns the response part that
    /// writes them as cookies.
    ///
    /// The JWT is verified locally with the layer's keys, issuers, audiences and
    /// claim profile, and cached (the next request with it is a cache hit); the
    /// session token is asked about at the authority (one call), and left out
    /// without one. When both are given they must be one session.
    ///
    /// # Errors
    ///
    /// Tokens that do not verify (their kind says why), a JWT and a session token
    /// of different sessions ([`InvalidClaim`](crate::AuthErrorKind::InvalidClaim)),
    /// a session that already ended ([`SessionRevoked`](crate::AuthErrorKind::SessionRevoked)),
    /// no usable token ([`MissingClaim`](crate::AuthErrorKind::MissingClaim)), or the
    /// issuer's failure to answer about the session token. Nothing is written then.
    pub async fn complete(&self, tokens: RenewedTokens) -> Result<SignedIn, AuthError> {
        let (session, tokens) = self.layer.learn_sign_in(&tokens).await?;
        Ok(SignedIn { session, tokens, layer: self.layer.clone() })
    }
}

/// A started session: the session, and (as a response part) its cookies; see
/// [`SignIn::complete`]. `Debug` never shows the tokens.
#[must_use]
pub struct SignedIn {
    session: Session,
    tokens: RenewedTokens,
    layer: Arc<LayerState>,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn").field("session", &self.session).field("tokens", &self.tokens).finish_non_exhaustive()
    }
}

impl SignedIn {
    /// The new session, as its tokens describe it.
    pub fn session(&self) -> &Session {
        &self.session
    }
}

impl IntoResponseParts for SignedIn {
    type Error = Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.layer.write_cookies(parts.headers_mut(), &CookieUpdate::Renew(self.tokens));
        Ok(parts)
    }
}

/// Fails only without a [`SessionLayer`](crate::SessionLayer) in front.
impl<S: Send + Sync> FromRequestParts<S> for SignIn {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<LayerHandle>() {
            Some(handle) => Ok(Self { layer: handle.layer.clone() }),
            None => Err(SessionRejection { response: crate::state::missing_layer() }),
        }
    }
}
