//! OAuth 2.0 token introspection (RFC 7662).

use std::time::Duration;

use serde_json::{Map, Value};

use super::{AuthorityCredential, AuthorityFuture, Confirmation, RevokeFuture, DEFAULT_AUTHORITY_TIMEOUT};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::http_client::{self, IssuerClient};
use crate::profile::{ClaimProfile, OidcProfile};
use crate::secret::Secret;
use crate::session::{Session, TokenKind};
use crate::verify::{claims_from_map, now_secs};

const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Checks tokens at an RFC 7662 introspection endpoint, authenticating with
/// `client_secret_basic`. An inactive token (`{"active": false}`) counts as a
/// revoked session.
///
/// Behind a [`SessionLayer`](crate::SessionLayer), the layer's claim profile turns
/// the answer into the [`Session`](crate::Session)
/// ([`ClaimProfile::introspected`](crate::ClaimProfile::introspected)), so tokens and
/// introspected tokens read the same claims the same way; unless
/// [`with_profile`](Self::with_profile) gave the authority a profile of its own.
/// Used on its own, the authority reads the answer with [`OidcProfile::new`].
///
/// Behind a [`SessionLayer`](crate::SessionLayer), an answer is held to the layer's
/// issuers and audiences like a JWT: `iss` (or, when absent, the
/// [`with_issuer`](Self::with_issuer) value, else the endpoint's origin) must be one
/// of the layer's issuers, and `aud` must be present and name one of its audiences
/// (unless [`with_authority_audience_optional`](crate::SessionLayerBuilder::with_authority_audience_optional)).
/// An answer is cached until the earlier of the layer's opaque-token window and
/// the token's `exp`.
///
/// # Example
///
/// ```
/// use tower_stepup::IntrospectionAuthority;
///
/// let authority = IntrospectionAuthority::new("https://login.example.com/oauth2/introspect", "api", "s3cret")?
///     .with_issuer("https://login.example.com");
/// # Ok::<(), tower_stepup::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct IntrospectionAuthority {
    http: IssuerClient,
    url: reqwest::Url,
    client_id: String,
    client_secret: Secret,
    issuer: Option<String>,
    audience: Option<String>,
    /// Set by `with_profile`; else the layer's profile shapes the answer.
    profile: Option<OidcProfile>,
    /// RFC 7009 endpoint; checked by `check()`, like every `with_*` setting.
    revocation_url: Option<String>,
}

