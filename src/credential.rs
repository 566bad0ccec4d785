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
        let mut found = Found::default();
        for value in headers.get_all(COOKIE) {
            let before = found;
            // A Cookie header that is not UTF-8 cannot hold our tokens; other cookies
            // in it are not our business: it counts as absent.
            if !self.cookie_header(value.as_bytes(), &mut found)? {
                found = before;
            }
        }
        let Found { jwt, opaque } = found;
        if jwt.is_some_and(|token| !token.jwt) {
            return Err(AuthError::with_detail(AuthErrorKind::Malformed, "session JWT cookie is not a JWT"));
        }
        let (jwt, opaque) = (jwt.map(|t| t.text), opaque.map(|t| t.text));
        Ok((jwt.is_some() || opaque.is_some()).then_some(Credential { source: CredentialSource::Cookie, jwt, opaque }))
    }

    /// Reads our two cookies from one `Cookie` header into `found`, in order (a later
    /// cookie of the same name wins, an emptied one counts as absent, the first bad
    /// one is the error). `Ok(false)`: the header is not UTF-8, so it is ignored.
    ///
    /// The same answers as parsing every cookie with the `cookie` crate
    /// (`Cookie::split_parse`, then `value_raw`: pieces split at `;`, the name and
    /// the value trimmed of Unicode whitespace, quotes kept), without its work on
    /// the cookies that are not ours: the header is checked as UTF-8 once (a piece
    /// split at the ASCII `;` is UTF-8 exactly when the whole header is, so one
    /// check answers for every piece, ours included), a piece whose name is plainly
    /// not ours is skipped, and our values are validated in one pass over their
    /// bytes.
    fn cookie_header<'a>(&self, header: &'a [u8], found: &mut Found<'a>) -> Result<bool, AuthError> {
        let Ok(header) = std::str::from_utf8(header) else {
            return Ok(false);
        };
        let mut rest = header;
        while !rest.is_empty() {
            // The name ends at the first `=`, unless a `;` ends the piece before.
            let split = rest.bytes().position(|b| b == b'=' || b == b';').unwrap_or(rest.len());
            let (name, after) = rest.split_at(split);
            let name = name.as_bytes().trim_ascii();
            // Ends that are visible ASCII: trimming ASCII whitespace is then all
            // that Unicode trimming would have done, so this is the name the
            // general path would read.
            let plain = name.first().is_some_and(u8::is_ascii_graphic) && name.last().is_some_and(u8::is_ascii_graphic);
            if let Some(value) = after.strip_prefix('=').filter(|_| plain) {
                let Some(slot) = self.slot_of(name, found) else {
                    // Plainly another cookie: skipped unread.
                    rest = value.split_once(';').map_or("", |(_, next)| next);
                    continue;
                };
                if let Some(FastValue { value, run, end }) = fast_cookie_value(value) {
                    if !value.is_empty() {
                        *slot = Some(self.checked_run(value, &run)?);
                    }
                    rest = rest.get(split + 1 + end + 1..).unwrap_or("");
                    continue;
                }
                // Whitespace inside, quotes, `+`/`/`/`=`, non-ASCII: the general
                // path below.
            }
            let (piece, next) = rest.split_once(';').unwrap_or((rest, ""));
            self.cookie_piece(piece, found)?;
            rest = next;
        }
        Ok(true)
    }

    /// One `name=value` piece of a `Cookie` header, as the `cookie` crate reads it.
    fn cookie_piece<'a>(&self, piece: &'a str, found: &mut Found<'a>) -> Result<(), AuthError> {
        let piece = piece.trim();
        let Some((name, value)) = piece.split_once('=') else { return Ok(()) };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Ok(());
        }
        let Some(slot) = self.slot_of(name.as_bytes(), found) else { return Ok(()) };
        if !value.is_empty() {
            *slot = Some(self.check_text(value)?);
        }
        Ok(())
    }

    /// The slot of the cookie named `name` (already trimmed), if it is ours.
    fn slot_of<'s, 'a>(&self, name: &[u8], found: &'s mut Found<'a>) -> Option<&'s mut Option<Checked<'a>>> {
        let is = |ours: &Option<String>| ours.as_deref().is_some_and(|ours| ours.as_bytes() == name);
        if is(&self.jwt_cookie) {
            Some(&mut found.jwt)
        } else if is(&self.token_cookie) {
            Some(&mut found.opaque)
        } else {
            None
        }
    }

    /// Size and character checks, and whether the token has the shape of a JWT
    /// (this runs on every request): the check that makes the bytes a `str` (one
    /// pass; `unsafe` is forbidden in this crate, and no safe conversion skips it),
    /// then [`check_text`](Self::check_text).
    fn check_token<'a>(&self, token: &'a [u8]) -> Result<Checked<'a>, AuthError> {
        if token.len() > self.max_token_len {
            return Err(AuthErrorKind::TokenTooLarge.into());
        }
        let text = std::str::from_utf8(token).map_err(|_| AuthError::new(AuthErrorKind::InvalidCharacters))?;
        self.check_text(text)
    }

    /// Size and character checks, and whether the token has the shape of a JWT, in
    /// one pass over its bytes.
    fn check_text<'a>(&self, token: &'a str) -> Result<Checked<'a>, AuthError> {
        if token.len() > self.max_token_len {
            return Err(AuthErrorKind::TokenTooLarge.into());
        }
        let run = Run::of(token.as_bytes());
        if run.len == token.len() {
            return self.checked_run(token, &run);
        }
        Self::b64token(token)
    }

    /// A token that is not base64url and dots only: a `b64token` still (an opaque
    /// token with `+`, `/`, `~` or padding), never a JWT.
    fn b64token(token: &str) -> Result<Checked<'_>, AuthError> {
        if !is_b64token(token.as_bytes()) {
            return Err(AuthErrorKind::InvalidCharacters.into());
        }
        Ok(Checked { text: token, jwt: false })
    }

    /// A non-empty `token` that is one [`Run`] of base64url characters and dots
    /// (so a `b64token`), checked for size.
    fn checked_run<'a>(&self, token: &'a str, run: &Run) -> Result<Checked<'a>, AuthError> {
        if token.len() > self.max_token_len {
            return Err(AuthErrorKind::TokenTooLarge.into());
        }
        if token.is_empty() {
            return Err(AuthErrorKind::InvalidCharacters.into());
        }
        Ok(Checked { text: token, jwt: run.is_jwt(token.len()) })
    }
}

