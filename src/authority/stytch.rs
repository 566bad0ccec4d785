//! Stytch's session API: `POST /v1/sessions/authenticate` (B2B: `/v1/b2b/…`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AuthorityCredential, AuthorityFuture, Confirmation, RenewedTokens, DEFAULT_AUTHORITY_TIMEOUT};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::http_client::{self, IssuerClient};
use crate::profile::{parse_rfc3339, StytchSessionObject};
use crate::secret::Secret;
use crate::session::{Organization, Session, TokenKind};
use crate::stytch::StytchProject;

/// Largest accepted response body: sessions with many factors stay far below.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Confirms sessions with Stytch (`POST /v1/sessions/authenticate`, HTTP Basic
/// `project_id:secret`). Renews sessions: the response's new `session_jwt` and
/// `session_token` are written back to the client's cookies.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_stepup::{StytchAuthority, StytchProject};
///
/// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
///     .with_secret("secret-test-…");
/// let authority = StytchAuthority::new(&project)?
///     .with_timeout(Duration::from_secs(1))?
///     .with_session_duration(Duration::from_secs(60 * 60));
/// # Ok::<(), tower_stepup::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StytchAuthority {
    http: IssuerClient,
    authenticate_url: String,
    revoke_url: String,
    project_id: String,
    issuer: String,
    secret: Secret,
    b2b: bool,
    session_duration_minutes: Option<u64>,
}

#[derive(Serialize)]
struct AuthenticateRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_jwt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_duration_minutes: Option<u64>,
}

#[derive(Deserialize)]
struct AuthenticateResponse {
    session: Option<StytchSessionObject>,
    member_session: Option<StytchSessionObject>,
    session_jwt: Option<String>,
    session_token: Option<String>,
    organization: Option<StytchOrganization>,
}

#[derive(Deserialize)]
struct StytchOrganization {
    organization_id: String,
    organization_slug: Option<String>,
}

#[derive(Deserialize)]
struct StytchError {
    error_type: Option<String>,
    request_id: Option<String>,
}

impl StytchAuthority {
    /// An authority for `project`, which must carry its secret
    /// ([`StytchProject::with_secret`]).
    pub fn new(project: &StytchProject) -> Result<Self, ConfigError> {
        let secret = project.secret().cloned().ok_or(ConfigError::Missing("Stytch project secret"))?;
        Ok(Self {
            http: IssuerClient::new(DEFAULT_AUTHORITY_TIMEOUT)?,
            authenticate_url: project.authenticate_url(),
            revoke_url: project.revoke_url(),
            project_id: project.project_id().to_owned(),
            issuer: project.issuers().first().cloned().unwrap_or_default(),
            secret,
            b2b: project.is_b2b(),
            session_duration_minutes: None,
        })
    }

