//! JWT verification: header policy (RFC 8725), signature with the key the JWKS
//! pinned, then the registered claims. Each failure has its own [`AuthErrorKind`].

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{AuthError, AuthErrorKind};
use crate::issuers::{IssuerRules, IssuerTable};
use crate::jwks::{Algorithm, KeyStore};
use crate::profile::{numeric_date_of, Builtin, BuiltinKind, Payload, VerifiedClaims};
use crate::session::Session;

/// Which `typ` header values are accepted.
///
/// # Example
///
/// ```
/// use tower_stepup::TypPolicy;
///
/// assert!(TypPolicy::AccessToken.accepts(Some("at+jwt")));
/// assert!(TypPolicy::AccessToken.accepts(Some("application/at+JWT")));
/// assert!(!TypPolicy::AccessToken.accepts(Some("JWT")));
/// assert!(TypPolicy::Jwt.accepts(None));
/// assert!(TypPolicy::JwtOrAccessToken.accepts(Some("at+jwt")));
/// assert!(!TypPolicy::JwtOrAccessToken.accepts(Some("application/okta-internal-at+jwt")));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypPolicy {
    /// `JWT` (or absent), as Stytch session JWTs carry.
    Jwt,
    /// `at+jwt` or `application/at+jwt` (RFC 9068 access tokens); required.
    AccessToken,
    /// Either of the above: `JWT`, `at+jwt` (with or without `application/`), or
    /// none. For issuers that send one or the other depending on a per-API setting
    /// (Auth0's token profiles).
    JwtOrAccessToken,
    /// Any `typ`, or none.
    Any,
}

impl TypPolicy {
    /// What the policy accepts, for diagnostics.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Jwt => "`JWT` or none (TypPolicy::Jwt)",
            Self::AccessToken => "`at+jwt` (TypPolicy::AccessToken)",
            Self::JwtOrAccessToken => "`JWT`, `at+jwt` or none (TypPolicy::JwtOrAccessToken)",
            Self::Any => "anything",
        }
    }
    /// Whether a token with this `typ` header passes. Media types compare
    /// case-insensitively, with an optional `application/` prefix (RFC 7515 §4.1.9).
    pub fn accepts(self, typ: Option<&str>) -> bool {
        // `get` rather than slicing: `typ` is attacker-controlled and may put a
        // multi-byte character across byte 12.
        let normalized = typ.map(|t| match (t.get(..12), t.get(12..)) {
            (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
            _ => t,
        });
        match self {
            Self::Any => true,
            Self::Jwt => normalized.is_none_or(|t| t.eq_ignore_ascii_case("jwt")),
            Self::AccessToken => normalized.is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")),
            Self::JwtOrAccessToken => {
                normalized.is_none_or(|t| t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("at+jwt"))
            }
        }
    }
}

/// The time rules shared by fresh verification and cache hits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeRules {
    pub(crate) leeway: u64,
    pub(crate) max_age: Option<Duration>,
}

/// The registered times of a verified token, in seconds since the epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenTimes {
    pub(crate) exp: u64,
    pub(crate) nbf: Option<u64>,
    pub(crate) iat: Option<u64>,
}

impl TimeRules {
    /// Every time rule, in a fixed order: expiry first.
    pub(crate) fn check(&self, times: &TokenTimes, now: u64) -> Result<(), AuthError> {
        if now >= times.exp.saturating_add(self.leeway) {
            return Err(AuthErrorKind::Expired.into());
        }
        self.check_start(times, now)?;
        self.check_iat_present(times)?;
        if let (Some(max_age), Some(iat)) = (self.max_age, times.iat) {
            // As Stytch's SDKs: too old once `now - iat >= max`, without leeway, so
            // that `0` means "every token is too old" (always confirm remotely).
            if now.saturating_sub(iat) >= max_age.as_secs() {
                return Err(AuthErrorKind::TooOld.into());
            }
        }
        Ok(())
    }

    /// The time rules, split by what the issuer may overrule: `Err` for a token
    /// that is bad whatever the issuer says (`nbf` or `iat` in the future, no `iat`
    /// under a maximum age), `Ok(Some(_))` for one that only lapsed (expired, or
    /// older than the maximum token age), which the issuer can still confirm.
    pub(crate) fn check_lapse(&self, times: &TokenTimes, now: u64) -> Result<Option<AuthError>, AuthError> {
        self.check_start(times, now)?;
        self.check_iat_present(times)?;
        // Only `Expired` and `TooOld` are left to fail.
        Ok(self.check(times, now).err())
    }

