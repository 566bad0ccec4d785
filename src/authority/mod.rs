//! The issuing server as the source of truth: "is this session still alive, and
//! what does it look like now?"
//!
//! Used for opaque tokens (which cannot be checked locally), for guards marked
//! [`fresh`](crate::Guard::fresh) (a locally valid JWT can belong to a session
//! revoked a minute ago), and to renew an expired Stytch JWT from its session token.
//!
//! Two implementations: [`StytchAuthority`] (`POST /v1/sessions/authenticate`) and
//! [`IntrospectionAuthority`] (RFC 7662). Implement [`Authority`] for anything else.

mod budget;
mod introspection;
pub(crate) mod state;
mod stytch;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

pub use budget::{IssuerBudget, DEFAULT_ISSUER_BURST, DEFAULT_ISSUER_CONCURRENCY, DEFAULT_ISSUER_RATE};
pub use introspection::IntrospectionAuthority;
pub use stytch::StytchAuthority;

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::rbac::{AuthorizationCheck, AuthorizationVerdict};
use crate::secret::Secret;
use crate::session::Session;

/// Default timeout of one call to the issuer: 2 seconds.
pub const DEFAULT_AUTHORITY_TIMEOUT: Duration = Duration::from_secs(2);

/// The future an [`Authority`] returns.
pub type AuthorityFuture<'a> = Pin<Box<dyn Future<Output = Result<Confirmation, AuthError>> + Send + 'a>>;

/// The future [`Authority::revoke`] returns.
pub type RevokeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + 'a>>;

/// The future [`Authority::sessions`] returns.
pub type SessionsFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Session>, AuthError>> + Send + 'a>>;

/// A credential to confirm with the issuer. `Debug` never shows the token.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityCredential<'a> {
    /// A JWT (possibly expired: Stytch renews correctly signed expired JWTs).
    Jwt(&'a str),
    /// An opaque token (Stytch session token, or an OAuth access token).
    Opaque(&'a str),
}

impl AuthorityCredential<'_> {
    /// The token text.
    pub fn token(&self) -> &str {
        match self {
            Self::Jwt(token) | Self::Opaque(token) => token,
        }
    }
}

impl fmt::Debug for AuthorityCredential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwt(_) => f.write_str("Jwt([redacted])"),
            Self::Opaque(_) => f.write_str("Opaque([redacted])"),
        }
    }
}

/// What the issuer said about a live session.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// The session as the issuer sees it now (new factors after a step-up, …).
    pub session: Session,
    /// New tokens for the client, when the issuer sent them.
    pub renewed: Option<RenewedTokens>,
    /// The issuer's answer to the authorization check asked with
    /// [`Authority::authenticate_authorized`]; `None` when none was asked.
    pub verdict: Option<AuthorizationVerdict>,
    /// The claims the issuer answered, for the layer's claim profile to shape the
    /// session from (see [`ClaimProfile::introspected`](crate::ClaimProfile::introspected)).
    pub(crate) claims: Option<crate::profile::VerifiedClaims>,
    /// The layer's verification of the renewed session JWT: cached only when the
    /// JWT is handed to a client that will send it (cookie clients), so that
    /// confirmations for bearer clients do not fill the cache with tokens nobody
    /// presents.
    pub(crate) renewed_verified: Option<crate::verify::Verified>,
}

impl Confirmation {
    /// A confirmation without new tokens.
    pub fn new(session: Session) -> Self {
        Self { session, renewed: None, verdict: None, claims: None, renewed_verified: None }
    }
    /// Adds the verdict on an authorization check.
    #[must_use]
    pub fn with_verdict(mut self, verdict: AuthorizationVerdict) -> Self {
        self.verdict = Some(verdict);
        self
    }
    /// Hands the answer's claims to the layer, whose profile then shapes the session.
    #[must_use]
    pub(crate) fn with_claims(mut self, claims: crate::profile::VerifiedClaims) -> Self {
        self.claims = Some(claims);
        self
    }
    /// Adds new tokens.
    #[must_use]
    pub fn with_renewed(mut self, renewed: RenewedTokens) -> Self {
        self.renewed = Some(renewed);
        self
    }
}

