//! [`SessionControl`]: the handler's handle on the current session: end it (a
//! logout), complete a step-up, and manage the user's other sessions ("sign out
//! other devices").

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponseParts, ResponseParts};
use http::request::Parts;
use http::HeaderMap;

use crate::authority::RenewedTokens;
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

impl SessionControl {
    /// Completes a step-up the app finished at the issuer, in one call: checks the
    /// new tokens, teaches the layer the stepped-up session, and returns the
    /// response part that writes them.
    ///
    /// `tokens` are what the issuer answered, e.g. Stytch's `otps/authenticate` or
    /// `totps/authenticate` called with this session's `session_token`: a new
    /// `session_jwt` and the `session_token`. The JWT is verified locally with
    /// the layer's keys, issuers, audiences and claim profile and cached, so the
    /// very next request with it passes the guards the step-up was for; the
    /// session token is asked about at the authority (one call) and left out
    /// without one. Fresh routes ask the issuer again instead of reusing what it
    /// said before the step-up.
    ///
    /// The returned [`SteppedUp`] writes the cookies of a cookie client with the
    /// layer's [`CookieAttributes`](crate::CookieAttributes) (the same `Domain`,
    /// `Path` and [`CookieMode`](crate::CookieMode) as every other cookie it
    /// writes); a bearer client gets no cookies, and
    /// [`SteppedUp::bearer_tokens`] hands the app the tokens to return to it.
    ///
    /// # Errors
    ///
    /// Tokens that do not verify (their kind says why), that name another user or
    /// another session than this one ([`InvalidClaim`](crate::AuthErrorKind::InvalidClaim):
    /// the app was handed someone else's tokens), of a session that ended
    /// ([`SessionRevoked`](crate::AuthErrorKind::SessionRevoked)), no usable token
    /// ([`MissingClaim`](crate::AuthErrorKind::MissingClaim)), or the issuer's
    /// failure to answer about the session token. Nothing is learnt or written then.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use axum::{http::StatusCode, routing::post, Json, Router};
    /// use tower_stepup::{RenewedTokens, SessionControl, SteppedUp};
    ///
    /// /// The app called Stytch's `totps/authenticate` with the session's token and
    /// /// got back `session_jwt` and `session_token`.
    /// async fn finish_step_up(
    ///     control: SessionControl,
    ///     Json(stytch): Json<serde_json::Value>,
    /// ) -> Result<(SteppedUp, StatusCode), StatusCode> {
    ///     let tokens = RenewedTokens::new()
    ///         .with_session_jwt(stytch["session_jwt"].as_str().unwrap_or_default())
    ///         .with_session_token(stytch["session_token"].as_str().unwrap_or_default());
    ///     match control.complete_step_up(tokens).await {
    ///         Ok(stepped_up) => Ok((stepped_up, StatusCode::NO_CONTENT)),
    ///         Err(_) => Err(StatusCode::UNAUTHORIZED),
    ///     }
    /// }
    /// let app: Router = Router::new().route("/step-up/done", post(finish_step_up)); // plus `.layer(session_layer)`
    /// ```
    pub async fn complete_step_up(&self, tokens: RenewedTokens) -> Result<SteppedUp, AuthError> {
        let (session, tokens) = self.layer.learn_step_up(&self.session, &tokens).await?;
        let cookies = (self.source == Some(CredentialSource::Cookie)).then(|| self.layer.clone());
        Ok(SteppedUp { session, tokens, cookies })
    }

    /// The live sessions of this session's user (B2B: the member, in this
    /// organization), this one included (compare [`Session::session_id`] with
    /// [`session`](Self::session)'s): for a "your devices" page. Stytch:
    /// `GET /v1/sessions?user_id=` (B2B `GET /v1/b2b/sessions`). Sessions this layer
    /// already refuses are left out.
    ///
    /// # Errors
    ///
    /// [`Unsupported`](crate::AuthErrorKind::Unsupported) without an authority that
    /// lists sessions and answers about whole sessions (a [`StytchAuthority`](crate::StytchAuthority)
    /// does) or for a session without an id; the issuer's failure; an
    /// [`AuthorityResponse`](crate::AuthErrorKind::AuthorityResponse) when the issuer
    /// listed a session of another user.
    pub async fn sessions(&self) -> Result<Vec<Session>, AuthError> {
        self.layer.sessions_of(&self.session).await
    }