    /// `nbf` and `iat` not in the future (beyond the leeway).
    fn check_start(&self, times: &TokenTimes, now: u64) -> Result<(), AuthError> {
        if times.nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(AuthErrorKind::NotYetValid.into());
        }
        if times.iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(AuthErrorKind::IssuedInFuture.into());
        }
        Ok(())
    }

    /// A maximum token age needs `iat`.
    fn check_iat_present(&self, times: &TokenTimes) -> Result<(), AuthError> {
        if self.max_age.is_some() && times.iat.is_none() {
            return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, "iat"));
        }
        Ok(())
    }

    /// The session's own times (future authentication times, the session's end),
    /// with the same leeway as the token's.
    pub(crate) fn check_session(&self, session: &Session, now: u64) -> Result<(), AuthError> {
        session.check_times(secs_to_time(now.min(MAX_NUMERIC_DATE)), Duration::from_secs(self.leeway))
    }
}

/// Makes sure `jsonwebtoken` has a crypto provider. With exactly one backend
/// feature it picks that one itself; with both (e.g. `--all-features`) it would
/// panic at the first verification, so aws-lc-rs is installed explicitly.
pub(crate) fn ensure_crypto_provider() {
    #[cfg(all(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        // Err means a provider is already installed, which is what we need.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER);
    }
}

/// Seconds since the epoch, now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The latest NumericDate accepted (9999-12-31T23:59:59Z). Later values cannot be
/// turned into a `SystemTime` on every platform (the addition would panic), and no
/// real token carries them.
pub(crate) const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// Callers keep `secs` at most [`MAX_NUMERIC_DATE`].
pub(crate) fn secs_to_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Everything needed to verify the layer's tokens. Built once per layer.
pub(crate) struct Verifier {
    /// Per issuer: names, keys, audiences, `typ`, profile.
    pub(crate) issuers: Arc<IssuerTable>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) time: TimeRules,
}

/// A token that verified, with the times a cache needs to recheck it.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) session: Session,
    pub(crate) times: TokenTimes,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    jwk: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
}

/// Decodes a base64url segment into `stack` when it fits (every header, typical
/// payloads), else into `heap`: no allocation per verification on the usual path.
pub(crate) fn b64_into<'b>(segment: &str, stack: &'b mut [u8], heap: &'b mut Vec<u8>) -> Result<&'b [u8], AuthError> {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let invalid = || AuthError::with_detail(AuthErrorKind::Malformed, "invalid base64url");
    if base64::decoded_len_estimate(segment.len()) <= stack.len() {
        let len = engine.decode_slice(segment, stack).map_err(|_| invalid())?;
        return Ok(&stack[..len]);
    }
    *heap = engine.decode(segment).map_err(|_| invalid())?;
    Ok(heap)
}

/// Stack room for a decoded header.
const HEADER_STACK: usize = 256;
/// Stack room for a decoded payload (a 1.3 KB Stytch session JWT carries about 1 KB).
const PAYLOAD_STACK: usize = 2048;

/// The three segments of a compact JWS.
fn segments(token: &str) -> Result<(&str, &str, &str), AuthError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(AuthError::with_detail(AuthErrorKind::Malformed, "not three segments")),
    }
}