/// Our cookie's value found by [`fast_cookie_value`].
struct FastValue<'a> {
    /// The value, trimmed; possibly empty.
    value: &'a str,
    /// What the scan of the value found.
    run: Run,
    /// Where the piece ends: the index of its `;`, or the end of the header.
    end: usize,
}

/// The value of a cookie whose `=` was just read (`rest`: what follows it), when it
/// is nothing but base64url characters and dots, with only spaces and tabs around
/// it before the next `;`. `None` for anything else (the general path decides).
fn fast_cookie_value(rest: &str) -> Option<FastValue<'_>> {
    let leading = rest.bytes().take_while(|&b| b == b' ' || b == b'\t').count();
    let tail = rest.get(leading..)?;
    let run = Run::of(tail.as_bytes());
    // ASCII up to `run.len`, so a char boundary: `split_at_checked` cannot fail.
    let (value, after) = tail.split_at_checked(run.len)?;
    let spaces = after.bytes().take_while(|&b| b == b' ' || b == b'\t').count();
    match after.as_bytes().get(spaces) {
        None | Some(b';') => Some(FastValue { value, run, end: leading + run.len + spaces }),
        Some(_) => None,
    }
}

/// The found tokens of a request's cookies.
#[derive(Clone, Copy, Default)]
struct Found<'a> {
    jwt: Option<Checked<'a>>,
    opaque: Option<Checked<'a>>,
}

