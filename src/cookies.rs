//! Writing session cookies back: renewed tokens after a confirmation with the
//! issuer, or cleared cookies when the issuer says the session is gone.
//!
//! Only ever for requests whose credential came from cookies: a bearer client never
//! gets cookies.

use std::time::{Duration, SystemTime};

use cookie::Cookie;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::authority::RenewedTokens;
use crate::credential::CredentialConfig;

/// The `SameSite` attribute of the session cookies (RFC 6265bis §4.1.2.7).
///
/// Our own type, so that this crate's API does not follow the `cookie` crate's
/// major versions.
///
/// # Example
///
/// ```
/// use tower_stepup::{CookieAttributes, SameSite};
///
/// let attributes = CookieAttributes::default().with_same_site(SameSite::Strict);
/// # let _ = attributes;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only on requests from this site.
    Strict,
    /// Sent on requests from this site and on top-level navigations to it (the default).
    #[default]
    Lax,
    /// Sent on every request, cross-site too. Browsers require `Secure` with it.
    None,
}

impl From<SameSite> for cookie::SameSite {
    fn from(value: SameSite) -> Self {
        match value {
            SameSite::Strict => Self::Strict,
            SameSite::Lax => Self::Lax,
            SameSite::None => Self::None,
        }
    }
}

/// Attributes of the session cookies this crate writes.
///
/// Defaults: `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, and a
/// `Max-Age` matching the session's remaining lifetime.
///
/// # Example
///
/// ```
/// use tower_stepup::CookieAttributes;
///
/// let attributes = CookieAttributes::default().with_domain("example.com");
/// # let _ = attributes;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CookieAttributes {
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
}

impl Default for CookieAttributes {
    fn default() -> Self {
        Self { secure: true, http_only: true, same_site: SameSite::Lax, path: "/".to_owned(), domain: None }
    }
}

impl CookieAttributes {
    /// Whether cookies carry `Secure` (default `true`).
    ///
    /// # ⚠️ Warning
    /// Without `Secure`, the session travels over plain http. Turn it off only for
    /// local development over `http://localhost`.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }
    /// Whether cookies carry `HttpOnly` (default `true`).
    ///
    /// # ⚠️ Warning
    /// Without `HttpOnly`, any script on the page (including injected ones) can read
    /// the session. Stytch's frontend SDKs read the JWT cookie themselves; only
    /// disable this if you rely on that.
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }
    /// The `SameSite` attribute (default [`SameSite::Lax`]).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }
    /// The `Path` attribute (default `/`).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// The `Domain` attribute (default none: host-only cookies).
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    fn cookie<'a>(&self, name: &'a str, value: &'a str, max_age: Duration) -> Cookie<'a> {
        let mut builder = Cookie::build((name, value))
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(cookie::SameSite::from(self.same_site))
            .path(self.path.clone())
            .max_age(cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)));
        if let Some(domain) = &self.domain {
            builder = builder.domain(domain.clone());
        }
        builder.build()
    }

    fn append(&self, headers: &mut HeaderMap, name: &str, value: &str, max_age: Duration) {
        let text = self.cookie(name, value, max_age).to_string();
        match HeaderValue::from_str(&text) {
            Ok(value) => {
                headers.append(SET_COOKIE, value);
            }
            Err(_) => tracing::warn!(cookie = name, "renewed token is not a valid cookie value; not set"),
        }
    }

    /// Writes the renewed tokens.
    pub(crate) fn set_renewed(&self, headers: &mut HeaderMap, names: &CredentialConfig, renewed: &RenewedTokens) {
        // Stytch's own SDKs give both cookies the session's lifetime; without an
        // expiry, keep them for the browser session only (a short default).
        let max_age = renewed
            .expires_at()
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::from_secs(300));
        if let (Some(name), Some(jwt)) = (&names.jwt_cookie, renewed.session_jwt()) {
            self.append(headers, name, jwt, max_age);
        }
        if let (Some(name), Some(token)) = (&names.token_cookie, renewed.session_token()) {
            self.append(headers, name, token, max_age);
        }
    }

    /// Clears both session cookies.
    pub(crate) fn clear(&self, headers: &mut HeaderMap, names: &CredentialConfig) {
        for name in [&names.jwt_cookie, &names.token_cookie].into_iter().flatten() {
            self.append(headers, name, "", Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewed_and_cleared_cookies() {
        let names = CredentialConfig::default();
        let mut headers = HeaderMap::new();
        let renewed = RenewedTokens::new()
            .with_session_jwt("a.b.c")
            .with_session_token("tok")
            .with_expires_at(SystemTime::now() + Duration::from_secs(3600));
        CookieAttributes::default().set_renewed(&mut headers, &names, &renewed);
        let values: Vec<_> = headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(values.len(), 2);
        assert!(values[0].starts_with("stytch_session_jwt=a.b.c;"), "{}", values[0]);
        for value in &values {
            for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age="] {
                assert!(value.contains(attribute), "{value} lacks {attribute}");
            }
        }
        let mut headers = HeaderMap::new();
        CookieAttributes::default().clear(&mut headers, &names);
        let cleared: Vec<_> = headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(cleared.len(), 2);
        assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
    }
}
