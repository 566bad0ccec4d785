//! axum extractors: [`Session`], `Option<Session>` and [`AuthState`].

use std::sync::OnceLock;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;

use crate::error::AuthError;
use crate::guard::{check, Requirement};
use crate::rejection::Rejection;
use crate::session::{AuthState, Session};
use crate::state::LayerHandle;

/// Why a [`Session`] could not be extracted: the same challenge response a
/// [`Guard::authenticated`](crate::Guard::authenticated) would send (`401` with an
/// RFC 6750 `WWW-Authenticate`, a redirect for browsers when a login page is
/// configured, `503` when the issuer is unavailable), or a `500` naming the missing
/// [`SessionLayer`](crate::SessionLayer).
#[derive(Debug)]
pub struct SessionRejection {
    pub(crate) response: http::Response<Bytes>,
}

impl SessionRejection {
    /// The typed reason (absent only when the layer is missing).
    pub fn rejection(&self) -> Option<&Rejection> {
        self.response.extensions().get::<Rejection>()
    }
    /// The error, when a credential was rejected or the layer is missing.
    pub fn error(&self) -> Option<&AuthError> {
        self.response.extensions().get::<AuthError>()
    }
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error() {
            Some(error) => write!(f, "not authenticated: {error}"),
            None => f.write_str("not authenticated"),
        }
    }
}

impl std::error::Error for SessionRejection {}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.response.map(axum::body::Body::from)
    }
}

fn authenticated() -> &'static Requirement {
    static AUTHENTICATED: OnceLock<Requirement> = OnceLock::new();
    AUTHENTICATED.get_or_init(Requirement::authenticated)
}

/// Extracts the verified session, or rejects with a challenge.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use tower_stepup::Session;
///
/// async fn me(session: Session) -> String {
///     format!("hello {}", session.subject())
/// }
/// let app: Router = Router::new().route("/me", get(me)); // plus `.layer(session_layer)`
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The hot path: a verified session behind the layer. `Requirement::authenticated`
        // is met by every session, so the guard's work (the request context, the
        // clock) is for the other states only.
        if let Some(AuthState::Authenticated(session)) = parts.extensions.get::<AuthState>() {
            if parts.extensions.get::<LayerHandle>().is_some() {
                return Ok(session.clone());
            }
        }
        check(authenticated(), &parts.extensions, &parts.headers, &parts.uri)
            .map_err(|response| SessionRejection { response })
    }
}

/// `Option<Session>`: `None` for anonymous requests *and* for rejected credentials
/// (a public route should not fail because of a stale cookie); still a `500` when
/// the layer is missing. Extract [`AuthState`] to tell the two apart.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(<AuthState as FromRequestParts<S>>::from_request_parts(parts, state).await?.session().cloned())
    }
}

/// Extracts the [`AuthState`] itself; rejects only when the layer is missing.
impl<S: Send + Sync> FromRequestParts<S> for AuthState {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthState>() {
            Some(state) => Ok(state.clone()),
            None => Err(SessionRejection { response: crate::state::missing_layer() }),
        }
    }
}
