//! Claim profiles: how the claims of a verified token become a [`Session`].
//!
//! Two are built in, [`StytchProfile`] and [`OidcProfile`]; implement
//! [`ClaimProfile`] for anything else.

mod claim_path;
mod oidc;
mod payload;
mod stytch;

use std::time::SystemTime;

use serde_json::{Map, Value};

pub use claim_path::ClaimPath;
#[cfg(test)]
pub(crate) use oidc::amr_factor;
pub use oidc::OidcProfile;
pub(crate) use payload::{numeric_date_of, Payload};
pub use stytch::StytchProfile;
pub(crate) use stytch::{parse_rfc3339, StytchSessionObject};

use crate::error::{AuthError, AuthErrorKind};
use crate::session::Session;

/// The claims of a token whose signature, issuer, audience and times were verified.
///
/// The registered claims are parsed; everything else is in [`other`](Self::other).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`.
    pub audience: Vec<String>,
    /// `iat`.
    pub issued_at: Option<SystemTime>,
    /// `exp`.
    pub expires_at: SystemTime,
    /// `nbf`.
    pub not_before: Option<SystemTime>,
    /// `jti`.
    pub jwt_id: Option<String>,
    /// Every other claim.
    pub other: Map<String, Value>,
}

impl VerifiedClaims {
    /// A session builder pre-filled with the registered claims.
    pub fn session_builder(&self) -> crate::session::SessionBuilder {
        let mut builder = Session::builder(self.subject.clone(), self.issuer.clone())
            .audience(self.audience.clone())
            .expires_at(self.expires_at);
        if let Some(iat) = self.issued_at {
            builder = builder.issued_at(iat);
        }
        builder
    }

    /// Removes a claim that must be a string, if present.
    pub fn take_string(&mut self, name: &'static str) -> Result<Option<String>, AuthError> {
        match self.other.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, name)),
        }
    }

    /// Removes a claim that must be an array of strings, if present.
    pub fn take_strings(&mut self, name: &'static str) -> Result<Vec<String>, AuthError> {
        match self.other.remove(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(value) => strings(value, name),
        }
    }
}

/// A JSON array of strings.
pub(crate) fn strings(value: Value, name: &'static str) -> Result<Vec<String>, AuthError> {
    match value {
        Value::Array(values) => values
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, name)),
            })
            .collect(),
        _ => Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, name)),
    }
}

/// Turns verified claims into a [`Session`]. Two are built in, [`StytchProfile`] and
/// [`OidcProfile`]; implement it for anything else.
///
/// Called once per token (results are cached by the layer), after the signature and
/// registered claims were checked. Return an [`AuthError`] of kind
/// [`MissingClaim`](AuthErrorKind::MissingClaim) or
/// [`InvalidClaim`](AuthErrorKind::InvalidClaim) for claims you require.
///
/// # Example
///
/// ```
/// use tower_stepup::{AuthError, ClaimProfile, Session, VerifiedClaims};
///
/// /// Roles come from a "groups" claim.
/// struct Groups;
///
/// impl ClaimProfile for Groups {
///     fn session(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
///         let groups = claims.take_strings("groups")?;
///         Ok(claims.session_builder().roles(groups).build())
///     }
/// }
/// ```
pub trait ClaimProfile: Send + Sync + 'static {
    /// Builds the session.
    fn session(&self, claims: VerifiedClaims) -> Result<Session, AuthError>;

    /// Builds the session from claims the issuer itself answered for an opaque token
    /// (an RFC 7662 introspection response), rather than from a signed token.
    /// Default: [`session`](Self::session).
    ///
    /// The layer calls it for the answers of an
    /// [`IntrospectionAuthority`](crate::IntrospectionAuthority) that has no profile
    /// of its own, so one profile shapes every session of the layer. Override it
    /// when the answer's claims differ from the token's: [`OidcProfile::rfc9068`]
    /// does not require there the claims RFC 9068 makes mandatory in a JWT (`jti`,
    /// `iat`, `client_id` are optional in RFC 7662).
    ///
    /// Sessions renewed by a Stytch authority never come here: their new session
    /// JWT is verified like any other, through [`session`](Self::session).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_stepup::{AuthError, ClaimProfile, Session, VerifiedClaims};
    ///
    /// /// Tokens carry `groups`; introspection answers call them `roles`.
    /// struct Groups;
    ///
    /// impl ClaimProfile for Groups {
    ///     fn session(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
    ///         let groups = claims.take_strings("groups")?;
    ///         Ok(claims.session_builder().roles(groups).build())
    ///     }
    ///     fn introspected(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
    ///         let roles = claims.take_strings("roles")?;
    ///         Ok(claims.session_builder().roles(roles).build())
    ///     }
    /// }
    /// ```
    fn introspected(&self, claims: VerifiedClaims) -> Result<Session, AuthError> {
        self.session(claims)
    }

    /// Not for implementors: the layer's fast path for its built-in profiles, which
    /// read their claims straight from the token's JSON text. Other profiles answer
    /// `None` (they cannot build the answer's type) and get a [`VerifiedClaims`].
    #[doc(hidden)]
    fn __builtin(&self) -> Option<Builtin<'_>> {
        None
    }
}

/// A built-in profile, as the layer's fast path sees it. Nameable only inside the
/// crate, so no other profile can claim to be one.
#[doc(hidden)]
#[allow(unreachable_pub)] // in a public trait's hidden method, on purpose unnameable
pub struct Builtin<'a>(pub(crate) BuiltinKind<'a>);

/// Which built-in profile.
pub(crate) enum BuiltinKind<'a> {
    Stytch(&'a StytchProfile),
}