/// New tokens from the issuer, written back to the client's cookies. `Debug`
/// redacts them.
#[derive(Clone, Default)]
pub struct RenewedTokens {
    pub(crate) session_jwt: Option<Secret>,
    pub(crate) session_token: Option<Secret>,
    pub(crate) expires_at: Option<SystemTime>,
}

impl RenewedTokens {
    /// No new tokens yet; add them with the `with_*` methods.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_stepup::RenewedTokens;
    ///
    /// let expires_at = SystemTime::now() + Duration::from_secs(3600);
    /// let renewed = RenewedTokens::new()
    ///     .with_session_jwt("eyJ….….…")
    ///     .with_session_token("mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q")
    ///     .with_expires_at(expires_at);
    /// assert_eq!(renewed.session_token(), Some("mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q"));
    /// assert_eq!(renewed.expires_at(), Some(expires_at));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// The new session JWT (written to the layer's JWT cookie).
    ///
    /// Behind a layer, an answer carrying a new session JWT is read through it: the
    /// layer verifies the JWT like any other (signature, issuer, audience, its
    /// claim profile) and takes the session from it, so it must be a JWT the layer
    /// accepts, of the session the answer is about; else the answer is refused.
    #[must_use]
    pub fn with_session_jwt(mut self, session_jwt: impl Into<String>) -> Self {
        self.session_jwt = Some(Secret::new(session_jwt));
        self
    }
    /// The new opaque session token (written to the layer's session-token cookie).
    #[must_use]
    pub fn with_session_token(mut self, session_token: impl Into<String>) -> Self {
        self.session_token = Some(Secret::new(session_token));
        self
    }
    /// When the session ends: the cookies' `Max-Age` (without it, a short default).
    #[must_use]
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
    /// The new session JWT.
    pub fn session_jwt(&self) -> Option<&str> {
        self.session_jwt.as_ref().map(Secret::expose)
    }
    /// The new session token.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_ref().map(Secret::expose)
    }
    /// When the session ends (cookie `Max-Age`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

impl fmt::Debug for RenewedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenewedTokens")
            .field("session_jwt", &self.session_jwt)
            .field("session_token", &self.session_token)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The issuing server as the source of truth: "is this session still alive, and
