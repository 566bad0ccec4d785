//! Finding the credential in a request: `Authorization: Bearer …` first, else the
//! session cookies. Borrowed from the headers: nothing is copied on the hot path.

use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;

use crate::error::{AuthError, AuthErrorKind};

/// Where the credential of a request was found.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// `Authorization: Bearer …`: an API client. Never gets cookies or redirects.
    Bearer,
    /// Session cookies: a browser.
    Cookie,
}

/// The default cookie holding the Stytch session JWT.
pub const DEFAULT_JWT_COOKIE: &str = "stytch_session_jwt";
/// The default cookie holding the Stytch opaque session token.
pub const DEFAULT_TOKEN_COOKIE: &str = "stytch_session";
/// The default maximum token length: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// How credentials are found. Part of the layer's configuration.
#[derive(Debug, Clone)]
pub(crate) struct CredentialConfig {
    pub(crate) jwt_cookie: Option<String>,
    pub(crate) token_cookie: Option<String>,
    pub(crate) max_token_len: usize,
}

impl Default for CredentialConfig {
    fn default() -> Self {
        Self {
            jwt_cookie: Some(DEFAULT_JWT_COOKIE.to_owned()),
            token_cookie: Some(DEFAULT_TOKEN_COOKIE.to_owned()),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }
}

/// The credential found in one request, borrowed from its headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credential<'a> {
    pub(crate) source: CredentialSource,
    /// A token with the shape of a JWT.
    pub(crate) jwt: Option<&'a str>,
    /// An opaque token (Stytch session token, or a non-JWT bearer token).
    pub(crate) opaque: Option<&'a str>,
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("jwt", &self.jwt.map(|_| "[redacted]"))
            .field("opaque", &self.opaque.map(|_| "[redacted]"))
            .finish()
    }
}

