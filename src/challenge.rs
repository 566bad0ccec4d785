//! Challenge responses: what a client gets when a route's requirement is not met.
//!
//! - API clients get RFC 6750 / RFC 9470 `WWW-Authenticate` challenges, plus an
//!   RFC 9457 `application/problem+json` body when they accept JSON.
//! - Browsers (cookie credential or none, `Accept: text/html`) are redirected with
//!   `303` to the configured login or step-up page, carrying a same-origin
//!   `return_to`.
//!
//! Replace the format with your own [`Challenge`].

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::credential::CredentialSource;
use crate::error::AuthError;
use crate::rejection::{Forbidden, Rejection, StepUpRequired};
use crate::session::FactorKind;

/// What a [`Challenge`] knows about the refused request.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct ChallengeContext<'a> {
    /// The `realm` configured with [`GuardConfig::with_realm`](crate::GuardConfig::with_realm).
    pub realm: &'a str,
    /// Where the credential was found (`None`: no credential).
    pub source: Option<CredentialSource>,
    /// The request's `Accept` header, if any.
    pub accept: Option<&'a str>,
    /// The path and query to come back to, already checked with [`safe_return_to`]
    /// (`/` when the request's own path was unsafe).
    pub return_to: &'a str,
    /// The configured login page.
    pub login_url: Option<&'a str>,
    /// The configured step-up page.
    pub step_up_url: Option<&'a str>,
    /// The URL of the layer's RFC 9728 protected resource metadata, named in
    /// `Bearer` challenges as `resource_metadata` (RFC 9728 §5.1).
    pub resource_metadata: Option<&'a str>,
    /// Whether problem bodies carry the exact reasons of the refusal
    /// ([`GuardConfig::with_diagnostics`](crate::GuardConfig::with_diagnostics)).
    pub diagnostics: bool,
}

impl<'a> ChallengeContext<'a> {
    /// The context of a request with no credential and no `Accept` header, under
    /// `realm`, to come back to `return_to`; no login or step-up page. Add the rest
    /// with the `with_*` methods. Guards build it for you; this is for testing your
    /// own [`Challenge`].
    ///
    /// `return_to` is used as given: pass a path checked with [`safe_return_to`].
    ///
    /// # Example
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{header, Response, StatusCode};
    /// use tower_stepup::{Challenge, ChallengeContext, CredentialSource, DefaultChallenge, Rejection};
    ///
    /// /// Hides forbidden routes behind a 404; everything else as the default.
    /// struct Hide404;
    ///
    /// impl Challenge for Hide404 {
    ///     fn respond(&self, rejection: &Rejection, context: &ChallengeContext<'_>) -> Response<Bytes> {
    ///         match rejection {
    ///             Rejection::Forbidden(_) => {
    ///                 let mut response = Response::new(Bytes::new());
    ///                 *response.status_mut() = StatusCode::NOT_FOUND;
    ///                 response
    ///             }
    ///             other => DefaultChallenge.respond(other, context),
    ///         }
    ///     }
    /// }
    ///
    /// let browser = ChallengeContext::new("api", "/orders?page=2")
    ///     .with_source(Some(CredentialSource::Cookie))
    ///     .with_accept(Some("text/html"))
    ///     .with_login_url(Some("/login"));
    /// let response = Hide404.respond(&Rejection::Unauthenticated, &browser);
    /// assert_eq!(response.status(), StatusCode::SEE_OTHER);
    /// assert_eq!(response.headers()[header::LOCATION], "/login?return_to=%2Forders%3Fpage%3D2");
    ///
    /// let forbidden = Rejection::Forbidden(Default::default());
    /// assert_eq!(Hide404.respond(&forbidden, &browser).status(), StatusCode::NOT_FOUND);
    /// ```
    pub fn new(realm: &'a str, return_to: &'a str) -> Self {
        Self {
            realm,
            source: None,
            accept: None,
            return_to,
            login_url: None,
            step_up_url: None,
            resource_metadata: None,
            diagnostics: false,
        }
    }
    /// Where the credential was found (`None`: no credential).
    #[must_use]
    pub fn with_source(mut self, source: Option<CredentialSource>) -> Self {
        self.source = source;
        self
    }
    /// The request's `Accept` header.
    #[must_use]
    pub fn with_accept(mut self, accept: Option<&'a str>) -> Self {
        self.accept = accept;
        self
    }
    /// The login page browsers are sent to.
    #[must_use]
    pub fn with_login_url(mut self, login_url: Option<&'a str>) -> Self {
        self.login_url = login_url;
        self
    }
    /// The step-up page browsers are sent to.
    #[must_use]
    pub fn with_step_up_url(mut self, step_up_url: Option<&'a str>) -> Self {
        self.step_up_url = step_up_url;
        self
    }
    /// The URL of the protected resource metadata (RFC 9728) to name in challenges.
    #[must_use]
    pub fn with_resource_metadata(mut self, url: Option<&'a str>) -> Self {
        self.resource_metadata = url;
        self
    }
    /// Problem bodies carry the exact reasons of the refusal
    /// ([`Rejection::diagnostics`]): for development only, see
    /// [`GuardConfig::with_diagnostics`](crate::GuardConfig::with_diagnostics).
    #[must_use]
    pub fn with_diagnostics(mut self, diagnostics: bool) -> Self {
        self.diagnostics = diagnostics;
        self
    }
    /// A browser: no bearer token, and HTML accepted.
    pub fn is_browser(&self) -> bool {
        self.source != Some(CredentialSource::Bearer) && self.accepts("text/html")
    }
    /// The client accepts JSON (`application/json`, `application/problem+json`,
    /// or `application/*`). Quality values are not weighed.
    pub fn wants_json(&self) -> bool {
        self.accepts("application/json") || self.accepts("application/problem+json") || self.accepts("application/*")
    }
    fn accepts(&self, media_type: &str) -> bool {
        self.accept.is_some_and(|accept| {
            accept
                .split(',')
                .any(|item| item.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type)))
        })
    }
}