impl Verifier {
    /// Verifies a token against its issuer's current keys. `UnknownKey` means the
    /// caller may refresh that issuer's key set ([`keys_for`](Self::keys_for)) and
    /// try once more.
    pub(crate) fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        self.verify_inner(token, false).map(|(verified, _)| verified)
    }

    /// Verifies a token like [`verify`](Self::verify), except that a token that
    /// only *lapsed* passes: expired (`exp`, or the session's own end), older than
    /// the maximum token age, or naming an issuer only the authority vouches for.
    /// The first lapse comes back with it; everything else (signature, algorithm,
    /// `typ`, audience, shape, future times, the claim profile) is checked as
    /// strictly as ever. Only to decide whether the issuer may confirm the token,
    /// never to admit a request on its own.
    pub(crate) fn verify_lapsed(&self, token: &str) -> Result<(Verified, Option<AuthError>), AuthError> {
        self.verify_inner(token, true)
    }

    /// The key store of the token's issuer, to look for a key it lacks. An `iss`
    /// no configuration names (also one only the authority vouches for counts as
    /// named) is an error: no key set is ever fetched for it. Only on the
    /// unknown-`kid` path, so the payload is read a second time there only.
    pub(crate) fn keys_for(&self, token: &str) -> Result<&Arc<KeyStore>, AuthError> {
        let (_, payload_b64, _) = segments(token)?;
        let (mut stack, mut heap) = ([0u8; PAYLOAD_STACK], Vec::new());
        let payload = Payload::parse(b64_into(payload_b64, &mut stack, &mut heap)?)?;
        let issuer = payload.unverified_issuer()?;
        match self.issuers.select(&issuer) {
            Some(selected) => Ok(&selected.rules.keys),
            None => Err(AuthErrorKind::WrongIssuer.into()),
        }
    }

    fn verify_inner(&self, token: &str, lenient: bool) -> Result<(Verified, Option<AuthError>), AuthError> {
        let (header_b64, payload_b64, signature_b64) = segments(token)?;

        let (mut header_stack, mut header_heap) = ([0u8; HEADER_STACK], Vec::new());
        let header_json = b64_into(header_b64, &mut header_stack, &mut header_heap)?;
        let header: Header<'_> = serde_json::from_slice(header_json)
            .map_err(|_| AuthError::with_detail(AuthErrorKind::Malformed, "invalid header"))?;
        if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.crit.is_some() {
            return Err(AuthErrorKind::ForbiddenHeader.into());
        }
        let algorithm: Algorithm =
            header.alg.parse().map_err(|_| AuthError::new(AuthErrorKind::UnsupportedAlgorithm))?;
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthErrorKind::UnsupportedAlgorithm.into());
        }
        // One issuer: its rules, and `iss` is checked after the signature (the
        // payload is parsed once, after it). Several: the unverified `iss` selects
        // the rules first; the signed one must select the same (`check_claims`).
        // The payload's decoded bytes: every claim below borrows from them.
        let (mut payload_stack, mut payload_heap) = ([0u8; PAYLOAD_STACK], Vec::new());
        let (rules, early_payload) = match self.issuers.single() {
            Some(rules) => (rules, None),
            None => {
                let payload = Payload::parse(b64_into(payload_b64, &mut payload_stack, &mut payload_heap)?)?;
                let issuer = payload.unverified_issuer()?;
                let selected = self.issuers.select(&issuer).ok_or(AuthErrorKind::WrongIssuer)?;
                (selected.rules, Some(payload))
            }
        };
        if !rules.typ.accepts(header.typ.as_deref()) {
            // Diagnostics only: the header value is the sender's, so it is cut short.
            let found = header
                .typ
                .as_deref()
                .map_or_else(|| "none".to_owned(), |t| format!("`{}`", t.chars().take(48).collect::<String>()));
            return Err(AuthError::new(AuthErrorKind::InvalidType)
                .with_diagnostic(format!("header `typ` is {found}; the layer accepts {}", rules.typ.describe())));
        }
        let keys = rules.keys.snapshot();
        let key = keys.find(header.kid.as_deref(), algorithm).ok_or(AuthErrorKind::UnknownKey)?;
        if key.algorithm != algorithm {
            return Err(AuthErrorKind::AlgorithmMismatch.into());
        }
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        // The key's own parsed form, bound to its pinned algorithm.
        if !key.key.verify(signed.as_bytes(), signature_b64) {
            return Err(AuthErrorKind::InvalidSignature.into());
        }

        let payload = match early_payload {
            Some(payload) => payload,
            None => Payload::parse(b64_into(payload_b64, &mut payload_stack, &mut payload_heap)?)?,
        };
        self.check_claims(rules, payload, lenient)
    }

    fn check_claims(
        &self,
        rules: &IssuerRules,
        payload: Payload<'_>,
        lenient: bool,
    ) -> Result<(Verified, Option<AuthError>), AuthError> {
        let exp = payload.exp()?.ok_or_else(|| AuthError::with_detail(AuthErrorKind::MissingClaim, "exp"))?;
        let times = TokenTimes { exp, nbf: payload.nbf()?, iat: payload.iat()? };
        let now = now_secs();
        let mut lapse = if lenient {
            self.time.check_lapse(&times, now)?
        } else {
            self.time.check(&times, now)?;
            None
        };
        let registered = payload.registered()?;
        let issuer = registered.issuer.ok_or_else(|| AuthError::with_detail(AuthErrorKind::MissingClaim, "iss"))?;
        // The signed `iss` must name the configuration whose key verified the token.
        let selected = self.issuers.select(&issuer).filter(|selected| selected.is_of(rules));
        let Some(selected) = selected else {
            return Err(AuthErrorKind::WrongIssuer.into());
        };
        if selected.is_remote() {
            if !lenient {
                return Err(AuthErrorKind::WrongIssuer.into());
            }
            lapse.get_or_insert_with(|| {
                AuthError::with_detail(AuthErrorKind::WrongIssuer, "an issuer only the authority vouches for")
            });
        }
        if registered.audience.is_empty() {
            return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, "aud"));
        }
        selected.check_audience(&registered.audience)?;
        let verified = |subject, other| VerifiedClaims {
            issuer,
            subject,
            audience: registered.audience,
            issued_at: times.iat.map(secs_to_time),
            expires_at: secs_to_time(times.exp),
            not_before: times.nbf.map(secs_to_time),
            jwt_id: registered.jwt_id,
            other,
        };
        let missing_subject = || AuthError::with_detail(AuthErrorKind::MissingClaim, "sub");
        let session = match rules.profile.__builtin() {
            // A built-in profile reads its claims from the JSON text itself.
            Some(Builtin(BuiltinKind::Stytch(stytch))) => {
                let tenant = OnceCell::new();
                selected.check_tenant(payload.lookup(&tenant))?;
                let subject = registered.subject.ok_or_else(missing_subject)?;
                stytch.session_from_payload(&verified(subject, Map::new()), &payload)?
            }
            None => {
                let others = payload.into_others()?;
                selected.check_tenant(|claim| others.get(claim))?;
                let subject = registered.subject.ok_or_else(missing_subject)?;
                rules.profile.session(verified(subject, others))?
            }
        };
        let session = selected.share_names(session);
        // After the profile, so custom profiles are held to the same rules.
        match self.time.check_session(&session, now) {
            // The session's own end passed: the issuer may have extended it since.
            Err(error) if lenient && error.kind() == AuthErrorKind::Expired => {
                lapse.get_or_insert(error);
            }
            checked => checked?,
        }
        Ok((Verified { session, times }, lapse))
    }
}

