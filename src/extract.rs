//! axum extractors: [`Session`] and `Option<Session>`.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, StatusCode};

use crate::challenge::BearerChallenge;
use crate::error::{AuthError, AuthErrorKind};
use crate::service::LayerHandle;
use crate::session::{AuthState, Session};

/// Why a [`Session`] could not be extracted: no credential, a rejected one, or no
/// [`SessionLayer`](crate::SessionLayer) in front of the handler.
///
/// Responds `401` with an RFC 6750 `WWW-Authenticate` challenge (`400` for a
/// malformed request, `503` when the issuer is unavailable), or `500` naming the
/// missing layer. The [`AuthError`] (if any) rides in the response extensions.
#[derive(Debug, Clone)]
pub struct SessionRejection {
    error: Option<AuthError>,
    realm: Option<String>,
}

impl SessionRejection {
    /// The reason, or `None` when the request simply had no credential.
    pub fn error(&self) -> Option<&AuthError> {
        self.error.as_ref()
    }
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(error) => write!(f, "not authenticated: {error}"),
            None => f.write_str("not authenticated: no credential"),
        }
    }
}

impl std::error::Error for SessionRejection {}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        if let Some(kind) = self.error.as_ref().map(AuthError::kind) {
            if kind == AuthErrorKind::MissingLayer {
                let mut response = (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "tower-stepup: the Session extractor needs a SessionLayer in front of this route; add `.layer(session_layer)` to the Router",
                )
                    .into_response();
                response.extensions_mut().insert(AuthError::new(kind));
                return response;
            }
            if kind.is_server_fault() {
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], kind.description()).into_response();
                response.extensions_mut().insert(AuthError::new(kind));
                return response;
            }
        }
        let realm = self.realm.as_deref().unwrap_or("api");
        let (status, challenge) = BearerChallenge::for_error(realm, self.error.as_ref());
        let mut response = (status, [(header::WWW_AUTHENTICATE, challenge.to_header())]).into_response();
        if let Some(error) = self.error {
            response.extensions_mut().insert(error);
        }
        response
    }
}

fn state_of(parts: &Parts) -> Result<&AuthState, SessionRejection> {
    parts
        .extensions
        .get::<AuthState>()
        .ok_or(SessionRejection { error: Some(AuthErrorKind::MissingLayer.into()), realm: None })
}

fn realm_of(parts: &Parts) -> Option<String> {
    parts.extensions.get::<LayerHandle>().map(|handle| handle.0.realm.clone())
}

/// Extracts the verified session, or rejects with `401` and a `WWW-Authenticate`
/// challenge.
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
        match state_of(parts)? {
            AuthState::Authenticated(session) => Ok(session.clone()),
            AuthState::Anonymous => Err(SessionRejection { error: None, realm: realm_of(parts) }),
            AuthState::Invalid(error) => Err(SessionRejection { error: Some(error.clone()), realm: realm_of(parts) }),
        }
    }
}

/// `Option<Session>`: `None` for anonymous requests *and* for rejected credentials
/// (a public route should not fail because of a stale cookie); still a `500` when
/// the layer is missing. Read [`AuthState`] to tell the two apart.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(state_of(parts)?.session().cloned())
    }
}

/// Extracts the [`AuthState`] itself (never rejects once the layer is installed).
impl<S: Send + Sync> FromRequestParts<S> for AuthState {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        state_of(parts).cloned()
    }
}