/// Renders refusals. Implement it to change the format; the guard still attaches the
/// [`Rejection`] and [`AuthError`] to the response extensions.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Response, StatusCode};
/// use tower_stepup::{Challenge, ChallengeContext, DefaultChallenge, Rejection};
///
/// /// Like the default, but forbidden requests get a 404 to hide the route.
/// struct Hide404;
///
/// impl Challenge for Hide404 {
///     fn respond(&self, rejection: &Rejection, context: &ChallengeContext<'_>) -> Response<Bytes> {
///         match rejection {
///             Rejection::Forbidden(_) => {
///                 let mut response = Response::new(Bytes::new());
///                 *response.status_mut() = StatusCode::NOT_FOUND;
///                 response
///             }
///             other => DefaultChallenge.respond(other, context),
///         }
///     }
/// }
/// ```
pub trait Challenge: Send + Sync + 'static {
    /// The response for a refused request.
    fn respond(&self, rejection: &Rejection, context: &ChallengeContext<'_>) -> Response<Bytes>;
}

/// The built-in challenge format: what a client gets when a route's requirement is
/// not met.
///
/// - API clients get RFC 6750 / RFC 9470 `WWW-Authenticate` challenges, plus an
///   RFC 9457 `application/problem+json` body when they accept JSON.
/// - Browsers (cookie credential or none, `Accept: text/html`) are redirected with
///   `303` to the configured login or step-up page, carrying a same-origin
///   `return_to`.
///
/// Replace the format with your own [`Challenge`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultChallenge;

impl Challenge for DefaultChallenge {
    fn respond(&self, rejection: &Rejection, context: &ChallengeContext<'_>) -> Response<Bytes> {
        let response = respond_default(rejection, context);
        if context.diagnostics {
            with_diagnostics(response, rejection)
        } else {
            response
        }
    }
}

/// Adds `"diagnostics"` to a problem body (development only: see
/// [`ChallengeContext::diagnostics`]). Responses without a JSON body stay as they are.
fn with_diagnostics(mut response: Response<Bytes>, rejection: &Rejection) -> Response<Bytes> {
    let reasons = rejection.diagnostics();
    if reasons.is_empty() {
        return response;
    }
    if let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice::<serde_json::Value>(response.body()) {
        body.insert("diagnostics".to_owned(), json!(reasons));
        *response.body_mut() = Bytes::from(serde_json::Value::Object(body).to_string());
    }
    response
}

