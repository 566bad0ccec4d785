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
                    let (jwt, opaque) = if looks_like_jwt(token) { (Some(token), None) } else { (None, Some(token)) };
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

    fn bearer_token<'a>(&self, value: &'a [u8]) -> Result<Option<&'a str>, AuthError> {
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
        self.check_token(token).map(Some)
    }

    fn cookies<'a>(&self, headers: &'a HeaderMap) -> Result<Option<Credential<'a>>, AuthError> {
        if self.jwt_cookie.is_none() && self.token_cookie.is_none() {
            return Ok(None);
        }
        let mut jwt = None;
        let mut opaque = None;
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
        if let Some(token) = jwt {
            if !looks_like_jwt(token) {
                return Err(AuthError::with_detail(AuthErrorKind::Malformed, "session JWT cookie is not a JWT"));
            }
        }
        Ok((jwt.is_some() || opaque.is_some()).then_some(Credential { source: CredentialSource::Cookie, jwt, opaque }))
    }

    fn check_token<'a>(&self, token: &'a [u8]) -> Result<&'a str, AuthError> {
        if token.len() > self.max_token_len {
            return Err(AuthErrorKind::TokenTooLarge.into());
        }
        if !is_token68(token) {
            return Err(AuthErrorKind::InvalidCharacters.into());
        }
        std::str::from_utf8(token).map_err(|_| AuthErrorKind::InvalidCharacters.into())
    }
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(token: &[u8]) -> bool {
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0
        && token[..body_end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// Three non-empty base64url segments (the signature may not be empty either).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
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
    }
}