/// what does it look like now?"
///
/// Used for opaque tokens (which cannot be checked locally), for guards marked
/// [`fresh`](crate::Guard::fresh) (a locally valid JWT can belong to a session
/// revoked a minute ago), and to renew an expired Stytch JWT from its session token.
/// Two implementations are built in: [`StytchAuthority`]
/// (`POST /v1/sessions/authenticate`) and [`IntrospectionAuthority`] (RFC 7662).
///
/// The issuing server's view of a credential.
///
/// Return errors of kind [`SessionRevoked`](crate::AuthErrorKind::SessionRevoked)
/// (the session is gone), [`BadServerCredentials`](crate::AuthErrorKind::BadServerCredentials),
/// [`AuthorityUnavailable`](crate::AuthErrorKind::AuthorityUnavailable),
/// [`AuthorityTimeout`](crate::AuthErrorKind::AuthorityTimeout) or
/// [`AuthorityResponse`](crate::AuthErrorKind::AuthorityResponse).
///
/// # Example
///
/// ```
/// use tower_stepup::{Authority, AuthorityCredential, AuthorityFuture, AuthError, AuthErrorKind};
///
/// /// Accepts nothing: every session counts as revoked.
/// struct DenyAll;
///
/// impl Authority for DenyAll {
///     fn authenticate<'a>(&'a self, _credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
///         Box::pin(async { Err(AuthError::new(AuthErrorKind::SessionRevoked)) })
///     }
/// }
/// ```
pub trait Authority: Send + Sync + 'static {
    /// Asks the issuer about `credential`.
    fn authenticate<'a>(&'a self, credential: AuthorityCredential<'a>) -> AuthorityFuture<'a>;

    /// Asks the issuer about `credential` and whether its session may take the
    /// action of `check` (Stytch: `authorization_check` on `sessions/authenticate`),
    /// for guards with [`Guard::with_authorization_check`](crate::Guard::with_authorization_check).
    ///
    /// Return the confirmation with an authorizing
    /// [`verdict`](Confirmation::verdict) when the session may; an error of kind
    /// [`PermissionDenied`](crate::AuthErrorKind::PermissionDenied) or
    /// [`TenancyMismatch`](crate::AuthErrorKind::TenancyMismatch) when it may not. A
    /// confirmation without an authorizing verdict is taken as a refusal.
    ///
    /// Default: the issuer cannot check authorization, and the call fails closed as
    /// [`AuthorityUnavailable`](crate::AuthErrorKind::AuthorityUnavailable) (logged).
    fn authenticate_authorized<'a>(
        &'a self,
        credential: AuthorityCredential<'a>,
        check: &'a AuthorizationCheck,
    ) -> AuthorityFuture<'a> {
        let _ = (credential, check);
        Box::pin(async {
            tracing::error!("a guard asks for an authorization check this authority cannot make; refused");
            Err(AuthError::with_detail(AuthErrorKind::AuthorityUnavailable, "authority cannot check authorization"))
        })
    }

    /// Whether an answer is about the whole session rather than the one credential
    /// asked about, so that it may serve every credential of that session id (one
    /// issuer call per session, however many tokens it has). Default `false`.
    ///
    /// Answer `true` only when the issuer's answer depends on nothing but the
    /// session: every token of the session would get the same answer, and the
    /// session id cannot be claimed by a token of another session. Stytch qualifies
    /// (its session tokens and JWTs are interchangeable names of one session). RFC
    /// 7662 introspection does not: it describes one token, and tokens that share an
    /// OIDC `sid` (Keycloak puts the SSO session id in every access token) differ in
    /// scope, audience, client and `acr`, so one token's answer must not judge another.
    ///
    /// Even when `true`, an answer is shared only by requests whose locally verified
    /// session has that session id, and is used only when it names that session.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_stepup::{Authority, AuthorityCredential, AuthorityFuture, AuthError, AuthErrorKind};
    ///
    /// /// Asks a session store that knows whole sessions, not single tokens.
    /// struct SessionStore;
    ///
    /// impl Authority for SessionStore {
    ///     fn authenticate<'a>(&'a self, _credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
    ///         Box::pin(async { Err(AuthError::new(AuthErrorKind::SessionRevoked)) })
    ///     }
    ///     fn confirms_whole_session(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// ```
    fn confirms_whole_session(&self) -> bool {
        false
    }

    /// Ends `session` (produced by `credential`) at the issuer, e.g. on logout.
    ///
    /// Default: nothing to do at the issuer (an authority that cannot revoke); the
    /// layer still refuses the session locally from the next request on, see
    /// [`SessionControl::revoke`](crate::SessionControl::revoke). An answer that the
    /// session was already gone should be `Ok(())`: a logout of a dead session is done.
    ///
    /// # Errors
    ///
    /// Server-side faults ([`AuthorityUnavailable`](crate::AuthErrorKind::AuthorityUnavailable),
    /// [`AuthorityTimeout`](crate::AuthErrorKind::AuthorityTimeout), …): the issuer may
    /// still consider the session alive.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_stepup::{Authority, AuthorityCredential, AuthorityFuture, AuthError, AuthErrorKind, RevokeFuture, Session};
    ///
    /// struct SessionStore;
    ///
    /// impl Authority for SessionStore {
    ///     fn authenticate<'a>(&'a self, _credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
    ///         Box::pin(async { Err(AuthError::new(AuthErrorKind::SessionRevoked)) })
    ///     }
    ///     fn revoke<'a>(&'a self, session: &'a Session, _credential: AuthorityCredential<'a>) -> RevokeFuture<'a> {
    ///         Box::pin(async move {
    ///             let _id = session.session_id(); // delete it from the store
    ///             Ok(())
    ///         })
    ///     }
    /// }
    /// ```
    fn revoke<'a>(&'a self, session: &'a Session, credential: AuthorityCredential<'a>) -> RevokeFuture<'a> {
        let _ = (session, credential);
        Box::pin(async { Ok(()) })
    }

    /// Lists the live sessions of the user (B2B: the member, in the organization)
    /// whose session is `session`, the current one included: "sign out other
    /// devices". Stytch: `GET /v1/sessions?user_id=` (B2B:
    /// `GET /v1/b2b/sessions?organization_id=&member_id=`).
    ///
    /// Every listed session must belong to that user (and organization), carry its
    /// session id, and be held to the same rules as any answer of the issuer. Used
    /// only by an authority that [confirms whole sessions](Self::confirms_whole_session):
    /// the layer refuses a session it revoked by that id.
    ///
    /// Default: [`Unsupported`](crate::AuthErrorKind::Unsupported).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_stepup::{Authority, AuthorityCredential, AuthorityFuture, AuthError, AuthErrorKind, SessionsFuture, Session};
    ///
    /// /// A store that only ever has the one session it is asked about.
    /// struct SingleSession;
    ///
    /// impl Authority for SingleSession {
    ///     fn authenticate<'a>(&'a self, _credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
    ///         Box::pin(async { Err(AuthError::new(AuthErrorKind::SessionRevoked)) })
    ///     }
    ///     fn sessions<'a>(&'a self, session: &'a Session) -> SessionsFuture<'a> {
    ///         Box::pin(async move { Ok(vec![session.clone()]) })
    ///     }
    /// }
    /// ```
    fn sessions<'a>(&'a self, session: &'a Session) -> SessionsFuture<'a> {
        let _ = session;
        Box::pin(async {
            Err(AuthError::with_detail(AuthErrorKind::Unsupported, "this authority cannot list sessions"))
        })
    }

    /// Ends `session`, one of those [`sessions`](Self::sessions) listed, by its id
    /// (no credential of it is at hand): Stytch `sessions/revoke` with
    /// `session_id` (B2B `member_session_id`). An answer that the session was
    /// already gone should be `Ok(())`.
    ///
    /// The layer calls it only for a session it found in the list of the current
    /// user's sessions: another user's session id never reaches it.
    ///
    /// Default: [`Unsupported`](crate::AuthErrorKind::Unsupported).
    fn revoke_by_id<'a>(&'a self, session: &'a Session) -> RevokeFuture<'a> {
        let _ = session;
        Box::pin(async {
            Err(AuthError::with_detail(AuthErrorKind::Unsupported, "this authority cannot revoke by id"))
        })
    }

    /// Reports settings this authority cannot work with. Default: none.
    ///
    /// The authority's own `with_*` methods never fail: they store what they are
    /// given, and this method reports the first unusable setting.
    /// [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build) calls it, so a
    /// misconfigured authority stops the server at startup; call it yourself for an
    /// authority used without a layer.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_stepup::{Authority, IntrospectionAuthority};
    ///
    /// let authority = IntrospectionAuthority::new("https://login.example.com/oauth2/introspect", "api", "s3cret")?
    ///     .with_timeout(Duration::ZERO);
    /// assert!(authority.check().is_err());
    /// # Ok::<(), tower_stepup::ConfigError>(())
    /// ```
    fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Refuses a call an authority used without a layer was not configured for (a
/// layer's `build()` refuses the configuration before any call), as a fault of this
/// server rather than of the client's credential.
pub(crate) fn refuse_misconfigured(checked: Result<(), ConfigError>) -> Result<(), AuthError> {
    checked.map_err(|error| {
        tracing::error!(%error, "authority called with an invalid configuration");
        AuthError::with_detail(AuthErrorKind::AuthorityUnavailable, "authority misconfigured")
    })
}
