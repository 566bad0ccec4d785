//! Errors: [`AuthError`] for a request that could not be authenticated, and
//! [`ConfigError`] for a layer that could not be built.
//!
//! Neither ever carries token text: the messages name what failed, not what was sent.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Why a request could not be authenticated.
///
/// Opaque on purpose (after `jsonwebtoken::errors::Error`): match on [`AuthError::kind`].
/// The [`Display`](fmt::Display) text is short, safe to log and safe to send to a client
/// (it is what goes into `error_description`); it never contains token text.
///
/// # Example
///
/// ```
/// use tower_stepup::{AuthError, AuthErrorKind};
///
/// let error = AuthError::new(AuthErrorKind::Expired);
/// assert_eq!(error.kind(), AuthErrorKind::Expired);
/// assert_eq!(error.to_string(), "the token has expired");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    detail: Option<Cow<'static, str>>,
    retry_after: Option<Duration>,
    /// The exact reason for developers (may name claim values): shown only with
    /// diagnostics on, never in `Display` or `Debug`.
    diagnostic: Option<Box<str>>,
}

/// The kind of an [`AuthError`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthErrorKind {
    // -- finding the credential
    /// The `Authorization` header is not `Bearer <token>` or is not valid header text.
    MalformedHeader,
    /// More than one `Authorization` header was sent.
    MultipleAuthorizationHeaders,
    /// The token is longer than the configured limit.
    TokenTooLarge,
    /// The token contains characters outside the token alphabet (non-ASCII, spaces, …).
    InvalidCharacters,
    // -- the token itself
    /// The token is not a well-formed JWT (segments, base64url, JSON).
    Malformed,
    /// The header names an algorithm that is not allowed (including `none` and HMAC).
    UnsupportedAlgorithm,
    /// The header's algorithm is not the one pinned by the key.
    AlgorithmMismatch,
    /// The header carries a field this crate refuses to trust (`jwk`, `jku`, `x5u`, `crit`).
    ForbiddenHeader,
    /// The `typ` header does not match the configured policy.
    InvalidType,
    /// No key in the key set matches the token's `kid`, even after a refresh.
    UnknownKey,
    /// The signature does not verify.
    InvalidSignature,
    /// `exp` is in the past (beyond leeway).
    Expired,
    /// `nbf` is in the future (beyond leeway).
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    IssuedInFuture,
    /// The token is older than the configured maximum age.
    TooOld,
    /// `iss` is not one of the configured issuers.
    WrongIssuer,
    /// `aud` does not contain a configured audience.
    WrongAudience,
    /// A required claim is missing.
    MissingClaim,
    /// A claim has the wrong type or an invalid value.
    InvalidClaim,
    // -- keys and the issuing server
    /// No usable key set could be obtained from the issuer.
    KeySetUnavailable,
    /// The issuing server says the session does not exist or was revoked.
    SessionRevoked,
    /// The issuing server refused this service's own credentials (project secret,
    /// client secret): a configuration problem, not the user's.
    BadServerCredentials,
    /// The issuing server could not be reached or answered with an error.
    AuthorityUnavailable,
    /// The issuing server did not answer in time.
    AuthorityTimeout,
    /// The issuing server answered with something that could not be understood.
    AuthorityResponse,
    /// An opaque token was presented but no authority is configured to check it.
    OpaqueTokenUnsupported,
    /// Checking this credential would need a call to the issuer, and the layer's
    /// budget of such calls is spent for now: try again later.
    IssuerBusy,
    /// The request passed through a guard but no [`SessionLayer`](crate::SessionLayer)
    /// ran before it.
    MissingLayer,
    // -- managing a user's sessions
    /// The authority cannot do what was asked (e.g. list a user's sessions): a
    /// server configuration matter.
    Unsupported,
    /// No session of this user has the id asked about (ended already, or another
    /// user's).
    UnknownSession,
    // -- authorization by the issuer
    /// The issuer refused an authorization check: the session's roles do not grant
    /// the action (Stytch `403` `consumer_session_authorization_error` /
    /// `session_authorization_error`). The session itself is fine.
    PermissionDenied,
    /// The issuer refused an authorization check because the member belongs to
    /// another organization (Stytch `403` `session_authorization_tenancy_error`).
    TenancyMismatch,
}

