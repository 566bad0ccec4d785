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
use crate::error::ConfigError;

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

/// Who owns the session cookies in the browser: this server alone, or Stytch's
/// frontend SDK too.
///
/// Stytch's frontend SDKs write `stytch_session` and `stytch_session_jwt`
/// themselves, from script (`document.cookie`), and read them back to know the
/// session: never `HttpOnly`. A server that rewrites those cookies `HttpOnly`
/// (after renewing a session or a step-up) locks the SDK out of them: the browser
/// hides them from `document.cookie` and refuses to let a script overwrite them, so
/// the SDK sees no session and cannot refresh it. Pick the mode that matches the
/// pages.
///
/// # Default: [`BackendOwned`](Self::BackendOwned)
///
/// The default is the safe one when unsure, because its failure is loud and its
/// alternative's failure is silent: with `BackendOwned` on pages that use the SDK,
/// the SDK visibly loses the session after the first renewal (and you switch
/// modes); with `FrontendSdk` on pages without it, every script on the page
/// (injected ones included) could read the session tokens, and nothing would
/// tell you. It is also Stytch's own recommendation for better security (its
/// "HttpOnly cookies" setting, which moves cookie writing to the backend).
///
/// # Example
///
/// ```
/// use tower_stepup::{CookieAttributes, CookieMode};
///
/// // Pages run Stytch's frontend SDK with `availableToSubdomains` on example.com.
/// let attributes = CookieAttributes::new(CookieMode::FrontendSdk).with_domain("example.com");
/// assert_eq!(attributes.mode(), CookieMode::FrontendSdk);
/// assert_eq!(CookieAttributes::default().mode(), CookieMode::BackendOwned);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CookieMode {
    /// Only the backend writes the session cookies: `HttpOnly`, out of reach of
    /// scripts (the default).
    #[default]
    BackendOwned,
    /// Stytch's frontend SDK writes and reads the session cookies too: written as
    /// the SDK writes them (`Path=/`, `SameSite=Lax`, `Secure`, `Max-Age` = the
    /// session's remaining lifetime, and `Domain` when the SDK's
    /// `availableToSubdomains` is on: set the same one with
    /// [`CookieAttributes::with_domain`]), without `HttpOnly`.
    ///
    /// # ⚠️ Warning
    ///
    /// Any script on the page, an injected one included, can read the session
    /// tokens: that is what the SDK needs, and the price of using it.
    FrontendSdk,
}

/// Attributes of the session cookies this crate writes: renewed after a
/// confirmation with the issuer, written after a step-up
/// ([`SessionControl::complete_step_up`](crate::SessionControl::complete_step_up)),
/// and cleared on logout or when the issuer ended the session, always with the
/// same `Domain` and `Path` (a cookie is only replaced or cleared by one with the
/// same name, `Domain` and `Path`).
///
/// Defaults ([`CookieMode::BackendOwned`]): `Secure`, `HttpOnly`, `SameSite=Lax`,
/// `Path=/`, no `Domain` (host-only), and a `Max-Age` matching the session's
/// remaining lifetime. [`new(CookieMode::FrontendSdk)`](Self::new) drops `HttpOnly`,
/// as Stytch's frontend SDK writes them.
///
/// [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build) refuses a
/// `Domain` or `Path` that could not be a cookie attribute.
///
/// # Example
///
/// ```
/// use tower_stepup::CookieAttributes;
///
/// // Cookies for example.com and its subdomains (the SDK's `availableToSubdomains`).
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
        Self::new(CookieMode::default())
    }
}

impl CookieAttributes {
    /// The attributes of `mode`: `Secure`, `SameSite=Lax`, `Path=/`, no `Domain`,
    /// and `HttpOnly` for [`CookieMode::BackendOwned`] only.
    pub fn new(mode: CookieMode) -> Self {
        Self { secure: true, http_only: true, same_site: SameSite::Lax, path: "/".to_owned(), domain: None }
            .with_mode(mode)
    }