impl CredentialConfig {
    /// Finds the credential. `Ok(None)` means the request carries none (anonymous).
    ///
    /// An `Authorization` header with another scheme (`Basic …`) is not ours: it is
    /// ignored and cookies are looked at, so apps can mix schemes on other routes.
    pub(crate) fn find<'a>(&self, headers: &'a HeaderMap) -> Result<Option<Credential<'a>>, AuthError> {
        self.locate(headers).1
    }

    /// Like [`find`](Self::find), and also where the credential was, even when it
    /// could not be read: an unreadable bearer header is still a bearer client
    /// (which must never be redirected like a browser).
    pub(crate) fn locate<'a>(
        &self,
        headers: &'a HeaderMap,
    ) -> (Option<CredentialSource>, Result<Option<Credential<'a>>, AuthError>) {
        let mut authorization = headers.get_all(AUTHORIZATION).iter();
        if let Some(value) = authorization.next() {
            if authorization.next().is_some() {
                return (Some(CredentialSource::Bearer), Err(AuthErrorKind::MultipleAuthorizationHeaders.into()));
            }
            match self.bearer_token(value.as_bytes()) {
                Ok(None) => {}
                Ok(Some(token)) => {
                    let (jwt, opaque) = if token.jwt { (Some(token.text), None) } else { (None, Some(token.text)) };
                    let credential = Credential { source: CredentialSource::Bearer, jwt, opaque };
                    return (Some(CredentialSource::Bearer), Ok(Some(credential)));
                }
                Err(error) => return (Some(CredentialSource::Bearer), Err(error)),
            }
        }
        let found = self.cookies(headers);
        let source = match &found {
            Ok(credential) => credential.map(|c| c.source),
            Err(_) => Some(CredentialSource::Cookie),
        };
        (source, found)
    }

    fn bearer_token<'a>(&self, value: &'a [u8]) -> Result<Option<Checked<'a>>, AuthError> {
        match bearer_bytes(value)? {
            Some(token) => self.check_token(token).map(Some),
            None => Ok(None),
        }
    }

    /// The bytes of the one `Bearer` token of a request, not yet validated; `None`
    /// for anything else (no or several `Authorization` headers, another scheme, a
    /// malformed header, a token over the size limit). For cache lookups only: a
    /// cache hit proves these exact bytes were validated before.
    pub(crate) fn unvalidated_bearer<'a>(&self, headers: &'a HeaderMap) -> Option<&'a [u8]> {
        let mut authorization = headers.get_all(AUTHORIZATION).iter();
        let value = authorization.next()?;
        if authorization.next().is_some() {
            return None;
        }
        bearer_bytes(value.as_bytes()).ok().flatten().filter(|token| token.len() <= self.max_token_len)
    }

    fn cookies<'a>(&self, headers: &'a HeaderMap) -> Result<Option<Credential<'a>>, AuthError> {
        if self.jwt_cookie.is_none() && self.token_cookie.is_none() {
            return Ok(None);
        }
        let mut jwt: Option<Checked<'a>> = None;
        let mut opaque: Option<Checked<'a>> = None;
        for value in headers.get_all(COOKIE) {
            // A Cookie header that is not UTF-8 cannot hold our tokens; other cookies
            // in it are not our business.
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            for cookie in cookie::Cookie::split_parse(text).flatten() {
                let name = cookie.name();
                let slot = if self.jwt_cookie.as_deref() == Some(name) {
                    &mut jwt
                } else if self.token_cookie.as_deref() == Some(name) {
                    &mut opaque
                } else {
                    continue;
                };
                // `split_parse` borrows from `text`, so `value_raw` is a slice of the
                // header; fall back to an error rather than copying if it is not.
                let Some(raw) = cookie.value_raw() else { continue };
                if raw.is_empty() {
                    // An emptied cookie (logout) counts as absent.
                    continue;
                }
                *slot = Some(self.check_token(raw.as_bytes())?);
            }
        }
        if jwt.is_some_and(|token| !token.jwt) {
            return Err(AuthError::with_detail(AuthErrorKind::Malformed, "session JWT cookie is not a JWT"));
        }
        let (jwt, opaque) = (jwt.map(|t| t.text), opaque.map(|t| t.text));
        Ok((jwt.is_some() || opaque.is_some()).then_some(Credential { source: CredentialSource::Cookie, jwt, opaque }))
    }

    /// Size and character checks, and whether the token has the shape of a JWT, in
    /// one pass over its bytes (this runs on every request).
    fn check_token<'a>(&self, token: &'a [u8]) -> Result<Checked<'a>, AuthError> {
        if token.len() > self.max_token_len {
            return Err(AuthErrorKind::TokenTooLarge.into());
        }
        let (token68, jwt_charset) = scan(token);
        if !token68 {
            return Err(AuthErrorKind::InvalidCharacters.into());
        }
        let text = std::str::from_utf8(token).map_err(|_| AuthError::new(AuthErrorKind::InvalidCharacters))?;
        Ok(Checked { text, jwt: jwt_charset && jwt_segments(text) })
    }
}

/// A token that passed [`CredentialConfig::check_token`].
#[derive(Clone, Copy)]
struct Checked<'a> {
    text: &'a str,
    /// Three non-empty base64url segments.
    jwt: bool,
}

/// One pass over a token: (`b64token` of RFC 6750, only base64url characters and dots).
// `&`/`|` on booleans on purpose: no branch per byte, so the loop vectorizes.
#[allow(clippy::needless_bitwise_bool)]
fn scan(token: &[u8]) -> (bool, bool) {
    // The common case first: a JWT, base64url and dots only, is also a `b64token`
    // (the dot is one of its characters), so one narrower check answers both.
    if token.last() != Some(&b'=') && is_base64url_or_dots(token) {
        return (!token.is_empty(), true);
    }
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (mut url, mut token68) = (true, true);
    for chunk in token[..body_end].chunks(64) {
        // Folded without early exit so that it compiles to SIMD.
        let (chunk_url, chunk_token68) = chunk.iter().fold((true, true), |(url, token68), &b| {
            let b_url = is_base64url(b) | (b == b'.');
            (url & b_url, token68 & (b_url | (b == b'~') | (b == b'+') | (b == b'/')))
        });
        url &= chunk_url;
        token68 &= chunk_token68;
        if !token68 {
            break;
        }
    }
    // Padding `=` is not part of a JWT.
    (body_end > 0 && token68, body_end == token.len() && url)
}

