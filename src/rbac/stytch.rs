//! Loading a Stytch project's RBAC policy: `GET /v1/rbac/policy` (B2B
//! `GET /v1/b2b/rbac/policy`).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::cache::PolicyCache;
use super::policy::RbacPolicy;
use crate::authority::DEFAULT_AUTHORITY_TIMEOUT;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::http_client::{self, IssuerClient};
use crate::secret::Secret;
use crate::stytch::StytchProject;

/// How often the policy is fetched again: 5 minutes, as Stytch's backend SDKs do
/// (stytch-node `PolicyCache.CacheTTL`).
pub const DEFAULT_RBAC_REFRESH: Duration = Duration::from_secs(5 * 60);

/// Largest accepted policy document.
const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;

/// A Stytch project's RBAC policy, loaded from Stytch and kept fresh, for
/// [`Requirement::permission`](crate::Requirement::permission). Configure it with
/// [`GuardConfig::with_stytch_rbac`](crate::GuardConfig::with_stytch_rbac).
///
/// Behaves as Stytch's backend SDKs do, except where noted:
/// - the policy is fetched (`GET /v1/rbac/policy`, B2B `GET /v1/b2b/rbac/policy`,
///   HTTP Basic `project_id:secret`) when a guard first needs it, and again when a
///   guard needs it more than the [refresh interval](Self::with_refresh_interval)
///   (default [`DEFAULT_RBAC_REFRESH`], 5 minutes) after the last fetch;
/// - concurrent requests share one fetch; while a refresh runs, other requests are
///   judged on the policy already loaded;
/// - **unlike the SDKs**, a failed *refresh* keeps the last policy that loaded (and
///   logs a warning; the next attempt comes after at most 30 seconds), so an issuer
///   outage does not turn every permission check into an error;
/// - when **no policy was ever loaded** (the first fetch failed), permission checks
///   fail closed: the guard answers `503` with an
///   [`AuthorityUnavailable`](crate::AuthErrorKind::AuthorityUnavailable) error
///   ("RBAC policy unavailable"); a later request tries again.
///
/// Roles come from the session (`roles` of the `https://stytch.com/session` claim,
/// or of the session the issuer returns on [`fresh`](crate::Guard::fresh) routes).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_stepup::{GuardConfig, StytchProject, StytchRbac};
///
/// let project = StytchProject::b2b("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
///     .with_secret("secret-test-…");
/// let rbac = StytchRbac::new(&project)?.with_refresh_interval(Duration::from_secs(60));
/// assert!(rbac.policy_url().ends_with("/v1/b2b/rbac/policy"));
/// let config = GuardConfig::default().with_stytch_rbac(rbac);
/// # let _ = config;
/// # Ok::<(), tower_stepup::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StytchRbac {
    pub(crate) http: IssuerClient,
    url: String,
    project_id: String,
    secret: Secret,
    pub(crate) refresh: Duration,
}

#[derive(Deserialize)]
struct PolicyError {
    error_type: Option<String>,
    request_id: Option<String>,
}

impl StytchRbac {
    /// The policy of `project`, which must carry its secret
    /// ([`StytchProject::with_secret`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] without the secret, [`ConfigError::Invalid`] when a
    /// URL set on the project is not acceptable, [`ConfigError::HttpClient`] when no
    /// HTTP client can be built.
    pub fn new(project: &StytchProject) -> Result<Self, ConfigError> {
        project.check()?;
        let secret = project.secret().cloned().ok_or(ConfigError::Missing("Stytch project secret"))?;
        let prefix = if project.is_b2b() { "b2b/" } else { "" };
        Ok(Self {
            http: IssuerClient::new(DEFAULT_AUTHORITY_TIMEOUT)?,
            url: format!("{}/v1/{prefix}rbac/policy", project.base_url()),
            project_id: project.project_id().to_owned(),
            secret,
            refresh: DEFAULT_RBAC_REFRESH,
        })
    }

    /// How long a loaded policy is used before it is fetched again (default
    /// [`DEFAULT_RBAC_REFRESH`], 5 minutes). Policy changes made in Stytch's
    /// dashboard take effect within this long. A zero interval is refused by
    /// [`check`](Self::check).
    #[must_use]
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh = interval;
        self
    }

    /// Timeout of each fetch (default [`DEFAULT_AUTHORITY_TIMEOUT`], 2 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.with_timeout(timeout);
        self
    }

    /// The URL the policy is fetched from.
    pub fn policy_url(&self) -> &str {
        &self.url
    }

    /// Reports settings that cannot work (a zero timeout or refresh interval).
    /// [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build) calls it
    /// through [`GuardConfig::validate`](crate::GuardConfig::validate).
    pub fn check(&self) -> Result<(), ConfigError> {
        self.http.check()?;
        if self.refresh.is_zero() {
            return Err(ConfigError::invalid("RBAC refresh interval", "must be above zero"));
        }
        Ok(())
    }

    pub(crate) fn into_cache(self) -> Arc<PolicyCache> {
        Arc::new(PolicyCache::new(self))
    }

    /// Fetches the policy once.
    pub(crate) async fn fetch(&self) -> Result<RbacPolicy, AuthError> {
        crate::authority::refuse_misconfigured(self.check())?;
        let response = self
            .http
            .send(|client| client.get(&self.url).basic_auth(&self.project_id, Some(self.secret.expose())))
            .await?;
        let status = response.status();
        let body = http_client::read_body(response, MAX_POLICY_BYTES, AuthErrorKind::AuthorityResponse).await?;
        if !status.is_success() {
            let parsed: Option<PolicyError> = serde_json::from_slice(&body).ok();
            let error_type = identifier(parsed.as_ref().and_then(|e| e.error_type.as_deref()));
            let request_id = identifier(parsed.as_ref().and_then(|e| e.request_id.as_deref()));
            let code = status.as_u16();
            let kind = if error_type == "unauthorized_credentials" {
                AuthErrorKind::BadServerCredentials
            } else if code == 408 {
                AuthErrorKind::AuthorityTimeout
            } else {
                AuthErrorKind::AuthorityUnavailable
            };
            return Err(AuthError::with_detail(
                kind,
                format!("RBAC policy: Stytch {code} {error_type} (request {request_id})"),
            ));
        }
        // `policy` is optional in Stytch's response type: an answer without one (or
        // without `roles`) is not "nothing is allowed" but an answer not understood.
        RbacPolicy::from_stytch_slice(&body)
            .map_err(|_| AuthError::with_detail(AuthErrorKind::AuthorityResponse, "RBAC policy: unexpected answer"))
    }
}

/// Keeps an identifier from an error body only if it looks like one.
fn identifier(value: Option<&str>) -> &str {
    value
        .filter(|v| v.len() <= 128)
        .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .unwrap_or("")
}