    /// Switches to `mode` (sets or drops `HttpOnly`), keeping the other attributes.
    pub fn with_mode(mut self, mode: CookieMode) -> Self {
        self.http_only = mode == CookieMode::BackendOwned;
        self
    }

    /// The mode these attributes write in: [`FrontendSdk`](CookieMode::FrontendSdk)
    /// when cookies are not `HttpOnly`.
    pub fn mode(&self) -> CookieMode {
        if self.http_only {
            CookieMode::BackendOwned
        } else {
            CookieMode::FrontendSdk
        }
    }

    /// Whether cookies carry `Secure` (default `true`).
    ///
    /// # ⚠️ Warning
    /// Without `Secure`, the session travels over plain http. Turn it off only for
    /// local development over `http://localhost` (Stytch's SDK does the same there).
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }
    /// Whether cookies carry `HttpOnly`; the same as [`with_mode`](Self::with_mode)
    /// (`false` is [`CookieMode::FrontendSdk`]), which says why.
    ///
    /// # ⚠️ Warning
    /// Without `HttpOnly`, any script on the page (including injected ones) can read
    /// the session. Stytch's frontend SDKs read the cookies themselves; only
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
    /// The `Path` attribute (default `/`, as Stytch's SDK writes it). It must
    /// start with `/`.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// The `Domain` attribute (default none: host-only cookies), e.g. the domain
    /// Stytch's frontend SDK uses with `availableToSubdomains` (its `domain`
    /// option, else the page's host). The cookies then reach every subdomain.
    ///
    /// Set the same `Domain` the cookies were first written with (by the SDK or
    /// your login handler): a browser only replaces or clears a cookie with the
    /// same name, `Domain` and `Path`; another `Domain` makes a second cookie next
    /// to the old one.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Reports a `Domain` or `Path` that cannot be written as a cookie attribute
    /// (a `;` would smuggle in other attributes).
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if let Some(domain) = &self.domain {
            let host = domain.strip_prefix('.').unwrap_or(domain);
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .split('.')
                    .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !valid {
                return Err(ConfigError::invalid("cookie domain", "a host name such as example.com"));
            }
        }
        let path_ok = self.path.starts_with('/') && self.path.bytes().all(|b| b.is_ascii_graphic() && b != b';');
        if !path_ok {
            return Err(ConfigError::invalid("cookie path", "starts with / and holds no spaces, controls or ;"));
        }
        Ok(())
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
    fn modes_differ_in_http_only_only() {
        let names = CredentialConfig::default();
        let renewed = RenewedTokens::new().with_session_jwt("a.b.c").with_session_token("tok");
        for (mode, http_only) in [(CookieMode::BackendOwned, true), (CookieMode::FrontendSdk, false)] {
            let mut headers = HeaderMap::new();
            CookieAttributes::new(mode).with_domain("example.com").set_renewed(&mut headers, &names, &renewed);
            for value in headers.get_all(SET_COOKIE) {
                let cookie = Cookie::parse(value.to_str().unwrap()).unwrap();
                assert_eq!(cookie.http_only(), Some(http_only).filter(|h| *h), "{cookie}");
                assert_eq!(cookie.domain(), Some("example.com"));
                assert_eq!(cookie.path(), Some("/"));
                assert_eq!(cookie.secure(), Some(true));
                assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
            }
        }
    }

    #[test]
    fn attribute_smuggling_is_refused() {
        assert!(CookieAttributes::default().check().is_ok());
        assert!(CookieAttributes::default().with_domain(".example.com").check().is_ok());
        for domain in ["example.com; HttpOnly", "", "exa mple.com", "a..b", "."] {
            assert!(CookieAttributes::default().with_domain(domain).check().is_err(), "{domain:?}");
        }
        for path in ["app", "/a;b", "/a b", "/\u{7f}"] {
            assert!(CookieAttributes::default().with_path(path).check().is_err(), "{path:?}");
        }
    }

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