/// One pass over bytes: how many of them, from the start, are base64url characters
/// and dots, and where the first two dots of that run are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Run {
    /// Length of the leading run of base64url characters and dots.
    len: usize,
    /// Dots in the run.
    dots: usize,
    /// Positions of the first two dots (meaningful up to `dots`).
    at: [usize; 2],
}

impl Run {
    /// Bytes per step: four SSE2 registers (SSE2 is the baseline of x86-64), one
    /// branch per step.
    const CHUNK: usize = 64;
    /// Bytes per [`marks`] block: one SSE2 register.
    const BLOCK: usize = 16;

    fn of(bytes: &[u8]) -> Self {
        let mut run = Self::default();
        let (chunks, tail) = bytes.as_chunks::<{ Self::CHUNK }>();
        let mut index = 0;
        // Each chunk is checked branch-free, so that it compiles to a few SIMD
        // compares, in a loop that calls nothing (so its constants stay in
        // registers); the rare chunk holding a dot or the end of the run is read
        // again, by blocks of SIMD compares too.
        while let Some(skipped) = chunks.get(index..).and_then(|rest| rest.iter().position(|c| !chunk_is_plain(c))) {
            index += skipped;
            let Some(chunk) = chunks.get(index) else { break };
            if !run.blocks(chunk, index * Self::CHUNK) {
                return run;
            }
            index += 1;
        }
        let offset = chunks.len() * Self::CHUNK;
        let (blocks, last) = tail.as_chunks::<{ Self::BLOCK }>();
        if !run.blocks(blocks.as_flattened(), offset) {
            return run;
        }
        // The last bytes, padded with a base64url byte (neither a dot nor the end
        // of the run), are read like a block of their own length.
        let mut padded = [b'A'; Self::BLOCK];
        padded[..last.len()].copy_from_slice(last);
        run.block(&padded, offset + blocks.len() * Self::BLOCK, last.len());
        run
    }

    /// Reads whole blocks of `bytes` (at `offset`), skipping the plain ones; `false`
    /// where the run ends.
    fn blocks(&mut self, bytes: &[u8], offset: usize) -> bool {
        let (blocks, _) = bytes.as_chunks::<{ Self::BLOCK }>();
        for (index, block) in blocks.iter().enumerate() {
            let at = offset + index * Self::BLOCK;
            if block_is_plain(block) {
                self.len = at + Self::BLOCK;
            } else if !self.block(block, at, Self::BLOCK) {
                return false;
            }
        }
        true
    }

    /// Reads the first `valid` bytes of `block` (at `offset`): their dots, and where
    /// the run ends; `false` when it ends there.
    fn block(&mut self, block: &[u8; Self::BLOCK], offset: usize, valid: usize) -> bool {
        let (stops, mut dots) = marks(block);
        // A mark is the low bit of its byte: `trailing_zeros() / 8` is its index
        // (16, past the block, when there is none).
        let valid_bits = u32::try_from(valid).map_or(u32::MAX, |valid| valid.saturating_mul(8));
        let end_bits = stops.trailing_zeros().min(valid_bits);
        let end = (end_bits / 8) as usize;
        // The dots before the end: a shift of at most 128 bits, where
        // `checked_shl` keeps the no-panic rule.
        dots &= 1u128.checked_shl(end_bits).map_or(u128::MAX, |bit| bit - 1);
        while dots != 0 {
            let bit = dots.trailing_zeros();
            if let Some(at) = self.at.get_mut(self.dots) {
                *at = offset + (bit / 8) as usize;
            }
            self.dots += 1;
            dots ^= 1 << bit;
        }
        self.len = offset + end;
        end == Self::BLOCK
    }

    /// Three non-empty segments: exactly two dots, neither at an end, not adjacent.
    fn is_jwt(&self, len: usize) -> bool {
        let [first, second] = self.at;
        self.dots == 2 && first > 0 && second > first + 1 && second + 1 < len
    }
}

/// Whether a chunk is base64url characters only (no dot, nothing else): one
/// OR-reduction of "not plain" flags without early exit, which becomes SIMD.
#[inline]
fn chunk_is_plain(chunk: &[u8; Run::CHUNK]) -> bool {
    chunk.iter().fold(0u8, |odd, &b| odd | u8::from(!is_base64url(b))) == 0
}

