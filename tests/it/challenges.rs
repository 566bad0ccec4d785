//! The challenge table: what `DefaultChallenge` answers for each rejection and kind
//! of client (status, `WWW-Authenticate`, `Location`, body type).
//!
//! Synchronous, on the public API (`ChallengeContext::new`): no server, no layer.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::Response;
use tower_stepup::{
    AuthError, AuthErrorKind, Challenge, ChallengeContext, CredentialSource, DefaultChallenge, FactorKind, Forbidden,
    Rejection, StepUpRequired,
};

/// The kinds of client a challenge tells apart.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// Bearer token, no `Accept`.
    Api,
    /// Bearer token, `Accept: application/json`.
    ApiJson,
    /// Session cookie, `Accept: text/html`.
    Browser,
    /// No credential, `Accept: text/html`.
    NewBrowser,
}

/// `DefaultChallenge`'s response to `rejection` for `client`, with realm `shop`,
/// login page `/login`, step-up page `/step-up`, for `GET /pay?x=1`: one synchronous
/// call on the public API, as users unit-test their own `Challenge`.
fn respond(rejection: &Rejection, client: Client) -> Response<Bytes> {
    let context =
        ChallengeContext::new("shop", "/pay?x=1").with_login_url(Some("/login")).with_step_up_url(Some("/step-up"));
    let context = match client {
        Client::Api => context.with_source(Some(CredentialSource::Bearer)),
        Client::ApiJson => context.with_source(Some(CredentialSource::Bearer)).with_accept(Some("application/json")),
        Client::Browser => context.with_source(Some(CredentialSource::Cookie)).with_accept(Some("text/html")),
        Client::NewBrowser => context.with_accept(Some("text/html")),
    };
    DefaultChallenge.respond(rejection, &context)
}

fn header(response: &Response<Bytes>, name: http::header::HeaderName) -> Option<&str> {
    response.headers().get(name).map(|v| v.to_str().expect("ascii header"))
}

fn step_up() -> StepUpRequired {
    let mut step_up = StepUpRequired::default();
    step_up.acr_values = vec!["aal2".to_owned(), "aal3".to_owned()];
    step_up.max_age = Some(Duration::from_secs(300));
    step_up.factors = vec![FactorKind::TOTP];
    step_up
}

fn forbidden() -> Forbidden {
    let mut forbidden = Forbidden::default();
    forbidden.scopes = vec!["write".to_owned()];
    forbidden.roles = vec!["admin".to_owned()];
    forbidden
}

/// What a row expects. `www` is a list of parts the `WWW-Authenticate` header must
/// contain (`None`: no header); `location` is the exact `Location`; `json` says
/// whether the body is an RFC 9457 problem (else empty).
struct Expect {
    status: u16,
    www: Option<&'static [&'static str]>,
    location: Option<&'static str>,
    json: bool,
}

const fn api(status: u16, www: &'static [&'static str], json: bool) -> Expect {
    Expect { status, www: Some(www), location: None, json }
}

const fn redirect(location: &'static str) -> Expect {
    Expect { status: 303, www: None, location: Some(location), json: false }
}

#[tokio::test]
async fn challenge_table() {
    use Client::{Api, ApiJson, Browser, NewBrowser};
    let invalid = || Rejection::InvalidCredential(AuthError::new(AuthErrorKind::Expired));
    let ended = || Rejection::SessionEnded(AuthError::new(AuthErrorKind::SessionRevoked));
    let unavailable = || {
        Rejection::Unavailable(
            AuthError::new(AuthErrorKind::AuthorityUnavailable).with_retry_after(Duration::from_secs(7)),
        )
    };
    let bearer_realm: &[&str] = &["Bearer realm=\"shop\""];
    let rows: Vec<(Rejection, Client, Expect)> = vec![
        (Rejection::Unauthenticated, Api, api(401, bearer_realm, false)),
        (Rejection::Unauthenticated, ApiJson, api(401, bearer_realm, true)),
        (Rejection::Unauthenticated, NewBrowser, redirect("/login?return_to=%2Fpay%3Fx%3D1")),
        (invalid(), Api, api(401, &["Bearer realm=\"shop\"", "error=\"invalid_token\""], false)),
        (invalid(), ApiJson, api(401, &["error=\"invalid_token\""], true)),
        (invalid(), Browser, redirect("/login?return_to=%2Fpay%3Fx%3D1")),
        (ended(), Api, api(401, &["error=\"invalid_token\""], false)),
        (ended(), Browser, redirect("/login?return_to=%2Fpay%3Fx%3D1")),
        (
            Rejection::StepUp(step_up()),
            Api,
            api(
                401,
                &["error=\"insufficient_user_authentication\"", "acr_values=\"aal2 aal3\"", "max_age=\"300\""],
                false,
            ),
        ),
        (Rejection::StepUp(step_up()), ApiJson, api(401, &["error=\"insufficient_user_authentication\""], true)),
        (
            Rejection::StepUp(step_up()),
            Browser,
            redirect("/step-up?return_to=%2Fpay%3Fx%3D1&acr_values=aal2%20aal3&max_age=300&factors=totp"),
        ),
        (Rejection::Forbidden(forbidden()), Api, api(403, &["error=\"insufficient_scope\"", "scope=\"write\""], false)),
        (Rejection::Forbidden(forbidden()), ApiJson, api(403, &["error=\"insufficient_scope\""], true)),
        // No step-up or login fixes a missing role: browsers get the 403 too.
        (Rejection::Forbidden(forbidden()), Browser, api(403, &["error=\"insufficient_scope\""], false)),
        (unavailable(), Api, Expect { status: 503, www: None, location: None, json: false }),
        (unavailable(), ApiJson, Expect { status: 503, www: None, location: None, json: true }),
        (unavailable(), Browser, Expect { status: 503, www: None, location: None, json: false }),
    ];
    for (rejection, client, expect) in rows {
        let row = format!("{rejection:?} for {client:?}");
        let is_unavailable = matches!(rejection, Rejection::Unavailable(_));
        let response = respond(&rejection, client);
        assert_eq!(response.status().as_u16(), expect.status, "{row}");
        let www = header(&response, WWW_AUTHENTICATE);
        match expect.www {
            Some(parts) => {
                let www = www.unwrap_or_else(|| panic!("{row}: no WWW-Authenticate"));
                for part in parts {
                    assert!(www.contains(part), "{row}: {www:?} lacks {part:?}");
                }
            }
            None => assert_eq!(www, None, "{row}"),
        }
        assert_eq!(header(&response, LOCATION), expect.location, "{row}");
        assert_eq!(header(&response, http::header::CACHE_CONTROL), Some("no-store"), "{row}");
        if expect.json {
            assert_eq!(header(&response, CONTENT_TYPE), Some("application/problem+json"), "{row}");
            let body: serde_json::Value = serde_json::from_slice(response.body()).expect("problem json");
            assert_eq!(body["status"], expect.status, "{row}: {body}");
            assert!(body["type"].as_str().is_some_and(|t| t.starts_with("urn:tower-stepup:problem:")), "{row}: {body}");
        } else {
            assert_eq!(header(&response, CONTENT_TYPE), None, "{row}");
            assert!(response.body().is_empty(), "{row}");
        }
        if is_unavailable {
            assert_eq!(header(&response, RETRY_AFTER), Some("7"), "{row}");
        }
    }
}
