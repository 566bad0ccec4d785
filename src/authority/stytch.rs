//! Stytch's session API: `POST /v1/sessions/authenticate` (B2B: `/v1/b2b/…`).

mod sessions;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AuthorityCredential, AuthorityFuture, Confirmation, RenewedTokens, RevokeFuture, SessionsFuture,
    DEFAULT_AUTHORITY_TIMEOUT,
};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::http_client::{self, IssuerClient};
use crate::profile::{parse_rfc3339, StytchSessionObject};
use crate::rbac::{AuthorizationCheck, AuthorizationVerdict};
use crate::secret::Secret;
use crate::session::{Organization, Session, TokenKind};
use crate::stytch::StytchProject;

/// Largest accepted response body: sessions with many factors stay far below.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// `session_duration_minutes` bounds, from Stytch's API reference (sessions
/// authenticate: "minimum of 5 and a maximum of 527040 minutes (366 days)").
const MIN_SESSION_MINUTES: u64 = 5;
const MAX_SESSION_MINUTES: u64 = 527_040;

/// The error types that mean "this session is not valid (any more)".
///
/// Sources: Stytch's API reference, the "Authenticate session" pages (consumer and
/// B2B) whose only session error is `404 session_not_found` ("Session could not be
/// found."), the 404 error list (stytch.com/docs/api/errors/404), and the sessions
/// guide ("If it isn't valid, clear the session cookie"). The 400, 401 and 403 lists
/// describe parameters (`bad_request`, `invalid_session_duration_minutes`), project
/// configuration (`cname_required_for_http_only_cookies`, `use_https`) and this
/// server's credentials (`unauthorized_credentials`); none says the session is gone.
/// The error body shape, `{status_code, request_id, error_type, error_message,
/// error_url}`, is stytch-node's `lib/shared/errors.ts`.
const SESSION_ENDED: &[(u16, &str)] = &[(404, "session_not_found")];

/// Refusals of an `authorization_check` (Stytch's 403 error lists, consumer and
/// B2B): the session lives on, it may just not take the action.
const NOT_AUTHORIZED: &[(u16, &str)] =
    &[(403, "consumer_session_authorization_error"), (403, "session_authorization_error")];
const TENANCY_MISMATCH: (u16, &str) = (403, "session_authorization_tenancy_error");

/// Longest `error_type` / `request_id` kept from an error body: both are short
/// identifiers; anything longer is not Stytch talking.
const MAX_ERROR_FIELD: usize = 128;

/// Confirms sessions with Stytch (`POST /v1/sessions/authenticate`, HTTP Basic
/// `project_id:secret`). Renews sessions: the response's new `session_jwt` and
/// `session_token` are written back to the client's cookies.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_stepup::{Authority, StytchAuthority, StytchProject};
///
/// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
///     .with_secret("secret-test-…");
/// let authority = StytchAuthority::new(&project)?
///     .with_timeout(Duration::from_secs(1))
///     .with_session_duration(Duration::from_secs(60 * 60));
/// // A layer's `build()` runs this check; an authority used on its own can too.
/// authority.check()?;
///
/// let too_short = StytchAuthority::new(&project)?.with_session_duration(Duration::from_secs(60));
/// assert!(too_short.check().is_err());
/// # Ok::<(), tower_stepup::ConfigError>(())
/// ```
///
/// # How Stytch's errors are read
///
/// Only `404 session_not_found` means the session has ended
/// ([`SessionRevoked`](AuthErrorKind::SessionRevoked): cookies cleared, session
/// deny-listed). `unauthorized_credentials` is
/// [`BadServerCredentials`](AuthErrorKind::BadServerCredentials); a `408` is
/// [`AuthorityTimeout`](AuthErrorKind::AuthorityTimeout); every other error (a `400`
/// about the request, `401 cname_required_for_http_only_cookies`, `403 use_https`,
/// `429`, `5xx`, …) is [`AuthorityUnavailable`](AuthErrorKind::AuthorityUnavailable).
/// Those are server-side faults: the guard answers `503` and touches neither the
/// client's cookies nor the deny list. Each is logged with Stytch's `error_type` and
/// `request_id`.
#[derive(Debug, Clone)]
pub struct StytchAuthority {
    http: IssuerClient,
    authenticate_url: String,
    revoke_url: String,
    project_id: String,
    issuer: String,
    /// The issuers this authority vouches for (`StytchProject::vouched_issuers`).
    issuers: Vec<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_check: Option<&'a AuthorizationCheck>,
}