fn respond_default(rejection: &Rejection, context: &ChallengeContext<'_>) -> Response<Bytes> {
    {
        match rejection {
            Rejection::Unauthenticated => unauthenticated(context, None),
            Rejection::InvalidCredential(error) | Rejection::SessionEnded(error) => {
                unauthenticated(context, Some(error))
            }
            Rejection::StepUp(step_up) => step_up_required(context, step_up),
            Rejection::Forbidden(forbidden) => forbidden_response(context, forbidden),
            Rejection::Unavailable(error) => unavailable(context, error),
        }
    }
}

/// No credential (`error: None`), or a rejected one: `401` (`400` for a malformed
/// request) with an RFC 6750 challenge; browsers go to the login page.
fn unauthenticated(context: &ChallengeContext<'_>, error: Option<&AuthError>) -> Response<Bytes> {
    if let (true, Some(login)) = (context.is_browser(), context.login_url) {
        return redirect(login, &[("return_to", context.return_to)]);
    }
    let (status, challenge) = BearerChallenge::for_error(context.realm, error);
    let (slug, code, detail) = match (error, challenge.error) {
        (Some(error), Some(code)) => ("invalid-credential", code, error.kind().description()),
        _ => ("unauthenticated", "", "authentication is required"),
    };
    challenged(context, status, &challenge, slug, code, detail, json!({}))
}

/// Not strong or recent enough: `401` with an RFC 9470 challenge; browsers go to the
/// step-up page.
fn step_up_required(context: &ChallengeContext<'_>, step_up: &StepUpRequired) -> Response<Bytes> {
    let acr_values = step_up.acr_values.join(" ");
    let max_age = step_up.max_age.map(|d| d.as_secs());
    if let (true, Some(url)) = (context.is_browser(), context.step_up_url) {
        let factors = step_up.factors.iter().map(FactorKind::as_str).collect::<Vec<_>>().join(",");
        let max_age_text = max_age.map(|s| s.to_string()).unwrap_or_default();
        let mut params = vec![("return_to", context.return_to)];
        if !acr_values.is_empty() {
            params.push(("acr_values", &acr_values));
        }
        if max_age.is_some() {
            params.push(("max_age", &max_age_text));
        }
        if !factors.is_empty() {
            params.push(("factors", &factors));
        }
        return redirect(url, &params);
    }
    let description = "a stronger or more recent authentication is required";
    let challenge = BearerChallenge {
        realm: context.realm,
        error: Some("insufficient_user_authentication"),
        error_description: Some(description),
        acr_values: (!acr_values.is_empty()).then_some(acr_values.as_str()),
        max_age,
        ..BearerChallenge::default()
    };
    let extra = json!({
        "acr_values": step_up.acr_values,
        "max_age": max_age,
        "factors": step_up.factors.iter().map(FactorKind::as_str).collect::<Vec<_>>(),
        "context": (!step_up.context.is_empty()).then_some(&step_up.context),
    });
    let code = "insufficient_user_authentication";
    challenged(context, StatusCode::UNAUTHORIZED, &challenge, "step-up-required", code, description, extra)
}

/// Lacking authorization: `403` with an `insufficient_scope` challenge, for browsers
/// too (no page can fix it).
fn forbidden_response(context: &ChallengeContext<'_>, forbidden: &Forbidden) -> Response<Bytes> {
    let scope = forbidden.scopes.join(" ");
    let description = if forbidden.configuration_error.is_some() {
        "the route's requirement is misconfigured (a server configuration error)"
    } else if forbidden.organization.is_some() {
        "the session belongs to another organization"
    } else {
        "the session lacks the required authorization"
    };
    let challenge = BearerChallenge {
        realm: context.realm,
        error: Some("insufficient_scope"),
        error_description: Some(description),
        scope: (!scope.is_empty()).then_some(scope.as_str()),
        ..BearerChallenge::default()
    };
    let extra = json!({
        "scopes": forbidden.scopes,
        "roles": forbidden.roles,
        "permissions": forbidden.permissions,
        "predicates": forbidden.predicates,
        "configuration_error": forbidden.configuration_error,
        "organization": forbidden.organization,
    });
    challenged(context, StatusCode::FORBIDDEN, &challenge, "forbidden", "insufficient_scope", description, extra)
}