impl AuthErrorKind {
    /// A short, fixed description, safe to send to clients.
    pub const fn description(self) -> &'static str {
        match self {
            Self::MalformedHeader => "the Authorization header is malformed",
            Self::MultipleAuthorizationHeaders => "more than one Authorization header",
            Self::TokenTooLarge => "the token is too large",
            Self::InvalidCharacters => "the token contains invalid characters",
            Self::Malformed => "the token is malformed",
            Self::UnsupportedAlgorithm => "the token algorithm is not allowed",
            Self::AlgorithmMismatch => "the token algorithm does not match the key",
            Self::ForbiddenHeader => "the token header carries a forbidden field",
            Self::InvalidType => "the token type is not accepted",
            Self::UnknownKey => "the token was signed by an unknown key",
            Self::InvalidSignature => "the token signature is invalid",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::IssuedInFuture => "the token was issued in the future",
            Self::TooOld => "the token is too old",
            Self::WrongIssuer => "the token issuer is not accepted",
            Self::WrongAudience => "the token audience is not accepted",
            Self::MissingClaim => "the token lacks a required claim",
            Self::InvalidClaim => "the token has an invalid claim",
            Self::KeySetUnavailable => "the signing keys are unavailable",
            Self::SessionRevoked => "the session has ended",
            Self::BadServerCredentials => "the server could not authenticate to the issuer",
            Self::AuthorityUnavailable => "the issuer is unavailable",
            Self::AuthorityTimeout => "the issuer did not answer in time",
            Self::AuthorityResponse => "the issuer sent an unexpected answer",
            Self::OpaqueTokenUnsupported => "opaque tokens are not accepted here",
            Self::IssuerBusy => "too many sessions to check with the issuer right now",
            Self::MissingLayer => "the session layer is not installed",
            Self::Unsupported => "the issuer does not support this",
            Self::UnknownSession => "no such session",
            Self::PermissionDenied => "the issuer refused the permission",
            Self::TenancyMismatch => "the session belongs to another organization",
        }
    }

    /// Whether the fault lies with the server side (issuer down, misconfiguration)
    /// rather than with the credential the client sent.
    ///
    /// Server-side faults become `503`/`500` responses, not `401`.
    pub const fn is_server_fault(self) -> bool {
        matches!(
            self,
            Self::KeySetUnavailable
                | Self::BadServerCredentials
                | Self::AuthorityUnavailable
                | Self::AuthorityTimeout
                | Self::AuthorityResponse
                | Self::IssuerBusy
                | Self::MissingLayer
                | Self::Unsupported
        )
    }

    /// Whether this is a problem with how the request was formed (RFC 6750
    /// `invalid_request`, status 400) rather than with the token.
    pub const fn is_invalid_request(self) -> bool {
        matches!(self, Self::MalformedHeader | Self::MultipleAuthorizationHeaders)
    }
}

impl AuthError {
    /// An error of the given kind.
    pub const fn new(kind: AuthErrorKind) -> Self {
        Self { kind, detail: None, retry_after: None, diagnostic: None }
    }

    /// An error of the given kind with a detail for logs (e.g. which claim).
    ///
    /// The detail must never contain token text or secrets.
    pub fn with_detail(kind: AuthErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, detail: Some(detail.into()), retry_after: None, diagnostic: None }
    }

    /// Tells the client when trying again may succeed (the `Retry-After` of a `503`).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Adds the exact reason, for developers: which claim, which value was expected,
    /// what was found (claim names and the values needed to tell, never a token).
    /// It is not part of [`Display`](fmt::Display) or `Debug`, so ordinary logs and
    /// responses never show it: only a layer with diagnostics on
    /// ([`GuardConfig::with_diagnostics`](crate::GuardConfig::with_diagnostics))
    /// puts it into problem bodies and logs.
    ///
    /// ```
    /// use tower_stepup::{AuthError, AuthErrorKind};
    ///
    /// let error = AuthError::with_detail(AuthErrorKind::InvalidClaim, "azp")
    ///     .with_diagnostic("azp: `other-app` is not an allowed client (allowed: `web`)");
    /// assert_eq!(error.to_string(), "the token has an invalid claim (azp)");
    /// assert!(!format!("{error:?}").contains("other-app"));
    /// assert!(error.diagnostic().unwrap().contains("other-app"));
    /// ```
    #[must_use]
    pub fn with_diagnostic(mut self, reason: impl Into<String>) -> Self {
        self.diagnostic = Some(reason.into().into_boxed_str());
        self
    }

    /// The exact reason for developers, when one was recorded (see
    /// [`with_diagnostic`](Self::with_diagnostic)). May name claim values.
    pub fn diagnostic(&self) -> Option<&str> {
        self.diagnostic.as_deref()
    }

    /// What went wrong.
    pub const fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The detail, if any (which claim, which status code, …). Never token text.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// When trying again may succeed, for server-side faults that know it.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl From<AuthErrorKind> for AuthError {
    fn from(kind: AuthErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.description())?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("AuthError");
        debug.field("kind", &self.kind);
        if let Some(detail) = &self.detail {
            debug.field("detail", detail);
        }
        if let Some(after) = &self.retry_after {
            debug.field("retry_after", after);
        }
        // `diagnostic` is left out on purpose: it may name claim values.
        debug.finish_non_exhaustive()
    }
}

impl std::error::Error for AuthError {}

/// A layer, guard or authority could not be built from its configuration.
///
/// Returned at startup, never per request.
///
/// # Example
///
/// ```
/// use tower_stepup::{ConfigError, StytchProject};
///
/// let error = StytchProject::consumer("not-a-project").unwrap_err();
/// assert!(matches!(error, ConfigError::Invalid { .. }));
/// ```
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting was not given.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A setting has an invalid value.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The key set could not be loaded at startup (eager start).
    #[error("could not load the key set: {0}")]
    KeySet(AuthError),
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
}

impl ConfigError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { name, reason: reason.into() }
    }
}