impl std::fmt::Debug for IntrospectionAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionAuthority")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl IntrospectionAuthority {
    /// An authority for the endpoint `url`, as client `client_id`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `url` is not an absolute `https` URL (plain
    /// `http` only for loopback hosts); [`ConfigError::HttpClient`] when no HTTP
    /// client can be built.
    pub fn new(url: &str, client_id: impl Into<String>, client_secret: impl Into<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            http: IssuerClient::new(DEFAULT_AUTHORITY_TIMEOUT)?,
            url: http_client::check_url("introspection URL", url, false)?,
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
            issuer: None,
            audience: None,
            profile: None,
            revocation_url: None,
        })
    }
    /// Requires `iss` in responses to equal this (when present), and uses it as the
    /// session issuer when absent.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }
    /// Requires `aud` in responses to contain this (when present).
    ///
    /// The layer this authority serves checks every answer against its own
    /// audiences anyway, and refuses answers without `aud` unless
    /// [`with_authority_audience_optional`](crate::SessionLayerBuilder::with_authority_audience_optional)
    /// is set: this is an extra check for an authority used on its own.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
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
    /// Retries when the connection could not be made (default 0).
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.http = self.http.with_max_retries(retries);
        self
    }
    /// Reads every answer with this profile, also behind a layer. Default: the
    /// layer's claim profile shapes the answer (see the type's docs), and
    /// [`OidcProfile::new`] when the authority is used on its own.
    #[must_use]
    pub fn with_profile(mut self, profile: OidcProfile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The RFC 7009 revocation endpoint (e.g. `https://login.example.com/oauth2/revoke`),
    /// called with the same client credentials when a
    /// [`SessionControl`](crate::SessionControl) revokes a session. Without it, a
    /// revocation is local only. An unusable URL is reported by
    /// [`check`](super::Authority::check).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_stepup::{Authority, IntrospectionAuthority};
    ///
    /// let authority = IntrospectionAuthority::new("https://login.example.com/oauth2/introspect", "api", "s3cret")?
    ///     .with_revocation_url("https://login.example.com/oauth2/revoke");
    /// assert!(authority.check().is_ok());
    /// # Ok::<(), tower_stepup::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_revocation_url(mut self, url: impl Into<String>) -> Self {
        self.revocation_url = Some(url.into());
        self
    }

    fn checked_revocation_url(&self) -> Result<Option<reqwest::Url>, ConfigError> {
        self.revocation_url.as_deref().map(|url| http_client::check_url("revocation URL", url, false)).transpose()
    }

    /// The client id and secret, form-encoded for Basic (RFC 6749 §2.3.1).
    fn basic_credentials(&self) -> (String, String) {
        let mut user = String::new();
        http_client::percent_encode(&mut user, &self.client_id);
        let mut password = String::new();
        http_client::percent_encode(&mut password, self.client_secret.expose());
        (user, password)
    }

    /// RFC 7009 revocation of `credential`'s token.
    async fn revoke_token(&self, credential: AuthorityCredential<'_>) -> Result<(), AuthError> {
        super::refuse_misconfigured(self.http.check())?;
        let url = match self.checked_revocation_url() {
            Ok(Some(url)) => url,
            Ok(None) => return Ok(()),
            Err(error) => return super::refuse_misconfigured(Err(error)),
        };
        let form = [("token", credential.token()), ("token_type_hint", "access_token")];
        let (user, password) = self.basic_credentials();
        let response =
            self.http.send(|client| client.post(url.clone()).basic_auth(&user, Some(&password)).form(&form)).await?;
        let status = response.status();
        // RFC 7009 §2.2: `200` whether or not the token was known.
        match status.as_u16() {
            200 => Ok(()),
            401 | 403 => {
                Err(AuthError::with_detail(AuthErrorKind::BadServerCredentials, format!("revocation {status}")))
            }
            _ => Err(AuthError::with_detail(AuthErrorKind::AuthorityUnavailable, format!("revocation {status}"))),
        }
    }

    async fn call(&self, credential: AuthorityCredential<'_>) -> Result<Confirmation, AuthError> {
        super::refuse_misconfigured(self.http.check())?;
        let form = [("token", credential.token()), ("token_type_hint", "access_token")];
        let (user, password) = self.basic_credentials();
        let response = self
            .http
            .send(|client| {
                client
                    .post(self.url.clone())
                    .basic_auth(&user, Some(&password))
                    .header(http::header::ACCEPT, "application/json")
                    .form(&form)
            })
            .await?;
        let status = response.status();
        let body = http_client::read_body(response, MAX_RESPONSE_BYTES, AuthErrorKind::AuthorityResponse).await?;
        match status.as_u16() {
            200 => {}
            401 | 403 => {
                return Err(AuthError::with_detail(
                    AuthErrorKind::BadServerCredentials,
                    format!("introspection {status}"),
                ))
            }
            _ => {
                return Err(AuthError::with_detail(
                    AuthErrorKind::AuthorityUnavailable,
                    format!("introspection {status}"),
                ))
            }
        }
        let mut claims: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|_| AuthError::with_detail(AuthErrorKind::AuthorityResponse, "not an introspection response"))?;
        match claims.remove("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                return Err(AuthError::with_detail(AuthErrorKind::SessionRevoked, "inactive token"))
            }
            _ => return Err(AuthError::with_detail(AuthErrorKind::AuthorityResponse, "no boolean `active`")),
        }
        if let (Some(expected), Some(Value::String(iss))) = (&self.issuer, claims.get("iss")) {
            if iss != expected {
                // About the token (issued elsewhere), not an issuer fault: `401`.
                return Err(AuthError::with_detail(AuthErrorKind::WrongIssuer, "introspection names another issuer"));
            }
        }
        if !claims.contains_key("iss") {
            let issuer = self.issuer.clone().unwrap_or_else(|| self.url.origin().ascii_serialization());
            claims.insert("iss".to_owned(), Value::String(issuer));
        }
        let verified = claims_from_map(claims, now_secs())?;
        if let Some(audience) = &self.audience {
            if !verified.audience.is_empty() && !verified.audience.contains(audience) {
                return Err(AuthErrorKind::WrongAudience.into());
            }
        }
        match &self.profile {
            Some(profile) => Ok(Confirmation::new(profile.introspected(verified)?.with_token_kind(TokenKind::Opaque))),
            None => {
                // The default reading, for use without a layer; a layer reads the
                // claims again with its own profile.
                let session = OidcProfile::new().introspected(verified.clone())?.with_token_kind(TokenKind::Opaque);
                Ok(Confirmation::new(session).with_claims(verified))
            }
        }
    }
}

impl super::Authority for IntrospectionAuthority {
    fn authenticate<'a>(&'a self, credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
        Box::pin(self.call(credential))
    }

    /// RFC 7009 at [`with_revocation_url`](IntrospectionAuthority::with_revocation_url)
    /// when set; else nothing at the issuer (local revocation only).
    fn revoke<'a>(&'a self, _session: &'a Session, credential: AuthorityCredential<'a>) -> RevokeFuture<'a> {
        Box::pin(self.revoke_token(credential))
    }

    /// Reports a zero [timeout](IntrospectionAuthority::with_timeout) or an unusable
    /// [revocation URL](IntrospectionAuthority::with_revocation_url).
    fn check(&self) -> Result<(), ConfigError> {
        self.http.check()?;
        self.checked_revocation_url().map(|_| ())
    }
}