/// [`chunk_is_plain`] for a block.
#[inline]
fn block_is_plain(block: &[u8; Run::BLOCK]) -> bool {
    block.iter().fold(0u8, |odd, &b| odd | u8::from(!is_base64url(b))) == 0
}

/// The bytes of a block that end a run (neither base64url nor a dot), and its dots,
/// as little-endian masks with 1 in the byte of each: byte-wise compares that
/// become SIMD, no per-byte branch (a chunk with a dot holds random base64, which
/// defeats branch prediction byte by byte).
#[inline]
#[allow(clippy::needless_bitwise_bool)]
fn marks(block: &[u8; Run::BLOCK]) -> (u128, u128) {
    // A plain loop over arrays: LLVM vectorizes it (`array::map` stays scalar).
    let (mut stops, mut dots) = ([0u8; Run::BLOCK], [0u8; Run::BLOCK]);
    for ((stop, dot), &b) in stops.iter_mut().zip(dots.iter_mut()).zip(block) {
        *stop = u8::from(!(is_base64url(b) | (b == b'.')));
        *dot = u8::from(b == b'.');
    }
    (u128::from_le_bytes(stops), u128::from_le_bytes(dots))
}

/// A token that passed [`CredentialConfig::check_token`].
#[derive(Clone, Copy)]
struct Checked<'a> {
    text: &'a str,
    /// Three non-empty base64url segments.
    jwt: bool,
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// Byte by byte: only for tokens that are not base64url and dots only (never a
/// JWT), which [`Run`] answers on the hot path.
fn is_b64token(token: &[u8]) -> bool {
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0 && token[..body_end].iter().all(|&b| is_base64url(b) || matches!(b, b'.' | b'~' | b'+' | b'/'))
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

/// `ALPHA / DIGIT / "-" / "_"`, without branches.
#[inline]
#[allow(clippy::needless_bitwise_bool)]
fn is_base64url(b: u8) -> bool {
    let folded = b | 0x20;
    below(folded.wrapping_sub(b'a'), 26) | below(b.wrapping_sub(b'0'), 10) | (b == b'-') | (b == b'_')
}

/// `x < n` on bytes, as a signed compare of both with the top bit flipped: SSE2
/// compares bytes as signed only, so this is one `pcmpgtb` where the unsigned
/// compare takes two instructions (`pminub`, `pcmpeqb`).
#[inline]
fn below(x: u8, n: u8) -> bool {
    (x ^ 0x80).cast_signed() < (n ^ 0x80).cast_signed()
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

    /// RFC 6750 `b64token`, as the whole check answers it.
    fn is_token68(token: &[u8]) -> bool {
        CredentialConfig::default().check_token(token).is_ok()
    }

    /// Three non-empty base64url segments, as the whole check answers it.
    fn looks_like_jwt(token: &str) -> bool {
        CredentialConfig::default().check_token(token.as_bytes()).is_ok_and(|checked| checked.jwt)
    }

    /// The JWT shape of a text of base64url characters and dots.
    fn jwt_segments(text: &str) -> bool {
        let run = Run::of(text.as_bytes());
        assert_eq!(run.len, text.len(), "base64url and dots only");
        run.is_jwt(text.len())
    }

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

    /// [`Run::of`] byte by byte: the definition the SIMD scan must agree with.
    fn reference_run(bytes: &[u8]) -> Run {
        let mut run = Run::default();
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'.' {
                if let Some(at) = run.at.get_mut(run.dots) {
                    *at = i;
                }
                run.dots += 1;
            } else if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                run.len = i;
                return run;
            }
        }
        run.len = bytes.len();
        run
    }

    /// The scan, the whole check and the JWT shape agree with the references.
    fn assert_matches_reference(bytes: &[u8]) {
        assert_eq!(Run::of(bytes), reference_run(bytes), "{bytes:?}");
        assert_eq!(is_token68(bytes), reference_token68(bytes), "{bytes:?}");
        if let Ok(text) = std::str::from_utf8(bytes) {
            assert_eq!(looks_like_jwt(text), reference_jwt(text), "{text:?}");
        }
    }

    /// A base64url token of `len` bytes using the whole alphabet.
    fn plain_token(len: usize) -> Vec<u8> {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len).map(|i| alphabet[i * 7 % alphabet.len()]).collect()
    }

    #[test]
    fn scan_matches_the_reference_for_every_byte_at_every_position() {
        // 200 bytes: three 64-byte chunks, their 16-byte blocks, and a tail of 8.
        for position in 0..200 {
            for byte in 0..=u8::MAX {
                let mut token = plain_token(200);
                token[position] = byte;
                assert_matches_reference(&token);
                // With two dots already found before, or the run ending before.
                for &(earlier, mark) in &[(3, b'.'), (70, b'.'), (130, b'/')] {
                    if earlier != position {
                        let mut token = token.clone();
                        token[earlier] = mark;
                        assert_matches_reference(&token);
                    }
                }
            }
        }
    }

    #[test]
    fn scan_matches_the_reference_for_every_length_and_dot_position() {
        for len in 0..=200 {
            let token = plain_token(len);
            assert_matches_reference(&token);
            for end in [b' ', b';', b'=', b'\x80'] {
                assert_matches_reference(&[token.as_slice(), &[end], b"abc"].concat());
            }
            for first in 0..len {
                let mut one = token.clone();
                one[first] = b'.';
                assert_matches_reference(&one);
                // Every second dot after it, for lengths around the chunk and block
                // sizes (every length would be slow unoptimized).
                if [0, 1, 15, 16, 17, 63, 64, 65, 79, 80, 129, 200].contains(&len) {
                    for second in first + 1..len {
                        let mut two = one.clone();
                        two[second] = b'.';
                        assert_matches_reference(&two);
                    }
                }
            }
        }
    }

    /// The cookie reading before issue 13 (every cookie parsed by the `cookie`
    /// crate), with the reference checks: the contract the scan must keep.
    fn reference_cookies<'a>(config: &CredentialConfig, headers: &'a HeaderMap) -> Outcome<'a> {
        let check = |raw: &'a str| -> Result<(&'a str, bool), AuthErrorKind> {
            if raw.len() > config.max_token_len {
                return Err(AuthErrorKind::TokenTooLarge);
            }
            if !reference_token68(raw.as_bytes()) {
                return Err(AuthErrorKind::InvalidCharacters);
            }
            Ok((raw, reference_jwt(raw)))
        };
        let (mut jwt, mut opaque) = (None, None);
        for value in headers.get_all(COOKIE) {
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else { continue };
            for cookie in cookie::Cookie::split_parse(text).flatten() {
                let name = cookie.name();
                let slot = if config.jwt_cookie.as_deref() == Some(name) {
                    &mut jwt
                } else if config.token_cookie.as_deref() == Some(name) {
                    &mut opaque
                } else {
                    continue;
                };
                let raw = cookie.value_raw().unwrap();
                if raw.is_empty() {
                    continue;
                }
                *slot = Some(check(raw)?);
            }
        }
        if jwt.is_some_and(|(_, is_jwt)| !is_jwt) {
            return Err(AuthErrorKind::Malformed);
        }
        let (jwt, opaque) = (jwt.map(|t| t.0), opaque.map(|t| t.0));
        Ok((jwt.is_some() || opaque.is_some()).then_some((jwt, opaque)))
    }

    type Outcome<'a> = Result<Option<(Option<&'a str>, Option<&'a str>)>, AuthErrorKind>;

    fn cookie_outcome<'a>(config: &CredentialConfig, headers: &'a HeaderMap) -> Outcome<'a> {
        match config.find(headers) {
            Ok(Some(found)) => {
                assert_eq!(found.source, CredentialSource::Cookie);
                Ok(Some((found.jwt, found.opaque)))
            }
            Ok(None) => Ok(None),
            Err(error) => Err(error.kind()),
        }
    }

    fn cookie_headers(values: &[&[u8]]) -> HeaderMap {
        let pairs: Vec<(&http::HeaderName, &[u8])> = values.iter().map(|value| (&COOKIE, *value)).collect();
        headers(&pairs)
    }

    /// Pieces an attacker (or a messy browser) can put in a `Cookie` header.
    fn cookie_fragments() -> Vec<Vec<u8>> {
        let long_jwt = format!("{}.{}.{}", "h".repeat(40), "p".repeat(1200), "s".repeat(342));
        let garbage: String = (0..4096u32).map(|i| char::from(b'!' + (i * 7919 % 94) as u8)).collect();
        let fragments: Vec<String> = vec![
            format!("stytch_session_jwt={JWT}"),
            format!("stytch_session_jwt={long_jwt}"),
            "stytch_session=tok_123".into(),
            "stytch_session=other-token".into(),
            "stytch_session_jwt=".into(),
            "stytch_session=".into(),
            "stytch_session= ".into(),
            format!(" stytch_session_jwt = {JWT} "),
            format!("\tstytch_session_jwt=\t{JWT}\t"),
            format!("xstytch_session_jwt={JWT}"),
            "stytch_session_jwtx=abc".into(),
            "xstytch_session=abc".into(),
            format!("stytch_session_jwt=\"{JWT}\""),
            "stytch_session=\"tok\"".into(),
            "stytch_session_jwt=a.b".into(),
            format!("stytch_session_jwt={JWT}.x"),
            format!("stytch_session_jwt={JWT}="),
            "stytch_session_jwt=a..b".into(),
            "stytch_session=a+b/c~d==".into(),
            "stytch_session=a b".into(),
            "stytch_session==x".into(),
            "stytch_session=x=".into(),
            "\u{a0}stytch_session=nbsp-name".into(),
            "stytch_session=\u{a0}nbsp-value\u{a0}".into(),
            format!("stytch_session_jwt={JWT}\u{3000}"),
            format!("stytch_session_jwt=\u{2028}{JWT}"),
            "stytch_session=t\u{f6}k".into(),
            "caf\u{e9}=cr\u{e8}me".into(),
            "=x".into(),
            "a".into(),
            String::new(),
            " ".into(),
            "a=b=c".into(),
            "STYTCH_SESSION=upper".into(),
            format!("stytch_session_jwt={garbage}"),
            format!("stytch_session={}", "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1)),
            format!("stytch_session_jwt={}", "a".repeat(4096)),
            "_ga=GA1.1.123456789.1700000000".into(),
        ];
        let mut bytes: Vec<Vec<u8>> = fragments.into_iter().map(String::into_bytes).collect();
        // Not UTF-8 (obs-text is allowed in header values).
        bytes.push(b"stytch_session=\xfftok".to_vec());
        bytes.push(b"other=\xc3".to_vec());
        bytes.push(b"\xe2\x80stytch_session=tok".to_vec());
        bytes
    }

    #[test]
    fn cookie_scan_matches_the_cookie_crate() {
        let fragments = cookie_fragments();
        let separators: [&[u8]; 5] = [b";", b"; ", b" ;", b";;", b" ; "];
        let configs = [
            CredentialConfig::default(),
            CredentialConfig { jwt_cookie: None, ..CredentialConfig::default() },
            CredentialConfig { token_cookie: Some(DEFAULT_JWT_COOKIE.into()), ..CredentialConfig::default() },
            CredentialConfig { max_token_len: 30, ..CredentialConfig::default() },
            CredentialConfig { jwt_cookie: Some("a".into()), token_cookie: Some("caf\u{e9}".into()), max_token_len: 8 },
        ];
        let mut cases: Vec<Vec<Vec<u8>>> = Vec::new();
        // Every fragment alone and every ordered pair, in one header and in two.
        for first in &fragments {
            cases.push(vec![first.clone()]);
            for second in &fragments {
                let joined = [first.as_slice(), b"; ", second.as_slice()].concat();
                cases.push(vec![joined]);
                cases.push(vec![first.clone(), second.clone()]);
            }
        }
        // Longer mixes, with every separator, from a fixed pseudo-random sequence.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |bound: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % bound
        };
        for _ in 0..3000 {
            let header_count = 1 + next(2);
            let mut values = Vec::new();
            for _ in 0..header_count {
                let mut value = Vec::new();
                for piece in 0..=next(5) {
                    if piece > 0 {
                        value.extend_from_slice(separators[next(separators.len())]);
                    }
                    value.extend_from_slice(&fragments[next(fragments.len())]);
                }
                values.push(value);
            }
            cases.push(values);
        }
        for values in &cases {
            let map = cookie_headers(&values.iter().map(Vec::as_slice).collect::<Vec<_>>());
            for config in &configs {
                assert_eq!(cookie_outcome(config, &map), reference_cookies(config, &map), "{values:?}");
            }
        }
    }

    #[test]
    fn attacker_cookies() {
        let config = CredentialConfig::default();
        let find = |values: &[&[u8]]| {
            cookie_outcome(&config, &cookie_headers(values))
                .map(|found| found.map(|f| (f.0.map(str::to_owned), f.1.map(str::to_owned))))
        };
        let jwt = Some(JWT.to_owned());
        // Two cookies of the same name: the last one wins, in one header or across two.
        assert_eq!(find(&[b"stytch_session=first; stytch_session=second"]), Ok(Some((None, Some("second".into())))));
        assert_eq!(find(&[b"stytch_session=first", b"stytch_session=second"]), Ok(Some((None, Some("second".into())))));
        // ... but a bad one is refused even when a good one follows.
        assert_eq!(find(&[b"stytch_session=b a d; stytch_session=good"]), Err(AuthErrorKind::InvalidCharacters));
        // Names that end or begin like ours are other cookies.
        let suffix = format!("xstytch_session_jwt={JWT}; stytch_sessionx=tok");
        assert_eq!(find(&[suffix.as_bytes()]), Ok(None));
        // Whitespace around names and values is not part of them; quotes are.
        let spaced = format!(" stytch_session_jwt =\t{JWT} ;stytch_session= tok ");
        assert_eq!(find(&[spaced.as_bytes()]), Ok(Some((jwt.clone(), Some("tok".into())))));
        let quoted = format!("stytch_session_jwt=\"{JWT}\"");
        assert_eq!(find(&[quoted.as_bytes()]), Err(AuthErrorKind::InvalidCharacters));
        // A header that is not UTF-8 is ignored whole, errors included; another is read.
        let with_jwt = format!("stytch_session_jwt={JWT}");
        assert_eq!(find(&[b"stytch_session=b a d; x=\xff", with_jwt.as_bytes()]), Ok(Some((jwt.clone(), None))));
        assert_eq!(find(&[with_jwt.as_bytes(), b"stytch_session_jwt=\xff"]), Ok(Some((jwt.clone(), None))));
        assert_eq!(find(&[format!("{with_jwt}; other=\u{e9}t\u{e9}").as_bytes()]), Ok(Some((jwt.clone(), None))));
        // Non-ASCII in our own value.
        assert_eq!(find(&["stytch_session=t\u{f6}k".as_bytes()]), Err(AuthErrorKind::InvalidCharacters));
        // Garbage and oversized values.
        let garbage = format!("stytch_session_jwt={}", "A".repeat(4096));
        assert_eq!(find(&[garbage.as_bytes()]), Err(AuthErrorKind::Malformed));
        let huge = format!("stytch_session={}", "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1));
        assert_eq!(find(&[huge.as_bytes()]), Err(AuthErrorKind::TokenTooLarge));
        // Emptied cookies (logout) count as absent, and do not erase an earlier value.
        assert_eq!(find(&[b"stytch_session_jwt=; stytch_session= "]), Ok(None));
        assert_eq!(find(&[b"stytch_session=tok; stytch_session="]), Ok(Some((None, Some("tok".into())))));
    }
}