/// `iss`, `sub`, `aud` and `jti`, removed from the claims and type-checked.
struct Registered {
    issuer: Option<String>,
    subject: Option<String>,
    audience: Vec<String>,
    jwt_id: Option<String>,
}

impl Registered {
    fn take(claims: &mut Map<String, Value>) -> Result<Self, AuthError> {
        let string = |claims: &mut Map<String, Value>, name: &'static str| match claims.remove(name) {
            None => Ok(None),
            Some(Value::String(value)) if !value.is_empty() => Ok(Some(value)),
            Some(_) => Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, name)),
        };
        let audience = match claims.remove("aud") {
            None => Vec::new(),
            Some(Value::String(aud)) => vec![aud],
            Some(value) => crate::profile::strings(value, "aud")?,
        };
        Ok(Self {
            issuer: string(claims, "iss")?,
            subject: string(claims, "sub")?,
            audience,
            jwt_id: string(claims, "jti")?,
        })
    }
}

/// Claims that did not come from a signed token but from the issuer itself (an
/// introspection response): registered claims are optional, except `iss` and `sub`,
/// and an `exp` in the past still means expired.
pub(crate) fn claims_from_map(mut claims: Map<String, Value>, now: u64) -> Result<VerifiedClaims, AuthError> {
    let exp = numeric_date(&mut claims, "exp")?;
    if exp.is_some_and(|exp| now >= exp) {
        return Err(AuthErrorKind::Expired.into());
    }
    let iat = numeric_date(&mut claims, "iat")?;
    let nbf = numeric_date(&mut claims, "nbf")?;
    let registered = Registered::take(&mut claims)?;
    Ok(VerifiedClaims {
        issuer: registered.issuer.ok_or_else(|| AuthError::with_detail(AuthErrorKind::MissingClaim, "iss"))?,
        subject: registered.subject.ok_or_else(|| AuthError::with_detail(AuthErrorKind::MissingClaim, "sub"))?,
        audience: registered.audience,
        issued_at: iat.map(secs_to_time),
        // Without `exp`, the confirmation is only trusted for the cache window.
        expires_at: secs_to_time(exp.unwrap_or(now)),
        not_before: nbf.map(secs_to_time),
        jwt_id: registered.jwt_id,
        other: claims,
    })
}