#[derive(Deserialize)]
struct AuthenticateResponse {
    session: Option<StytchSessionObject>,
    member_session: Option<StytchSessionObject>,
    session_jwt: Option<String>,
    session_token: Option<String>,
    organization: Option<StytchOrganization>,
    verdict: Option<AuthorizationVerdict>,
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
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] without the secret, [`ConfigError::Invalid`] when a
    /// URL set on the project is not acceptable
    /// ([`StytchProject::with_base_url`], [`StytchProject::with_custom_domain`]),
    /// [`ConfigError::HttpClient`] when no HTTP client can be built.
    pub fn new(project: &StytchProject) -> Result<Self, ConfigError> {
        project.check()?;
        let secret = project.secret().cloned().ok_or(ConfigError::Missing("Stytch project secret"))?;
        Ok(Self {
            http: IssuerClient::new(DEFAULT_AUTHORITY_TIMEOUT)?,
            authenticate_url: project.authenticate_url(),
            revoke_url: project.revoke_url(),
            project_id: project.project_id().to_owned(),
            issuer: project.issuers().first().cloned().unwrap_or_default(),
            issuers: project.vouched_issuers(),
            secret,
            b2b: project.is_b2b(),
            session_duration_minutes: None,
        })
    }

    /// Timeout of each call (default [`DEFAULT_AUTHORITY_TIMEOUT`], 2 s).
    ///
    /// Applied per request: the authority keeps its HTTP client and connection pool.
    /// A zero timeout is reported by [`check`](super::Authority::check), which
    /// [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build) calls.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.with_timeout(timeout);
        self
    }

    /// Shortest session extension Stytch accepts (5 minutes).
    pub const MIN_SESSION_DURATION: Duration = Duration::from_secs(MIN_SESSION_MINUTES * 60);
    /// Longest session extension Stytch accepts (527040 minutes, 366 days).
    pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(MAX_SESSION_MINUTES * 60);

    /// Extends the session by this much on every confirmation
    /// (`session_duration_minutes`, counted in whole minutes, rounded down). Default:
    /// the session's lifetime is left alone.
    ///
    /// The duration must lie between
    /// [`MIN_SESSION_DURATION`](Self::MIN_SESSION_DURATION) (5 minutes) and
    /// [`MAX_SESSION_DURATION`](Self::MAX_SESSION_DURATION) (527040 minutes), the range
    /// Stytch accepts: anything else would make every confirmation fail.
    /// [`check`](super::Authority::check) (called by
    /// [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build)) reports a
    /// duration outside it as [`ConfigError::Invalid`].
    #[must_use]
    pub fn with_session_duration(mut self, duration: Duration) -> Self {
        self.session_duration_minutes = Some(duration.as_secs() / 60);
        self
    }

    /// The issuers of the project this authority answers for: a layer confirms
    /// with it the JWTs that name one of them without being accepted locally.
    pub(crate) fn project_issuers(&self) -> &[String] {
        &self.issuers
    }

    /// The settings [`check`](super::Authority::check) reports on.
    fn check_settings(&self) -> Result<(), ConfigError> {
        self.http.check()?;
        if let Some(minutes) = self.session_duration_minutes {
            if !(MIN_SESSION_MINUTES..=MAX_SESSION_MINUTES).contains(&minutes) {
                return Err(ConfigError::invalid(
                    "Stytch session duration",
                    format!("{minutes} minutes; Stytch accepts {MIN_SESSION_MINUTES} to {MAX_SESSION_MINUTES}"),
                ));
            }
        }
        Ok(())
    }

    /// Retries a call this many times when the connection could not be made (the
    /// request never reached Stytch, so retrying cannot apply it twice). Default 0.
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.http = self.http.with_max_retries(retries);
        self
    }

    /// Revokes a session by its id, e.g. on logout: `POST /v1/sessions/revoke` with
    /// `session_id` (B2B: `POST /v1/b2b/sessions/revoke` with `member_session_id`).
    ///
    /// # Errors
    ///
    /// Read as for confirmations: [`SessionRevoked`](AuthErrorKind::SessionRevoked)
    /// when Stytch answers `404 session_not_found` (the session was already gone,
    /// which a logout may treat as done); any other failure is a server-side fault.
    pub async fn revoke(&self, session_id: &str) -> Result<(), AuthError> {
        // The two APIs name the id differently; B2B has no `session_id` field.
        super::refuse_misconfigured(self.check_settings())?;
        let field = if self.b2b { "member_session_id" } else { "session_id" };
        let mut body = serde_json::Map::new();
        body.insert(field.to_owned(), Value::String(session_id.to_owned()));
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

    async fn call(
        &self,
        credential: AuthorityCredential<'_>,
        authorization_check: Option<&AuthorizationCheck>,
    ) -> Result<Confirmation, AuthError> {
        super::refuse_misconfigured(self.check_settings())?;
        let (session_token, session_jwt, kind) = match credential {
            AuthorityCredential::Opaque(token) => (Some(token), None, TokenKind::Opaque),
            AuthorityCredential::Jwt(token) => (None, Some(token), TokenKind::Jwt),
        };
        let request = AuthenticateRequest {
            session_token,
            session_jwt,
            session_duration_minutes: self.session_duration_minutes,
            authorization_check,
        };
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
        let verdict = parsed.verdict;
        let session = parsed
            .session
            .or(parsed.member_session)
            .ok_or_else(|| AuthError::with_detail(AuthErrorKind::AuthorityResponse, "no session in the response"))?;
        let expires_at = session.expires_at.as_deref().map(parse_rfc3339).transpose()?;
        let session = self.session(session, organization, kind)?;
        let mut renewed = RenewedTokens::new();
        if let Some(jwt) = parsed.session_jwt {
            renewed = renewed.with_session_jwt(jwt);
        }
        if let Some(token) = parsed.session_token {
            renewed = renewed.with_session_token(token);
        }
        if let Some(at) = expires_at {
            renewed = renewed.with_expires_at(at);
        }
        let confirmation = Confirmation::new(session).with_renewed(renewed);
        Ok(match verdict {
            Some(verdict) => confirmation.with_verdict(verdict),
            None => confirmation,
        })
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

/// Keeps an identifier from an error body only if it looks like one (letters,
/// digits, `-`, `_`), so that logs and details never carry arbitrary text.
fn identifier(value: Option<&str>) -> &str {
    value
        .filter(|v| v.len() <= MAX_ERROR_FIELD)
        .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .unwrap_or("")
}

/// Reads a Stytch error response: only the documented "session not valid" answers
/// end the session; everything else is a server-side fault (see [`SESSION_ENDED`]).
fn error_from(status: reqwest::StatusCode, body: &[u8]) -> AuthError {
    let parsed: Option<StytchError> = serde_json::from_slice(body).ok();
    let error_type = identifier(parsed.as_ref().and_then(|e| e.error_type.as_deref()));
    let request_id = identifier(parsed.as_ref().and_then(|e| e.request_id.as_deref()));
    let code = status.as_u16();
    let detail = format!("Stytch {code} {error_type} (request {request_id})");
    let kind = if SESSION_ENDED.contains(&(code, error_type)) {
        AuthErrorKind::SessionRevoked
    } else if NOT_AUTHORIZED.contains(&(code, error_type)) {
        AuthErrorKind::PermissionDenied
    } else if (code, error_type) == TENANCY_MISMATCH {
        AuthErrorKind::TenancyMismatch
    } else if error_type == "unauthorized_credentials" {
        AuthErrorKind::BadServerCredentials
    } else if code == 408 {
        AuthErrorKind::AuthorityTimeout
    } else {
        AuthErrorKind::AuthorityUnavailable
    };
    if matches!(kind, AuthErrorKind::PermissionDenied | AuthErrorKind::TenancyMismatch) {
        tracing::debug!(status = code, error_type, request_id, "Stytch refused the authorization check");
    } else if kind == AuthErrorKind::SessionRevoked {
        tracing::debug!(status = code, error_type, request_id, "Stytch: the session has ended");
    } else {
        tracing::warn!(status = code, error_type, request_id, ?kind, "Stytch refused the request");
    }
    AuthError::with_detail(kind, detail)
}

impl super::Authority for StytchAuthority {
    fn authenticate<'a>(&'a self, credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
        Box::pin(self.call(credential, None))
    }

    /// `sessions/authenticate` with `authorization_check`: Stytch answers with a
    /// `verdict`, or `403` when the session's roles (B2B: in that organization) do
    /// not grant the action.
    fn authenticate_authorized<'a>(
        &'a self,
        credential: AuthorityCredential<'a>,
        check: &'a AuthorizationCheck,
    ) -> AuthorityFuture<'a> {
        Box::pin(self.call(credential, Some(check)))
    }

    /// `sessions/revoke` by the session's id (B2B: `member_session_id`); a session
    /// Stytch no longer knows counts as revoked. A session without an id (not a
    /// Stytch session) is left to the layer's local revocation.
    fn revoke<'a>(&'a self, session: &'a Session, _credential: AuthorityCredential<'a>) -> RevokeFuture<'a> {
        Box::pin(async move {
            let Some(id) = session.session_id() else {
                tracing::warn!("revoking a session without a session id: refused locally only");
                return Ok(());
            };
            match StytchAuthority::revoke(self, id).await {
                Err(error) if error.kind() == AuthErrorKind::SessionRevoked => Ok(()),
                other => other,
            }
        })
    }

    /// `GET /v1/sessions?user_id=` (B2B `GET /v1/b2b/sessions?organization_id=&member_id=`).
    fn sessions<'a>(&'a self, session: &'a Session) -> SessionsFuture<'a> {
        Box::pin(self.list_sessions(session))
    }

    /// `sessions/revoke` by id, as [`revoke`](super::Authority::revoke) does.
    fn revoke_by_id<'a>(&'a self, session: &'a Session) -> RevokeFuture<'a> {
        super::Authority::revoke(self, session, AuthorityCredential::Opaque(""))
    }

    /// Stytch's session token and every session JWT of a session are interchangeable
    /// names of it: `sessions/authenticate` answers about the session, whichever is
    /// sent, and nothing per token is read from the answer.
    fn confirms_whole_session(&self) -> bool {
        true
    }

    /// Reports a zero [timeout](StytchAuthority::with_timeout) or a
    /// [session duration](StytchAuthority::with_session_duration) Stytch refuses.
    fn check(&self) -> Result<(), ConfigError> {
        self.check_settings()
    }
}