/// Whether every byte is a base64url character or a dot: one OR-reduction of
/// "bad byte" flags without early exit, which the compiler turns into SIMD.
// `|` on booleans on purpose: no branch per byte.
#[allow(clippy::needless_bitwise_bool)]
fn is_base64url_or_dots(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |bad, &b| bad | u8::from(!(is_base64url(b) | (b == b'.')))) == 0
}

/// Three non-empty segments, given a text of base64url characters and dots. The
/// searches use memchr.
fn jwt_segments(text: &str) -> bool {
    let (Some(first), Some(last)) = (text.find('.'), text.rfind('.')) else {
        return false;
    };
    first > 0 && last > first + 1 && last + 1 < text.len() && !text[first + 1..last].contains('.')
}

/// The token of a `Bearer` header value; `Ok(None)` for another scheme.
fn bearer_bytes(value: &[u8]) -> Result<Option<&[u8]>, AuthError> {
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        // A bare scheme ("Bearer") or a bare token: neither is a usable bearer header.
        return if value.eq_ignore_ascii_case(b"bearer") {
            Err(AuthError::with_detail(AuthErrorKind::MalformedHeader, "no token after Bearer"))
        } else {
            Ok(None)
        };
    };
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    // RFC 9110 allows one or more spaces between scheme and credentials.
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(AuthError::with_detail(AuthErrorKind::MalformedHeader, "no token after Bearer"));
    }
    Ok(Some(token))
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
#[cfg(test)]
fn is_token68(token: &[u8]) -> bool {
    scan(token).0
}

/// Three non-empty base64url segments (the signature may not be empty either).
#[cfg(test)]
fn looks_like_jwt(token: &str) -> bool {
    let (_, url) = scan(token.as_bytes());
    url && jwt_segments(token)
}

