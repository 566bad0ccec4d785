//! The pieces every call to an issuer shares: one pooled client with timeouts,
//! bounded response bodies, URL policy, and error mapping that never leaks tokens.

use std::time::Duration;

use crate::error::{AuthError, AuthErrorKind, ConfigError};

/// Builds the pooled HTTP client. Each request also sets its own total timeout.
pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    client_builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))
}

/// The settings every client of this crate shares.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        // Issuers do not redirect their key sets or session APIs; following a
        // redirect would let a compromised hop point us anywhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tower-stepup/", env!("CARGO_PKG_VERSION")))
}

/// Checks that a configured URL is absolute and uses `https` (plain `http` only for
/// loopback hosts, or when explicitly allowed).
pub(crate) fn check_url(name: &'static str, url: &str, allow_http: bool) -> Result<reqwest::Url, ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ConfigError::invalid(name, e.to_string()))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http || is_loopback(&parsed) => Ok(parsed),
        "http" => Err(ConfigError::invalid(
            name,
            "plain http is only allowed for loopback hosts (use https, or allow http explicitly)",
        )),
        other => Err(ConfigError::invalid(name, format!("unsupported scheme {other:?}"))),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Reads a response body, refusing more than `limit` bytes.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    kind: AuthErrorKind,
) -> Result<Vec<u8>, AuthError> {
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Err(AuthError::with_detail(kind, "response body too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e, kind))? {
        if body.len() + chunk.len() > limit {
            return Err(AuthError::with_detail(kind, "response body too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps a transport error; the URL is left out on purpose (it may carry a token in
/// custom setups) and timeouts get their own kind.
pub(crate) fn transport_error(error: &reqwest::Error, kind: AuthErrorKind) -> AuthError {
    if error.is_timeout() {
        let kind = if kind == AuthErrorKind::KeySetUnavailable { kind } else { AuthErrorKind::AuthorityTimeout };
        AuthError::with_detail(kind, "timed out")
    } else if error.is_connect() {
        AuthError::with_detail(kind, "could not connect")
    } else {
        AuthError::with_detail(kind, "transport error")
    }
}

/// The HTTP side of an authority: one pooled client, the timeout applied to each
/// request, and the retry policy for calls to the issuer's API.
///
/// The timeout lives here rather than in the client so that changing it keeps the
/// client (and its connection pool): clones and reconfigured copies share one pool.
#[derive(Debug, Clone)]
pub(crate) struct IssuerClient {
    client: reqwest::Client,
    timeout: Duration,
    max_retries: u32,
}

impl IssuerClient {
    pub(crate) fn new(timeout: Duration) -> Result<Self, ConfigError> {
        // No client-wide timeout: each request sets its own, which covers connecting too.
        Ok(Self {
            client: client_builder().build().map_err(|e| ConfigError::HttpClient(e.to_string()))?,
            timeout,
            max_retries: 0,
        })
    }

    /// Sets the timeout of each later request; checked by [`check`](Self::check).
    pub(crate) fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    pub(crate) fn with_max_retries(self, max_retries: u32) -> Self {
        Self { max_retries, ..self }
    }

    /// Reports a setting no request could work with.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid("authority timeout", "must be above zero"));
        }
        Ok(())
    }

    /// Sends a request built by `make`, with this client's timeout, retrying only
    /// when the connection could not be established (the request never reached the
    /// server, so a retry cannot apply a non-idempotent call twice).
    pub(crate) async fn send(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AuthError> {
        let mut attempt = 0;
        loop {
            match make(&self.client).timeout(self.timeout).send().await {
                Ok(response) => return Ok(response),
                Err(error) if error.is_connect() && attempt < self.max_retries => attempt += 1,
                Err(error) => return Err(transport_error(&error, AuthErrorKind::AuthorityUnavailable)),
            }
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 15)]));
        }
    }
}

/// `max-age` from a `Cache-Control` header (`no-store`/`no-cache` count as zero).
pub(crate) fn cache_max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',').map(str::trim) {
            let (name, argument) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("max-age") {
                if let Ok(seconds) = argument.trim_matches('"').parse::<u64>() {
                    max_age = Some(Duration::from_secs(seconds));
                }
            } else if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(cache_max_age(&headers), None);
        headers.insert(http::header::CACHE_CONTROL, "public, max-age=3600, must-revalidate".parse().unwrap());
        assert_eq!(cache_max_age(&headers), Some(Duration::from_secs(3600)));
        headers.insert(http::header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(cache_max_age(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn url_policy() {
        assert!(check_url("u", "https://example.com/jwks", false).is_ok());
        assert!(check_url("u", "http://127.0.0.1:8080/jwks", false).is_ok());
        assert!(check_url("u", "http://localhost/jwks", false).is_ok());
        assert!(check_url("u", "http://example.com/jwks", false).is_err());
        assert!(check_url("u", "http://example.com/jwks", true).is_ok());
        assert!(check_url("u", "ftp://example.com/jwks", true).is_err());
        assert!(check_url("u", "not a url", true).is_err());
    }
}