    /// Ends one session of this session's user, by its id (from
    /// [`sessions`](Self::sessions)): refused by every route behind this layer from
    /// the next request on, and revoked at the issuer. Only the user's own
    /// sessions can be ended: the id is looked up in the user's list first, so an
    /// id of another user's session is [`UnknownSession`](crate::AuthErrorKind::UnknownSession)
    /// and nothing is revoked. To end the current session, prefer
    /// [`revoke`](Self::revoke), and clear its cookies.
    ///
    /// # Errors
    ///
    /// As [`sessions`](Self::sessions), [`UnknownSession`](crate::AuthErrorKind::UnknownSession),
    /// and the issuer's failure to revoke (the session is refused here all the same).
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), AuthError> {
        self.layer.revoke_session_of(&self.session, session_id).await
    }

    /// "Sign out other devices": ends every session of this session's user but
    /// this one; returns how many. Each is refused by this layer from the next
    /// request on, then revoked at the issuer.
    ///
    /// # Errors
    ///
    /// As [`sessions`](Self::sessions); the first issuer failure to revoke, after
    /// every session was tried (all of them are refused here all the same).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use axum::{http::StatusCode, routing::post, Router};
    /// use tower_stepup::{AuthErrorKind, Guard, SessionControl};
    ///
    /// async fn sign_out_others(control: SessionControl) -> Result<String, StatusCode> {
    ///     match control.revoke_other_sessions().await {
    ///         Ok(ended) => Ok(format!("{ended} other sessions ended")),
    ///         Err(error) if error.kind().is_server_fault() => Err(StatusCode::SERVICE_UNAVAILABLE),
    ///         Err(_) => Err(StatusCode::BAD_REQUEST),
    ///     }
    /// }
    /// // A step-up before such a change is wise: `Guard::new(…).fresh()`.
    /// let app: Router = Router::new()
    ///     .route("/sessions/others/revoke", post(sign_out_others).route_layer(Guard::authenticated().fresh()));
    /// ```
    pub async fn revoke_other_sessions(&self) -> Result<usize, AuthError> {
        self.layer.revoke_other_sessions_of(&self.session).await
    }
}

/// A completed step-up: the stepped-up session, and (as a response part) its new
/// cookies; see [`SessionControl::complete_step_up`].
///
/// Return it from the handler (it is an [`IntoResponseParts`]): for a cookie client
/// it sets the session cookies with the layer's attributes; for a bearer client it
/// writes nothing, and [`bearer_tokens`](Self::bearer_tokens) are for the app to
/// hand back. `Debug` never shows the tokens.
#[must_use]
pub struct SteppedUp {
    session: Session,
    tokens: RenewedTokens,
    /// The layer, for a client whose session travels in cookies.
    cookies: Option<Arc<LayerState>>,
}

impl std::fmt::Debug for SteppedUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteppedUp")
            .field("session", &self.session)
            .field("tokens", &self.tokens)
            .field("sets_cookies", &self.cookies.is_some())
            .finish()
    }
}

impl SteppedUp {
    /// The session after the step-up, as the new tokens describe it.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The new tokens, for a bearer client (which gets no cookies) to be handed
    /// back in the response body; `None` for a cookie client, whose tokens go in
    /// the cookies only (never in a body a script could read).
    pub fn bearer_tokens(&self) -> Option<&RenewedTokens> {
        self.cookies.is_none().then_some(&self.tokens)
    }
}

impl IntoResponseParts for SteppedUp {
    type Error = Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Some(layer) = &self.cookies {
            layer.write_cookies(parts.headers_mut(), &CookieUpdate::Renew(self.tokens));
        }
        Ok(parts)
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