/// A NumericDate claim: a non-negative JSON number (fractions are truncated), at
/// most [`MAX_NUMERIC_DATE`].
pub(crate) fn numeric_date(claims: &mut Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.remove(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            numeric_date_of(&n).map(Some).ok_or_else(|| AuthError::with_detail(AuthErrorKind::InvalidClaim, name))
        }
        Some(_) => Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_rules() {
        let rules = TimeRules { leeway: 5, max_age: Some(Duration::from_secs(100)) };
        // `iat` within the maximum age even at `exp` plus leeway (the age has no leeway).
        let ok = TokenTimes { exp: 1_000, nbf: Some(900), iat: Some(950) };
        assert!(rules.check(&ok, 950).is_ok());
        assert!(rules.check(&ok, 1_004).is_ok());
        assert_eq!(rules.check(&ok, 1_005).unwrap_err().kind(), AuthErrorKind::Expired);
        assert_eq!(rules.check(&ok, 890).unwrap_err().kind(), AuthErrorKind::NotYetValid);
        let future_iat = TokenTimes { exp: 2_000, nbf: None, iat: Some(1_100) };
        assert_eq!(rules.check(&future_iat, 1_000).unwrap_err().kind(), AuthErrorKind::IssuedInFuture);
        let old = TokenTimes { exp: 2_000, nbf: None, iat: Some(800) };
        assert_eq!(rules.check(&old, 1_000).unwrap_err().kind(), AuthErrorKind::TooOld);
        let no_iat = TokenTimes { exp: 2_000, nbf: None, iat: None };
        assert_eq!(rules.check(&no_iat, 1_000).unwrap_err().kind(), AuthErrorKind::MissingClaim);
    }

    /// As Stytch's SDKs: too old once `now - iat >= max`, without leeway; `0`
    /// makes every token too old.
    #[test]
    fn maximum_token_age_has_no_leeway() {
        let times = TokenTimes { exp: 5_000, nbf: None, iat: Some(1_000) };
        let rules = |max: u64| TimeRules { leeway: 30, max_age: Some(Duration::from_secs(max)) };
        assert!(rules(100).check(&times, 1_099).is_ok());
        assert_eq!(rules(100).check(&times, 1_100).unwrap_err().kind(), AuthErrorKind::TooOld);
        assert_eq!(rules(0).check(&times, 1_000).unwrap_err().kind(), AuthErrorKind::TooOld);
        assert!(TimeRules { leeway: 30, max_age: None }.check(&times, 4_000).is_ok());
    }

    /// What the issuer may overrule (expired, too old) is a lapse; what it may not
    /// (future times, no `iat` under a maximum age) stays an error, also when the
    /// token lapsed as well.
    #[test]
    fn lapses_and_errors() {
        let rules = TimeRules { leeway: 5, max_age: Some(Duration::from_secs(100)) };
        let lapse = |times: TokenTimes, now| rules.check_lapse(&times, now).map(|l| l.map(|e| e.kind()));
        let kind = |times: TokenTimes, now| rules.check_lapse(&times, now).unwrap_err().kind();
        assert_eq!(lapse(TokenTimes { exp: 1_000, nbf: None, iat: Some(950) }, 960), Ok(None));
        assert_eq!(
            lapse(TokenTimes { exp: 1_000, nbf: None, iat: Some(950) }, 1_010),
            Ok(Some(AuthErrorKind::Expired))
        );
        assert_eq!(lapse(TokenTimes { exp: 5_000, nbf: None, iat: Some(950) }, 1_050), Ok(Some(AuthErrorKind::TooOld)));
        // Expired, and issued in the future: never for the issuer to confirm.
        assert_eq!(kind(TokenTimes { exp: 1_000, nbf: None, iat: Some(2_000) }, 1_500), AuthErrorKind::IssuedInFuture);
        assert_eq!(kind(TokenTimes { exp: 1_000, nbf: Some(2_000), iat: None }, 1_500), AuthErrorKind::NotYetValid);
        assert_eq!(kind(TokenTimes { exp: 1_000, nbf: None, iat: None }, 1_500), AuthErrorKind::MissingClaim);
        // The strict check keeps its order: expiry first.
        let both = TokenTimes { exp: 1_000, nbf: Some(2_000), iat: None };
        assert_eq!(rules.check(&both, 1_500).unwrap_err().kind(), AuthErrorKind::Expired);
    }
}

#[cfg(test)]
mod claims_tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Iss {
        iss: String,
    }

    /// What serde does with a duplicate name, and what this crate does instead.
    #[test]
    fn duplicate_claim_names_are_refused() {
        let twice = r#"{"iss":"https://a.example","sub":"u","iss":"https://b.example"}"#;
        // serde_json keeps the last duplicate in a map ...
        let map: Map<String, Value> = serde_json::from_str(twice).unwrap();
        assert_eq!(map["iss"], "https://b.example");
        // ... and a derived struct refuses it.
        assert!(serde_json::from_str::<Iss>(twice).is_err());
        // Claims keep neither: the token is malformed.
        let error = Payload::parse(twice.as_bytes()).err().unwrap();
        assert_eq!(error.kind(), AuthErrorKind::Malformed);
        // Duplicates inside a claim's own object are the claim's business (last wins).
        let nested = Payload::parse(br#"{"iss":"a","x":{"k":1,"k":2}}"#).unwrap().into_others().unwrap();
        assert_eq!(nested["x"]["k"], 2);
        assert!(Payload::parse(b"[1]").is_err());
    }
}
