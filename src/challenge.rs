//! Challenge responses: RFC 6750 / RFC 9470 `WWW-Authenticate` headers.

use http::{HeaderValue, StatusCode};

use crate::error::AuthError;

/// The parameters of one `Bearer` challenge (RFC 6750 §3, RFC 9470 §3).
#[derive(Debug, Default, Clone)]
pub(crate) struct BearerChallenge<'a> {
    pub(crate) realm: &'a str,
    pub(crate) error: Option<&'static str>,
    pub(crate) error_description: Option<&'a str>,
    pub(crate) scope: Option<&'a str>,
    pub(crate) acr_values: Option<&'a str>,
    pub(crate) max_age: Option<u64>,
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
        assert_eq!(
            challenge.to_header(),
            "Bearer realm=\"a\\\", error=\\\"x\\\"Set-Cookie: y\\\\\"".replace("\\\"x\\\"", "\\\"x")
        );
    }
}
