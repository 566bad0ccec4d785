//! [`Algorithm`]: the JWS signature algorithms, as our own type so that no
//! third-party enum sits in the public API. Converted to the crypto library's own
//! type at the one place a signature is checked.

use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm (the `alg` of a JWT header, RFC 7518 and RFC 8037).
///
/// Used for the allow-list of [`JwksConfig::with_algorithms`](crate::JwksConfig::with_algorithms).
/// The HMAC algorithms are listed so that an allow-list naming them can be refused
/// with a clear error: a public key set never verifies them.
///
/// # Example
///
/// ```
/// use tower_stepup::{Algorithm, JwksConfig};
///
/// let alg: Algorithm = "ES256".parse()?;
/// assert_eq!(alg, Algorithm::ES256);
/// assert_eq!(alg.as_str(), "ES256");
/// assert_eq!(Algorithm::EdDSA.to_string(), "EdDSA");
/// assert!("none".parse::<Algorithm>().is_err());
/// let config = JwksConfig::default().with_algorithms(&[Algorithm::ES256, Algorithm::EdDSA]);
/// # let _ = config;
/// # Ok::<(), tower_stepup::UnknownAlgorithm>(())
/// ```
// The JOSE registry's own spelling, which users search for.
#[allow(clippy::upper_case_acronyms)]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC using SHA-256 (never accepted from a key set).
    HS256,
    /// HMAC using SHA-384 (never accepted from a key set).
    HS384,
    /// HMAC using SHA-512 (never accepted from a key set).
    HS512,
    /// ECDSA using P-256 and SHA-256.
    ES256,
    /// ECDSA using P-384 and SHA-384.
    ES384,
    /// RSASSA-PKCS1-v1_5 using SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 using SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 using SHA-512.
    RS512,
    /// RSASSA-PSS using SHA-256.
    PS256,
    /// RSASSA-PSS using SHA-384.
    PS384,
    /// RSASSA-PSS using SHA-512.
    PS512,
    /// Edwards-curve signatures (Ed25519).
    EdDSA,
}

impl Algorithm {
    const ALL: [Self; 12] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::ES256,
        Self::ES384,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::EdDSA,
    ];

    /// The registered name, as in a JWT header's `alg`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Whether this is an HMAC (symmetric) algorithm.
    pub(crate) const fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The crypto library's value: the only place its type is used.
    // Only the rust-crypto backend verifies through jsonwebtoken.
    #[cfg_attr(feature = "aws-lc-rs", allow(dead_code))]
    pub(crate) const fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
            Self::HS384 => jsonwebtoken::Algorithm::HS384,
            Self::HS512 => jsonwebtoken::Algorithm::HS512,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::RS384 => jsonwebtoken::Algorithm::RS384,
            Self::RS512 => jsonwebtoken::Algorithm::RS512,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::PS384 => jsonwebtoken::Algorithm::PS384,
            Self::PS512 => jsonwebtoken::Algorithm::PS512,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Parses a registered name, case-sensitively as JWS requires; `none` and
    /// unknown names are errors.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name).ok_or(UnknownAlgorithm(()))
    }
}

/// The error of parsing an [`Algorithm`] from a name that is not one.
///
/// # Example
///
/// ```
/// use tower_stepup::Algorithm;
///
/// let error = "none".parse::<Algorithm>().unwrap_err();
/// assert_eq!(error.to_string(), "not a supported JWS signature algorithm");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a supported JWS signature algorithm")]
pub struct UnknownAlgorithm(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_crypto_library() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
            let theirs: jsonwebtoken::Algorithm = alg.as_str().parse().expect("jsonwebtoken knows it");
            assert_eq!(alg.to_jsonwebtoken(), theirs);
        }
        assert!("none".parse::<Algorithm>().is_err());
        assert!("es256".parse::<Algorithm>().is_err());
    }
}