/// The issuer or its keys are unreachable: `503` with `Retry-After`, no challenge
/// (the credential may well be good).
fn unavailable(context: &ChallengeContext<'_>, error: &AuthError) -> Response<Bytes> {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let detail = error.kind().description();
    let mut response = problem(context, status, "unavailable", "temporarily_unavailable", detail, json!({}));
    response.headers_mut().insert(RETRY_AFTER, retry_after_value(error));
    response
}

/// The shared shape of a challenge: [`problem`] plus its `WWW-Authenticate` header.
fn challenged(
    context: &ChallengeContext<'_>,
    status: StatusCode,
    challenge: &BearerChallenge<'_>,
    slug: &str,
    error: &str,
    detail: &str,
    extra: serde_json::Value,
) -> Response<Bytes> {
    let mut response = problem(context, status, slug, error, detail, extra);
    // RFC 9728 §5.1: every challenge names the resource metadata, so that a client
    // learns where to get a (better) token whatever it was refused for.
    let challenge = BearerChallenge { resource_metadata: context.resource_metadata, ..challenge.clone() };
    response.headers_mut().insert(WWW_AUTHENTICATE, challenge.to_header());
    response
}

/// A response with `status`; an RFC 9457 body when the client accepts JSON.
fn problem(
    context: &ChallengeContext<'_>,
    status: StatusCode,
    slug: &str,
    error: &str,
    detail: &str,
    extra: serde_json::Value,
) -> Response<Bytes> {
    let mut response = if context.wants_json() {
        let mut body = json!({
            "type": format!("urn:tower-stepup:problem:{slug}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
            if !error.is_empty() {
                body.insert("error".to_owned(), error.into());
            }
            body.extend(extra.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let mut response = Response::new(Bytes::from(body.to_string()));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    } else {
        Response::new(Bytes::new())
    };
    *response.status_mut() = status;
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(base: &str, params: &[(&str, &str)]) -> Response<Bytes> {
    let mut location = String::with_capacity(base.len() + 64);
    location.push_str(base);
    for (i, (name, value)) in params.iter().enumerate() {
        location.push(if i == 0 { '?' } else { '&' });
        location.push_str(name);
        location.push('=');
        crate::http_client::percent_encode(&mut location, value);
    }
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::SEE_OTHER;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
        }
        // Unreachable: every byte was percent-encoded or is a checked URL character.
        Err(_) => *response.status_mut() = StatusCode::UNAUTHORIZED,
    }
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn percent_decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Returns `value` if it is a safe same-origin return path, else `None`.
///
/// Safe: starts with exactly one `/`; no backslash, control character or non-ASCII
/// byte; and the same holds after percent-decoding (so `/%2F%2Fevil.example` and
/// `/%5Cevil.example` are refused). Absolute URLs (`https://…`), scheme-relative
/// `//host` and `/\host` are refused. Use it in your login page before redirecting
/// to a `return_to` parameter.
///
/// # Example
///
/// ```
/// use tower_stepup::safe_return_to;
///
/// assert_eq!(safe_return_to("/settings?tab=2"), Some("/settings?tab=2"));
/// assert_eq!(safe_return_to("//evil.example/"), None);
/// assert_eq!(safe_return_to("https://evil.example/"), None);
/// assert_eq!(safe_return_to("/\\evil.example"), None);
/// assert_eq!(safe_return_to("/%2F%2Fevil.example"), None);
/// ```
pub fn safe_return_to(value: &str) -> Option<&str> {
    let raw = value.as_bytes();
    let raw_ok = raw.first() == Some(&b'/')
        && raw.get(1) != Some(&b'/')
        && raw.iter().all(|&b| b.is_ascii_graphic() && b != b'\\');
    if !raw_ok {
        return None;
    }
    // Decoded, non-ASCII text is fine (`%C3%A9`); what a browser or a careless login
    // page could read as another host is not.
    let decoded = percent_decode(value)?;
    let decoded_ok =
        !matches!(decoded.get(1), Some(b'/' | b'\\')) && decoded.iter().all(|&b| b != b'\\' && !b.is_ascii_control());
    decoded_ok.then_some(value)
}

/// The parameters of one `Bearer` challenge (RFC 6750 §3, RFC 9470 §3).
#[derive(Debug, Default, Clone)]
pub(crate) struct BearerChallenge<'a> {
    pub(crate) realm: &'a str,
    pub(crate) error: Option<&'static str>,
    pub(crate) error_description: Option<&'a str>,
    pub(crate) scope: Option<&'a str>,
    pub(crate) acr_values: Option<&'a str>,
    pub(crate) max_age: Option<u64>,
    /// RFC 9728 §5.1 `resource_metadata`.
    pub(crate) resource_metadata: Option<&'a str>,
}

impl BearerChallenge<'_> {
    /// The challenge for a request whose credential was missing (`None`) or rejected.
    pub(crate) fn for_error<'a>(realm: &'a str, error: Option<&AuthError>) -> (StatusCode, BearerChallenge<'a>) {
        let mut challenge = BearerChallenge { realm, ..BearerChallenge::default() };
        let Some(error) = error else {
            return (StatusCode::UNAUTHORIZED, challenge);
        };
        let kind = error.kind();
        challenge.error_description = Some(kind.description());
        if kind.is_invalid_request() {
            challenge.error = Some("invalid_request");
            (StatusCode::BAD_REQUEST, challenge)
        } else {
            challenge.error = Some("invalid_token");
            (StatusCode::UNAUTHORIZED, challenge)
        }
    }

    /// Renders the header. Every value is quoted and escaped (RFC 9110 §5.6.4), and
    /// characters a header cannot carry are dropped, so no claim or configuration
    /// value can inject header syntax.
    pub(crate) fn to_header(&self) -> HeaderValue {
        let mut out = String::with_capacity(64);
        out.push_str("Bearer ");
        push_param(&mut out, "realm", self.realm);
        if let Some(error) = self.error {
            push_param(&mut out, "error", error);
        }
        if let Some(description) = self.error_description {
            push_param(&mut out, "error_description", description);
        }
        if let Some(scope) = self.scope {
            push_param(&mut out, "scope", scope);
        }
        if let Some(acr_values) = self.acr_values {
            push_param(&mut out, "acr_values", acr_values);
        }
        if let Some(max_age) = self.max_age {
            push_param(&mut out, "max_age", &max_age.to_string());
        }
        if let Some(url) = self.resource_metadata {
            push_param(&mut out, "resource_metadata", url);
        }
        // Only visible ASCII and spaces were written, so this cannot fail.
        HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

fn push_param(out: &mut String, name: &str, value: &str) {
    if !out.ends_with(' ') {
        out.push_str(", ");
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '!'..='~' => out.push(c),
            // Control characters, non-ASCII: not representable; drop them.
            _ => {}
        }
    }
    out.push('"');
}

/// Default `Retry-After` of a `503` whose cause does not know better.
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// Whole seconds, rounded up, at least one (RFC 9110 §10.2.3: delay-seconds).
fn retry_after_value(error: &AuthError) -> HeaderValue {
    let secs = error
        .retry_after()
        .map_or(DEFAULT_RETRY_AFTER_SECS, |after| after.as_secs() + u64::from(after.subsec_nanos() > 0));
    HeaderValue::from(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthErrorKind;

    #[test]
    fn rfc6750_examples() {
        let (status, challenge) = BearerChallenge::for_error("example", None);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.to_header(), "Bearer realm=\"example\"");

        let (status, challenge) = BearerChallenge::for_error("example", Some(&AuthErrorKind::Expired.into()));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.to_header(),
            "Bearer realm=\"example\", error=\"invalid_token\", error_description=\"the token has expired\""
        );

        let (status, _) =
            BearerChallenge::for_error("example", Some(&AuthErrorKind::MultipleAuthorizationHeaders.into()));
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn values_cannot_inject_syntax() {
        let challenge = BearerChallenge { realm: "a\", error=\"x\r\nSet-Cookie: y\\", ..Default::default() };
        assert_eq!(challenge.to_header(), r#"Bearer realm="a\", error=\"xSet-Cookie: y\\""#);
    }
}