    /// Timeout of each call (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        self.http = self.http.with_timeout(timeout)?;
        Ok(self)
    }

    /// Extends the session by this much on every confirmation
    /// (`session_duration_minutes`). Default: the session's lifetime is left alone.
    #[must_use]
    pub fn with_session_duration(mut self, duration: Duration) -> Self {
        self.session_duration_minutes = Some((duration.as_secs() / 60).max(1));
        self
    }

    /// Retries a call this many times when the connection could not be made (the
    /// request never reached Stytch, so retrying cannot apply it twice). Default 0.
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.http = self.http.with_max_retries(retries);
        self
    }

    /// Revokes a session (`POST /v1/sessions/revoke` with `session_id`), e.g. on
    /// logout.
    pub async fn revoke(&self, session_id: &str) -> Result<(), AuthError> {
        let body = serde_json::json!({ "session_id": session_id });
        let response = self
            .http
            .send(|client| {
                client.post(&self.revoke_url).basic_auth(&self.project_id, Some(self.secret.expose())).json(&body)
            })
            .await?;
        let status = response.status();
        let body = http_client::read_body(response, MAX_RESPONSE_BYTES, AuthErrorKind::AuthorityResponse).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(error_from(status, &body))
        }
    }

    async fn call(&self, credential: AuthorityCredential<'_>) -> Result<Confirmation, AuthError> {
        let (session_token, session_jwt, kind) = match credential {
            AuthorityCredential::Opaque(token) => (Some(token), None, TokenKind::Opaque),
            AuthorityCredential::Jwt(token) => (None, Some(token), TokenKind::Jwt),
        };
        let request =
            AuthenticateRequest { session_token, session_jwt, session_duration_minutes: self.session_duration_minutes };
        let response = self
            .http
            .send(|client| {
                client
                    .post(&self.authenticate_url)
                    .basic_auth(&self.project_id, Some(self.secret.expose()))
                    .json(&request)
            })
            .await?;
        let status = response.status();
        let body = http_client::read_body(response, MAX_RESPONSE_BYTES, AuthErrorKind::AuthorityResponse).await?;
        if !status.is_success() {
            return Err(error_from(status, &body));
        }
        let parsed: AuthenticateResponse = serde_json::from_slice(&body).map_err(|_| {
            AuthError::with_detail(AuthErrorKind::AuthorityResponse, "not a Stytch authenticate response")
        })?;
        let organization = parsed.organization;
        let session = parsed
            .session
            .or(parsed.member_session)
            .ok_or_else(|| AuthError::with_detail(AuthErrorKind::AuthorityResponse, "no session in the response"))?;
        let expires_at = session.expires_at.as_deref().map(parse_rfc3339).transpose()?;
        let session = self.session(session, organization, kind)?;
        let renewed = RenewedTokens::new(parsed.session_jwt, parsed.session_token, expires_at);
        Ok(Confirmation::new(session).with_renewed(renewed))
    }

    fn session(
        &self,
        mut raw: StytchSessionObject,
        organization: Option<StytchOrganization>,
        kind: TokenKind,
    ) -> Result<Session, AuthError> {
        let subject = raw
            .user_id
            .take()
            .or(raw.member_id.take())
            .ok_or_else(|| AuthError::with_detail(AuthErrorKind::AuthorityResponse, "no user or member id"))?;
        let organization = match (organization, raw.organization_id.take()) {
            (Some(org), _) => Some(Organization { id: org.organization_id, slug: org.organization_slug }),
            (None, Some(id)) => Some(Organization::new(id)),
            (None, None) => None,
        };
        let custom_claims = raw.custom_claims.take().filter(Value::is_object);
        let mut builder = raw.apply(
            Session::builder(subject, self.issuer.clone()).audience(vec![self.project_id.clone()]).token_kind(kind),
        )?;
        if let Some(organization) = organization.filter(|_| self.b2b) {
            builder = builder.organization(organization);
        }
        if let Some(claims) = custom_claims {
            builder = builder.claims(claims);
        }
        Ok(builder.build())
    }
}

/// Maps a Stytch error response.
fn error_from(status: reqwest::StatusCode, body: &[u8]) -> AuthError {
    let parsed: Option<StytchError> = serde_json::from_slice(body).ok();
    let error_type = parsed.as_ref().and_then(|e| e.error_type.as_deref()).unwrap_or("");
    let request_id = parsed.as_ref().and_then(|e| e.request_id.as_deref()).unwrap_or("");
    let detail = format!("Stytch {} {error_type} (request {request_id})", status.as_u16());
    let kind = match status.as_u16() {
        401 | 403 if error_type == "unauthorized_credentials" || error_type.is_empty() => {
            AuthErrorKind::BadServerCredentials
        }
        // Not found, or a token Stytch refuses to parse: either way the session is gone.
        400..=499 if status.as_u16() != 429 => AuthErrorKind::SessionRevoked,
        _ => AuthErrorKind::AuthorityUnavailable,
    };
    AuthError::with_detail(kind, detail)
}

impl super::Authority for StytchAuthority {
    fn authenticate<'a>(&'a self, credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
        Box::pin(self.call(credential))
    }

    /// Stytch's session token and every session JWT of a session are interchangeable
    /// names of it: `sessions/authenticate` answers about the session, whichever is
    /// sent, and nothing per token is read from the answer.
    fn confirms_whole_session(&self) -> bool {
        true
    }
}