/// `ALPHA / DIGIT / "-" / "_"`, without branches.
#[inline]
#[allow(clippy::needless_bitwise_bool)]
fn is_base64url(b: u8) -> bool {
    let folded = b | 0x20;
    (folded.wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10) | (b == b'-') | (b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&http::HeaderName, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    const JWT: &str = "aGVhZGVy.cGF5bG9hZA.c2ln";

    #[test]
    fn segments_are_found_in_long_tokens() {
        let long = |at: &[usize]| {
            let mut text = vec![b'a'; 700];
            for &i in at {
                text[i] = b'.';
            }
            String::from_utf8(text).unwrap()
        };
        assert!(jwt_segments(&long(&[10, 600])));
        assert!(!jwt_segments(&long(&[10, 300, 600])), "a third dot in the payload");
        assert!(!jwt_segments(&long(&[10, 254, 255, 600])));
        assert!(!jwt_segments(&long(&[0, 600])));
        assert!(!jwt_segments(&long(&[10, 699])));
        assert!(!jwt_segments(&long(&[10, 11])));
        assert!(!jwt_segments(&long(&[600])));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_wins_over_cookies() {
        let config = CredentialConfig::default();
        let map = headers(&[
            (&AUTHORIZATION, b"bEaReR  aGVhZGVy.cGF5bG9hZA.c2ln"),
            (&COOKIE, b"stytch_session=opaque-token"),
        ]);
        let found = config.find(&map).unwrap().unwrap();
        assert_eq!(found.source, CredentialSource::Bearer);
        assert_eq!(found.jwt, Some(JWT));
        assert_eq!(found.opaque, None);
    }

    #[test]
    fn cookies_give_both_tokens() {
        let config = CredentialConfig::default();
        let map = headers(&[(&COOKIE, b"a=b; stytch_session_jwt=aGVhZGVy.cGF5bG9hZA.c2ln; stytch_session=tok_123")]);
        let found = config.find(&map).unwrap().unwrap();
        assert_eq!(found.source, CredentialSource::Cookie);
        assert_eq!(found.jwt, Some(JWT));
        assert_eq!(found.opaque, Some("tok_123"));
    }

    #[test]
    fn bad_inputs_have_precise_kinds() {
        type Case<'a> = (&'a [(&'a http::HeaderName, &'a [u8])], AuthErrorKind);
        let config = CredentialConfig::default();
        let cases: [Case<'_>; 6] = [
            (
                &[(&AUTHORIZATION, b"Bearer a"), (&AUTHORIZATION, b"Bearer b")],
                AuthErrorKind::MultipleAuthorizationHeaders,
            ),
            (&[(&AUTHORIZATION, b"Bearer")], AuthErrorKind::MalformedHeader),
            (&[(&AUTHORIZATION, b"Bearer    ")], AuthErrorKind::MalformedHeader),
            (&[(&AUTHORIZATION, b"Bearer ab cd")], AuthErrorKind::InvalidCharacters),
            (&[(&AUTHORIZATION, "Bearer t\u{f6}ken".as_bytes())], AuthErrorKind::InvalidCharacters),
            (&[(&COOKIE, b"stytch_session_jwt=not-a-jwt")], AuthErrorKind::Malformed),
        ];
        for (pairs, kind) in cases {
            assert_eq!(config.find(&headers(pairs)).unwrap_err().kind(), kind);
        }
        let big = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1));
        let map = headers(&[(&AUTHORIZATION, big.as_bytes())]);
        assert_eq!(config.find(&map).unwrap_err().kind(), AuthErrorKind::TokenTooLarge);
    }

    #[test]
    fn other_schemes_and_missing_credentials_are_anonymous() {
        let config = CredentialConfig::default();
        assert_eq!(config.find(&headers(&[(&AUTHORIZATION, b"Basic dXNlcjpwYXNz")])).unwrap(), None);
        assert_eq!(config.find(&HeaderMap::new()).unwrap(), None);
        assert_eq!(config.find(&headers(&[(&COOKIE, b"stytch_session=")])).unwrap(), None);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(JWT));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b+.c"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a.b."));
        assert!(!looks_like_jwt(""));
        assert!(!looks_like_jwt("a.b=.c"));
    }

    /// The byte-at-a-time definitions the vectorized checks must agree with.
    fn reference_jwt(token: &str) -> bool {
        let mut segments = 0;
        for segment in token.split('.') {
            segments += 1;
            if segments > 3
                || segment.is_empty()
                || !segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return false;
            }
        }
        segments == 3
    }

    fn reference_token68(token: &[u8]) -> bool {
        let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        body_end > 0
            && token[..body_end]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
    }

    #[test]
    fn vectorized_checks_match_the_reference() {
        let alphabet: &[u8] = b"aZ09-_.+=/~ @[`{\x80\xc3";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        // Every string of up to 4 bytes over the alphabet.
        let mut frontier: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let next: Vec<Vec<u8>> =
                frontier.iter().flat_map(|s| alphabet.iter().map(move |&b| [s.as_slice(), &[b]].concat())).collect();
            inputs.extend(next.iter().cloned());
            frontier = next;
        }
        // Long tokens with one odd byte at every position across the 64-byte chunks.
        let long = format!("{}.{}.{}", "h".repeat(70), "p".repeat(140), "s".repeat(90));
        for position in 0..long.len() {
            for &odd in b".=+ \x80" {
                let mut bytes = long.clone().into_bytes();
                bytes[position] = odd;
                inputs.push(bytes);
            }
        }
        inputs.push(long.into_bytes());
        for input in &inputs {
            assert_eq!(is_token68(input), reference_token68(input), "{input:?}");
            if let Ok(text) = std::str::from_utf8(input) {
                assert_eq!(looks_like_jwt(text), reference_jwt(text), "{text:?}");
            }
        }
    }
}
