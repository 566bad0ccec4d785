//! [`PublicKey`]: one JWK's public key, parsed once when the key set is loaded.
//!
//! With the `aws-lc-rs` backend the key is an aws-lc-rs [`ParsedPublicKey`]: the
//! RSA modulus, its Montgomery context and the EC point are built and validated once
//! per key, not on every verification (`jsonwebtoken::crypto::verify` takes raw
//! components and rebuilds the key each time, which cost about a third of a cold
//! RS256 verification). A key that does not parse is refused when the set is loaded.
//!
//! With only the `rust-crypto` backend, the key is `jsonwebtoken`'s `DecodingKey`,
//! verified through `jsonwebtoken::crypto::verify` as before.
//!
//! [`ParsedPublicKey`]: aws_lc_rs::signature::ParsedPublicKey

use super::Algorithm;

/// A verification key, bound to exactly one algorithm (RFC 8725 §3.1: the key
/// decides the algorithm, never the token).
pub(crate) struct PublicKey {
    #[cfg(feature = "aws-lc-rs")]
    parsed: aws_lc_rs::signature::ParsedPublicKey,
    #[cfg(not(feature = "aws-lc-rs"))]
    algorithm: Algorithm,
    #[cfg(not(feature = "aws-lc-rs"))]
    decoding: jsonwebtoken::DecodingKey,
}

#[cfg(feature = "aws-lc-rs")]
impl PublicKey {
    /// The aws-lc-rs verification algorithm of a JWS algorithm: the same ones
    /// `jsonwebtoken`'s aws-lc provider uses (fixed-length `r || s` ECDSA signatures
    /// as JWS specifies, RSA keys of 2048 to 8192 bits).
    fn verification(algorithm: Algorithm) -> Option<&'static dyn aws_lc_rs::signature::VerificationAlgorithm> {
        use aws_lc_rs::signature as sig;
        if let Some(rsa) = Self::rsa_parameters(algorithm) {
            return Some(rsa);
        }
        Some(match algorithm {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &sig::ED25519,
            _ => return None,
        })
    }

    fn rsa_parameters(algorithm: Algorithm) -> Option<&'static aws_lc_rs::signature::RsaParameters> {
        use aws_lc_rs::signature as sig;
        Some(match algorithm {
            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    /// An RSA key from its big-endian modulus and exponent.
    pub(crate) fn rsa(algorithm: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, &'static str> {
        let params = Self::rsa_parameters(algorithm).ok_or("not an RSA algorithm")?;
        // aws-lc-rs wants the integers without leading zero bytes; a JWK may carry
        // one (a DER habit). The value, hence the key, is the same.
        let components = aws_lc_rs::signature::RsaPublicKeyComponents { n: strip_zeros(n), e: strip_zeros(e) };
        let parsed = components.to_parsed_public_key(params).map_err(|_| "invalid RSA key")?;
        Ok(Self { parsed })
    }

    /// An EC key from its affine coordinates (`x`, `y` of the JWK).
    pub(crate) fn ec(algorithm: Algorithm, x: &[u8], y: &[u8]) -> Result<Self, &'static str> {
        let verification = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => Self::verification(algorithm).ok_or("not an EC algorithm")?,
            _ => return Err("not an EC algorithm"),
        };
        // The uncompressed SEC1 point; parsing checks its length for the curve and
        // that it lies on the curve.
        let mut point = Vec::with_capacity(1 + x.len() + y.len());
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let parsed = aws_lc_rs::signature::ParsedPublicKey::new(verification, &point).map_err(|_| "invalid EC key")?;
        Ok(Self { parsed })
    }

    /// An Ed25519 key (`x` of the JWK).
    pub(crate) fn ed25519(x: &[u8]) -> Result<Self, &'static str> {
        let parsed = aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::ED25519, x)
            .map_err(|_| "invalid OKP key")?;
        Ok(Self { parsed })
    }

    /// Whether the signature segment (base64url, unpadded) signs `message` with
    /// this key.
    pub(crate) fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        // RSA up to 4096 bits and every EC signature decode on the stack.
        let (mut stack, mut heap) = ([0u8; 512], Vec::new());
        let Ok(signature) = crate::verify::b64_into(signature_b64, &mut stack, &mut heap) else {
            return false;
        };
        self.parsed.verify_sig(message, signature).is_ok()
    }
}

#[cfg(feature = "aws-lc-rs")]
fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(not(feature = "aws-lc-rs"))]
impl PublicKey {
    /// An RSA key from its big-endian modulus and exponent.
    // Same signature as the aws-lc-rs backend's, which can refuse a key here.
    #[allow(clippy::unnecessary_wraps)]
    pub(crate) fn rsa(algorithm: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, &'static str> {
        Ok(Self { algorithm, decoding: jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e) })
    }

    /// An EC key from its affine coordinates (`x`, `y` of the JWK).
    pub(crate) fn ec(algorithm: Algorithm, x: &[u8], y: &[u8]) -> Result<Self, &'static str> {
        let encode = |bytes: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        let decoding =
            jsonwebtoken::DecodingKey::from_ec_components(&encode(x), &encode(y)).map_err(|_| "invalid EC key")?;
        Ok(Self { algorithm, decoding })
    }

    /// An Ed25519 key (`x` of the JWK).
    pub(crate) fn ed25519(x: &[u8]) -> Result<Self, &'static str> {
        use base64::Engine as _;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x);
        let decoding = jsonwebtoken::DecodingKey::from_ed_components(&x).map_err(|_| "invalid OKP key")?;
        Ok(Self { algorithm: Algorithm::EdDSA, decoding })
    }

    /// Whether the signature segment (base64url, unpadded) signs `message` with
    /// this key.
    pub(crate) fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        matches!(
            jsonwebtoken::crypto::verify(signature_b64, message, &self.decoding, self.algorithm.to_jsonwebtoken()),
            Ok(true)
        )
    }
}
