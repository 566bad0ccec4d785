//! Route guards and step-up challenges, end to end: a real dev issuer, a real
//! `SessionLayer` and `Guard`s (or `Require<R>`) served over loopback HTTP.
//!
//! Challenge headers are compared as exact text, built per RFC 6750 §3 / RFC 9470 §3
//! (`Bearer` followed by comma-separated `name="quoted-string"` parameters).
#![allow(clippy::too_many_lines)]

use crate::common::{client, project, serve};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use tower_stepup::{
    requirement, safe_return_to, AuthError, AuthErrorKind, Challenge, ChallengeContext, ConfigError, FactorKind, Guard,
    GuardConfig, RbacPolicy, Rejection, Require, Requirement, RequirementSpec, Session, SessionLayer,
};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, Failure, DEFAULT_AUDIENCE};

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

const STEP_UP: &str = "a stronger or more recent authentication is required";
const FORBIDDEN: &str = "the session lacks the required authorization";
const MIN: u64 = 60;

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * MIN)
}

/// Renders a `Bearer` challenge per RFC 6750 §3 / RFC 9110 §11.6.1: `realm` first,
/// then the parameters in order, each as a quoted-string with `"` and `\` escaped.
fn bearer(params: &[(&str, &str)]) -> String {
    let rendered: Vec<String> = params
        .iter()
        .map(|(name, value)| {
            let mut quoted = String::new();
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    quoted.push('\\');
                }
                quoted.push(c);
            }
            format!("{name}=\"{quoted}\"")
        })
        .collect();
    format!("Bearer {}", rendered.join(", "))
}

fn step_up_header(acr_values: Option<&str>, max_age: Option<u64>) -> String {
    let max_age = max_age.map(|s| s.to_string());
    let mut params =
        vec![("realm", "api"), ("error", "insufficient_user_authentication"), ("error_description", STEP_UP)];
    if let Some(acr) = acr_values {
        params.push(("acr_values", acr));
    }
    if let Some(max_age) = &max_age {
        params.push(("max_age", max_age));
    }
    bearer(&params)
}

fn forbidden_header(scope: Option<&str>) -> String {
    let mut params = vec![("realm", "api"), ("error", "insufficient_scope"), ("error_description", FORBIDDEN)];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    bearer(&params)
}

/// A Stytch layer (no secret, so no authority: every decision here is local).
async fn stytch_layer(issuer: &DevIssuer, config: GuardConfig) -> SessionLayer {
    SessionLayer::stytch(&project(issuer)).with_guard_config(config).build().await.unwrap()
}

/// An RFC 9068 access-token layer with keys found through discovery.
async fn oidc_layer(issuer: &DevIssuer, config: GuardConfig) -> SessionLayer {
    SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_guard_config(config).build().await.unwrap()
}

fn levels() -> GuardConfig {
    GuardConfig::default().with_acr_levels(["pwd", "mfa", "phr"])
}

fn guarded(path: &str, requirement: impl Into<Requirement>) -> Router {
    Router::new()
        .route(path, get(|s: Session| async move { s.subject().to_owned() }).route_layer(Guard::new(requirement)))
}

#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

/// What a response looked like.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    challenge: Option<String>,
    location: Option<String>,
    content_type: Option<String>,
    cache_control: Option<String>,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        assert_eq!(self.content_type.as_deref(), Some("application/problem+json"), "{self:?}");
        serde_json::from_str(&self.body).unwrap()
    }
    /// Asserts a `401`/`403` challenge with exactly `header`.
    #[track_caller]
    fn challenged(&self, status: u16, header: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.challenge.as_deref(), Some(header), "{self:?}");
        assert_eq!(self.location, None, "{self:?}");
    }
    #[track_caller]
    fn ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert_eq!(self.challenge, None);
    }
}

async fn fetch(base: &str, path: &str, cred: Cred<'_>, accept: Option<&str>) -> Seen {
    let mut request = client().get(format!("{base}{path}"));
    match cred {
        Cred::None => {}
        Cred::Bearer(token) => request = request.bearer_auth(token),
        Cred::Cookie(jwt) => request = request.header("cookie", format!("stytch_session_jwt={jwt}")),
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    Seen {
        status: response.status(),
        challenge: header("www-authenticate"),
        location: header("location"),
        content_type: header("content-type"),
        cache_control: header("cache-control"),
        body: response.text().await.unwrap(),
    }
}

/// Sends `GET {target}` as raw HTTP/1.1 (for request targets an HTTP client library
/// would normalise) and returns the status and the `Location` header.
async fn raw_get(base: &str, target: &str) -> (u16, Option<String>) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let location = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.trim().to_owned());
    (status, location)
}

/// In-process request (the layer still fetched its keys from the issuer over HTTP).
async fn oneshot(app: &Router, path: &str, cred: Cred<'_>, accept: Option<&str>) -> Response<Body> {
    let mut request = Request::get(path);
    match cred {
        Cred::None => {}
        Cred::Bearer(token) => request = request.header("authorization", format!("Bearer {token}")),
        Cred::Cookie(jwt) => request = request.header("cookie", format!("stytch_session_jwt={jwt}")),
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
}

async fn body_text(response: Response<Body>) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

// ---------------------------------------------------------------------------------
// Requirement kinds
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn factor_kind_recency_and_delivery_on_stytch_sessions() {
    let issuer = DevIssuer::start().await.unwrap();
    let config = levels().with_factor_acr(FactorKind::TOTP, "mfa");
    let app = Router::new()
        .merge(guarded("/auth", Requirement::authenticated()))
        .merge(guarded("/totp", Requirement::factor(FactorKind::TOTP)))
        .merge(guarded("/totp-5m", Requirement::factor(FactorKind::TOTP).within(mins(5))))
        .merge(guarded("/webauthn-5m", Requirement::factor(FactorKind::WEBAUTHN).within(mins(5))))
        .merge(guarded("/sms", Requirement::factor(FactorKind::OTP).delivered_by("sms")))
        .merge(guarded("/email-otp", Requirement::factor(FactorKind::OTP).delivered_by("email")))
        .merge(guarded("/sms-5m", Requirement::factor(FactorKind::OTP).delivered_by("sms").within(mins(5))))
        .layer(stytch_layer(&issuer, config).await);
    let base = serve(app).await;

    let password = issuer.stytch_session().subject("user-pwd").factor(DevFactor::password()).mint();
    let fresh_totp = issuer.stytch_session().subject("user-fresh").factor(DevFactor::totp()).mint();
    let stale_totp =
        issuer.stytch_session().subject("user-stale").factor(DevFactor::totp().authenticated_ago(mins(20))).mint();
    let fresh_sms = issuer.stytch_session().factor(DevFactor::sms_otp().authenticated_ago(mins(1))).mint();
    let stale_sms = issuer.stytch_session().factor(DevFactor::sms_otp().authenticated_ago(mins(30))).mint();
    let email_otp = issuer.stytch_session().factor(DevFactor::email_otp()).mint();

    // authenticated(): any valid session, whatever its factors.
    for token in [&password, &fresh_totp, &stale_totp, &email_otp] {
        fetch(&base, "/auth", Cred::Bearer(token), None).await.ok();
    }
    let seen = fetch(&base, "/auth", Cred::None, None).await;
    seen.challenged(401, r#"Bearer realm="api""#);

    // factor(kind): presence, regardless of age.
    let seen = fetch(&base, "/totp", Cred::Bearer(&stale_totp), None).await;
    seen.ok();
    assert_eq!(seen.body, "user-stale");
    fetch(&base, "/totp", Cred::Bearer(&fresh_totp), None).await.ok();
    // A missing factor is a step-up, with the configured acr for the factor and no max_age.
    fetch(&base, "/totp", Cred::Bearer(&password), None).await.challenged(401, &step_up_header(Some("mfa"), None));

    // factor(kind).within(d): last_authenticated_at decides.
    let seen = fetch(&base, "/totp-5m", Cred::Bearer(&fresh_totp), None).await;
    seen.ok();
    assert_eq!(seen.body, "user-fresh");
    let expected = r#"Bearer realm="api", error="insufficient_user_authentication", error_description="a stronger or more recent authentication is required", acr_values="mfa", max_age="300""#;
    assert_eq!(expected, step_up_header(Some("mfa"), Some(300)));
    fetch(&base, "/totp-5m", Cred::Bearer(&stale_totp), None).await.challenged(401, expected);
    fetch(&base, "/totp-5m", Cred::Bearer(&password), None).await.challenged(401, expected);
    // No acr configured for webauthn: the challenge carries max_age only.
    fetch(&base, "/webauthn-5m", Cred::Bearer(&fresh_totp), None)
        .await
        .challenged(401, &step_up_header(None, Some(300)));

    // delivered_by: otp by sms is not otp by email.
    fetch(&base, "/sms", Cred::Bearer(&fresh_sms), None).await.ok();
    fetch(&base, "/sms", Cred::Bearer(&stale_sms), None).await.ok();
    fetch(&base, "/sms", Cred::Bearer(&email_otp), None).await.challenged(401, &step_up_header(None, None));
    fetch(&base, "/email-otp", Cred::Bearer(&email_otp), None).await.ok();
    fetch(&base, "/email-otp", Cred::Bearer(&fresh_sms), None).await.challenged(401, &step_up_header(None, None));
    fetch(&base, "/sms-5m", Cred::Bearer(&fresh_sms), None).await.ok();
    fetch(&base, "/sms-5m", Cred::Bearer(&stale_sms), None).await.challenged(401, &step_up_header(None, Some(300)));

    // The JSON form names the factor.
    let seen = fetch(&base, "/totp-5m", Cred::Bearer(&password), Some("application/json")).await;
    let problem = seen.json();
    assert_eq!(problem["factors"], json!(["totp"]));
    assert_eq!(problem["acr_values"], json!(["mfa"]));
    assert_eq!(problem["max_age"], json!(300));
}

#[tokio::test]
async fn any_factor_and_all_factors() {
    let issuer = DevIssuer::start().await.unwrap();
    let app = Router::new()
        .merge(guarded("/any", Requirement::any_factor([FactorKind::WEBAUTHN, FactorKind::TOTP], None)))
        .merge(guarded("/any-5m", Requirement::any_factor([FactorKind::WEBAUTHN, FactorKind::TOTP], Some(mins(5)))))
        .merge(guarded("/all", Requirement::all_factors([FactorKind::PASSWORD, FactorKind::TOTP], None)))
        .merge(guarded("/all-5m", Requirement::all_factors([FactorKind::PASSWORD, FactorKind::TOTP], Some(mins(5)))))
        .layer(stytch_layer(&issuer, GuardConfig::default()).await);
    let base = serve(app).await;

    let password = issuer.stytch_session().factor(DevFactor::password()).mint();
    let webauthn_old = issuer.stytch_session().factor(DevFactor::webauthn().authenticated_ago(mins(30))).mint();
    let totp = issuer.stytch_session().factor(DevFactor::totp()).mint();
    let both = issuer.stytch_session().factor(DevFactor::password()).factor(DevFactor::totp()).mint();
    let both_old_pwd = issuer
        .stytch_session()
        .factor(DevFactor::password().authenticated_ago(mins(60)))
        .factor(DevFactor::totp())
        .mint();

    fetch(&base, "/any", Cred::Bearer(&webauthn_old), None).await.ok();
    fetch(&base, "/any", Cred::Bearer(&totp), None).await.ok();
    fetch(&base, "/any", Cred::Bearer(&password), None).await.challenged(401, &step_up_header(None, None));
    fetch(&base, "/any-5m", Cred::Bearer(&totp), None).await.ok();
    fetch(&base, "/any-5m", Cred::Bearer(&webauthn_old), None).await.challenged(401, &step_up_header(None, Some(300)));
    let problem = fetch(&base, "/any-5m", Cred::Bearer(&password), Some("application/problem+json")).await.json();
    assert_eq!(problem["factors"], json!(["webauthn", "totp"]));

    fetch(&base, "/all", Cred::Bearer(&both), None).await.ok();
    fetch(&base, "/all", Cred::Bearer(&both_old_pwd), None).await.ok();
    fetch(&base, "/all", Cred::Bearer(&totp), None).await.challenged(401, &step_up_header(None, None));
    let problem = fetch(&base, "/all", Cred::Bearer(&totp), Some("application/json")).await.json();
    assert_eq!(problem["factors"], json!(["password"]), "only the missing factor is asked for");
    fetch(&base, "/all-5m", Cred::Bearer(&both), None).await.ok();
    fetch(&base, "/all-5m", Cred::Bearer(&both_old_pwd), None).await.challenged(401, &step_up_header(None, Some(300)));
}

#[tokio::test]
async fn oidc_amr_and_auth_time_become_factors() {
    let issuer = DevIssuer::start().await.unwrap();
    let app = Router::new()
        .merge(guarded("/otp-5m", Requirement::factor(FactorKind::OTP).within(mins(5))))
        .merge(guarded("/sms", Requirement::factor(FactorKind::OTP).delivered_by("sms")))
        .merge(guarded("/hwk", Requirement::factor(FactorKind::WEBAUTHN)))
        .merge(guarded("/pwd", Requirement::factor(FactorKind::PASSWORD)))
        .layer(oidc_layer(&issuer, levels().with_factor_acr(FactorKind::OTP, "mfa")).await);
    let base = serve(app).await;
    let now = SystemTime::now();

    let recent_otp = issuer.access_token().amr(&["pwd", "otp"]).auth_time(now - mins(1)).mint();
    let old_otp = issuer.access_token().amr(&["pwd", "otp"]).auth_time(now - mins(20)).mint();
    let otp_without_time = issuer.access_token().amr(&["pwd", "otp"]).mint();
    let sms = issuer.access_token().amr(&["sms"]).auth_time(now).mint();
    let hwk = issuer.access_token().amr(&["hwk", "mfa"]).auth_time(now).mint();
    let pwd = issuer.access_token().amr(&["pwd"]).auth_time(now).mint();

    fetch(&base, "/otp-5m", Cred::Bearer(&recent_otp), None).await.ok();
    fetch(&base, "/otp-5m", Cred::Bearer(&sms), None).await.ok();
    let expected = step_up_header(Some("mfa"), Some(300));
    fetch(&base, "/otp-5m", Cred::Bearer(&old_otp), None).await.challenged(401, &expected);
    fetch(&base, "/otp-5m", Cred::Bearer(&otp_without_time), None).await.challenged(401, &expected);
    fetch(&base, "/otp-5m", Cred::Bearer(&pwd), None).await.challenged(401, &expected);

    fetch(&base, "/sms", Cred::Bearer(&sms), None).await.ok();
    fetch(&base, "/sms", Cred::Bearer(&recent_otp), None).await.challenged(401, &step_up_header(Some("mfa"), None));
    fetch(&base, "/hwk", Cred::Bearer(&hwk), None).await.ok();
    fetch(&base, "/hwk", Cred::Bearer(&recent_otp), None).await.challenged(401, &step_up_header(None, None));
    fetch(&base, "/pwd", Cred::Bearer(&old_otp), None).await.ok();
    fetch(&base, "/pwd", Cred::Bearer(&hwk), None).await.challenged(401, &step_up_header(None, None));
}

#[tokio::test]
async fn acr_levels_and_max_age() {
    let issuer = DevIssuer::start().await.unwrap();
    let routes = || {
        Router::new()
            .merge(guarded("/pwd", Requirement::acr_at_least("pwd")))
            .merge(guarded("/mfa", Requirement::acr_at_least("mfa")))
            .merge(guarded("/phr", Requirement::acr_at_least("phr")))
            .merge(guarded("/recent", Requirement::max_age(mins(5))))
            .merge(guarded("/mfa-recent", Requirement::acr_at_least("mfa").and(Requirement::max_age(mins(5)))))
    };
    let base = serve(routes().layer(oidc_layer(&issuer, levels()).await)).await;
    let now = SystemTime::now();
    let token = |acr: &str, age: Duration| issuer.access_token().acr(acr).auth_time(now - age).mint();

    let pwd = token("pwd", mins(1));
    let pwd_old = token("pwd", mins(30));
    let mfa = token("mfa", mins(1));
    let phr = token("phr", mins(1));
    let mfa_old = token("mfa", mins(30));
    let unknown = token("something-else", mins(1));
    let no_acr = issuer.access_token().mint();

    for (path, passing, failing, acr_values) in [
        ("/pwd", vec![&pwd, &mfa, &phr], vec![&unknown, &no_acr], "pwd mfa phr"),
        ("/mfa", vec![&mfa, &phr, &mfa_old], vec![&pwd, &unknown, &no_acr], "mfa phr"),
        ("/phr", vec![&phr], vec![&pwd, &mfa, &unknown], "phr"),
    ] {
        for token in passing {
            fetch(&base, path, Cred::Bearer(token), None).await.ok();
        }
        for token in failing {
            fetch(&base, path, Cred::Bearer(token), None)
                .await
                .challenged(401, &step_up_header(Some(acr_values), None));
        }
    }

    // max_age against auth_time: missing auth_time counts as too old.
    fetch(&base, "/recent", Cred::Bearer(&pwd), None).await.ok();
    let max_age_only = r#"Bearer realm="api", error="insufficient_user_authentication", error_description="a stronger or more recent authentication is required", max_age="300""#;
    fetch(&base, "/recent", Cred::Bearer(&mfa_old), None).await.challenged(401, max_age_only);
    fetch(&base, "/recent", Cred::Bearer(&no_acr), None).await.challenged(401, max_age_only);

    // Both at once: the RFC 9470 §3 shape, acr_values then max_age.
    fetch(&base, "/mfa-recent", Cred::Bearer(&mfa), None).await.ok();
    let rfc9470 = r#"Bearer realm="api", error="insufficient_user_authentication", error_description="a stronger or more recent authentication is required", acr_values="mfa phr", max_age="300""#;
    fetch(&base, "/mfa-recent", Cred::Bearer(&pwd_old), None).await.challenged(401, rfc9470);
    // Only what is missing is asked for.
    fetch(&base, "/mfa-recent", Cred::Bearer(&pwd), None).await.challenged(401, &step_up_header(Some("mfa phr"), None));
    fetch(&base, "/mfa-recent", Cred::Bearer(&mfa_old), None).await.challenged(401, &step_up_header(None, Some(300)));
    let problem = fetch(&base, "/mfa-recent", Cred::Bearer(&pwd_old), Some("application/json")).await.json();
    assert_eq!(
        problem,
        json!({
            "type": "urn:tower-stepup:problem:step-up-required",
            "title": "Unauthorized",
            "status": 401,
            "detail": STEP_UP,
            "error": "insufficient_user_authentication",
            "acr_values": ["mfa", "phr"],
            "max_age": 300,
            "factors": [],
        })
    );

    // Without configured levels nothing reaches a level.
    let base = serve(routes().layer(oidc_layer(&issuer, GuardConfig::default()).await)).await;
    fetch(&base, "/pwd", Cred::Bearer(&phr), None).await.challenged(401, &step_up_header(Some("pwd"), None));

    // Stytch session JWTs carry no acr: one factor kind is the single-factor level, so
    // an `mfa` requirement asks for a step-up.
    let base = serve(routes().layer(stytch_layer(&issuer, levels()).await)).await;
    let stytch = issuer.stytch_session().factor(DevFactor::totp()).mint();
    fetch(&base, "/mfa", Cred::Bearer(&stytch), None).await.challenged(401, &step_up_header(Some("mfa phr"), None));
}

#[tokio::test]
async fn roles_scopes_and_predicates() {
    let issuer = DevIssuer::start().await.unwrap();
    let verified =
        Requirement::predicate("verified email", |s: &Session| s.claim("email_verified") == Some(json!(true)));
    let routes = || {
        Router::new()
            .merge(guarded("/role", Requirement::role("admin")))
            .merge(guarded("/scope", Requirement::scope("admin")))
            .merge(guarded("/two-scopes", Requirement::all([Requirement::scope("read"), Requirement::scope("write")])))
            .merge(guarded("/role-or-scope", Requirement::role("admin").or(Requirement::scope("admin"))))
            .merge(guarded("/verified", verified.clone()))
    };
    let base = serve(routes().layer(oidc_layer(&issuer, GuardConfig::default()).await)).await;

    let admin = issuer.access_token().role("admin").scope("read").mint();
    let scoped = issuer.access_token().scope("read admin").mint();
    let reader = issuer.access_token().scope("read").roles(["viewer"]).mint();
    let read_write = issuer.access_token().scope("write read").mint();
    let verified_user = issuer.access_token().custom_claim("email_verified", json!(true)).mint();

    fetch(&base, "/role", Cred::Bearer(&admin), None).await.ok();
    fetch(&base, "/role", Cred::Bearer(&scoped), None).await.challenged(403, &forbidden_header(None));
    fetch(&base, "/scope", Cred::Bearer(&scoped), None).await.ok();
    let scope_header = r#"Bearer realm="api", error="insufficient_scope", error_description="the session lacks the required authorization", scope="admin""#;
    fetch(&base, "/scope", Cred::Bearer(&admin), None).await.challenged(403, scope_header);
    fetch(&base, "/two-scopes", Cred::Bearer(&read_write), None).await.ok();
    fetch(&base, "/two-scopes", Cred::Bearer(&reader), None).await.challenged(403, &forbidden_header(Some("write")));
    fetch(&base, "/two-scopes", Cred::Bearer(&verified_user), None)
        .await
        .challenged(403, &forbidden_header(Some("read write")));
    fetch(&base, "/role-or-scope", Cred::Bearer(&admin), None).await.ok();
    fetch(&base, "/role-or-scope", Cred::Bearer(&scoped), None).await.ok();
    fetch(&base, "/role-or-scope", Cred::Bearer(&reader), None).await.challenged(403, &forbidden_header(Some("admin")));
    fetch(&base, "/verified", Cred::Bearer(&verified_user), None).await.ok();
    fetch(&base, "/verified", Cred::Bearer(&reader), None).await.challenged(403, &forbidden_header(None));
    let problem = fetch(&base, "/verified", Cred::Bearer(&reader), Some("application/json")).await.json();
    assert_eq!(problem["predicates"], json!(["verified email"]));

    let problem = fetch(&base, "/role-or-scope", Cred::Bearer(&reader), Some("application/json")).await.json();
    assert_eq!(
        problem,
        json!({
            "type": "urn:tower-stepup:problem:forbidden",
            "title": "Forbidden",
            "status": 403,
            "detail": FORBIDDEN,
            "error": "insufficient_scope",
            "scopes": ["admin"],
            "roles": ["admin"],
            "permissions": [],
            "predicates": [],
        })
    );

    // Stytch roles live in the session claim.
    let base = serve(routes().layer(stytch_layer(&issuer, GuardConfig::default()).await)).await;
    let stytch_admin = issuer.stytch_session().role("admin").mint();
    let stytch_user = issuer.stytch_session().mint();
    fetch(&base, "/role", Cred::Bearer(&stytch_admin), None).await.ok();
    fetch(&base, "/role", Cred::Bearer(&stytch_user), None).await.challenged(403, &forbidden_header(None));
    let custom = issuer.stytch_session().custom_claim("email_verified", json!(true)).mint();
    fetch(&base, "/verified", Cred::Bearer(&custom), None).await.ok();
}

const STYTCH_POLICY: &str = r#"{
  "request_id": "request-id-test-1",
  "status_code": 200,
  "policy": {
    "roles": [
      {"role_id": "stytch_admin", "description": "", "permissions": [
        {"resource_id": "documents", "actions": ["*"]},
        {"resource_id": "images", "actions": ["*"]},
        {"resource_id": "billing", "actions": ["*"]}
      ]},
      {"role_id": "root", "description": "", "permissions": [{"resource_id": "*", "actions": ["*"]}]},
      {"role_id": "editor", "description": "", "permissions": [
        {"resource_id": "documents", "actions": ["read", "write"]},
        {"resource_id": "images", "actions": ["*"]}
      ]},
      {"role_id": "stytch_user", "description": "", "permissions": [{"resource_id": "documents", "actions": ["read"]}]},
      {"role_id": "nobody", "description": ""}
    ],
    "resources": [{"resource_id": "documents", "description": "", "actions": ["read", "write", "delete"]}],
    "scopes": []
  }
}"#;

#[tokio::test]
async fn permissions_from_rbac_policies() {
    let issuer = DevIssuer::start().await.unwrap();
    let routes = || {
        Router::new()
            .merge(guarded("/documents/read", Requirement::permission("documents", "read")))
            .merge(guarded("/documents/write", Requirement::permission("documents", "write")))
            .merge(guarded("/documents/delete", Requirement::permission("documents", "delete")))
            .merge(guarded("/images/delete", Requirement::permission("images", "delete")))
            .merge(guarded("/billing/read", Requirement::permission("billing", "read")))
    };

    // Stytch's GET /v1/rbac/policy document, with Stytch session roles.
    let policy = RbacPolicy::from_stytch_json(STYTCH_POLICY).unwrap();
    let base =
        serve(routes().layer(stytch_layer(&issuer, GuardConfig::default().with_rbac_policy(policy)).await)).await;
    let user = issuer.stytch_session().mint(); // role stytch_user
    let editor = issuer.stytch_session().role("editor").mint();
    let admin = issuer.stytch_session().roles(["stytch_admin"]).mint();
    let nobody = issuer.stytch_session().roles(["nobody"]).mint();
    let root = issuer.stytch_session().roles(["root"]).mint();

    let table: [(&str, [bool; 5]); 5] = [
        // path               user   editor admin  nobody root
        ("/documents/read", [true, true, true, false, false]),
        ("/documents/write", [false, true, true, false, false]),
        ("/documents/delete", [false, false, true, false, false]),
        ("/images/delete", [false, true, true, false, false]), // action wildcard
        ("/billing/read", [false, false, true, false, false]), // `*` is no resource wildcard (Stytch)
    ];
    for (path, allowed) in table {
        for (token, allowed) in [&user, &editor, &admin, &nobody, &root].into_iter().zip(allowed) {
            let seen = fetch(&base, path, Cred::Bearer(token), None).await;
            if allowed {
                seen.ok();
            } else {
                seen.challenged(403, &forbidden_header(None));
            }
        }
    }
    let problem = fetch(&base, "/documents/delete", Cred::Bearer(&editor), Some("application/json")).await.json();
    assert_eq!(problem["permissions"], json!(["documents:delete"]));
    assert_eq!(problem["status"], json!(403));

    // A policy built in code, with OIDC roles.
    let policy = RbacPolicy::new()
        .grant("ops", "billing", ["read"])
        .grant("ops", "documents", ["read"])
        .grant("writer", "documents", ["*"])
        .grant("everything", "*", ["*"]);
    let base = serve(routes().layer(oidc_layer(&issuer, GuardConfig::default().with_rbac_policy(policy)).await)).await;
    let ops = issuer.access_token().role("ops").mint();
    let writer = issuer.access_token().role("writer").mint();
    fetch(&base, "/billing/read", Cred::Bearer(&ops), None).await.ok();
    fetch(&base, "/documents/read", Cred::Bearer(&ops), None).await.ok();
    fetch(&base, "/documents/write", Cred::Bearer(&ops), None).await.challenged(403, &forbidden_header(None));
    fetch(&base, "/documents/delete", Cred::Bearer(&writer), None).await.ok();
    fetch(&base, "/images/delete", Cred::Bearer(&writer), None).await.challenged(403, &forbidden_header(None));
    let everything = issuer.access_token().role("everything").mint();
    fetch(&base, "/billing/read", Cred::Bearer(&everything), None).await.challenged(403, &forbidden_header(None));

    // No policy configured: no permission is ever granted.
    let base = serve(routes().layer(stytch_layer(&issuer, GuardConfig::default()).await)).await;
    fetch(&base, "/documents/read", Cred::Bearer(&admin), None).await.challenged(403, &forbidden_header(None));

    assert!(matches!(RbacPolicy::from_stytch_json("{\"policy\": 1}"), Err(ConfigError::Invalid { .. })));
    assert!(RbacPolicy::from_stytch_json(r#"{"roles": []}"#).is_ok(), "the bare policy object is accepted");
}

#[tokio::test]
async fn secure_session_follows_stytchs_rule() {
    let issuer = DevIssuer::start().await.unwrap();
    let routes = || Router::new().merge(guarded("/secure", Requirement::secure_session()));
    let base = serve(routes().layer(stytch_layer(&issuer, GuardConfig::default()).await)).await;
    let two_hours = mins(120);

    let cases: Vec<(&str, Vec<DevFactor>, bool)> = vec![
        (
            "email + totp, totp fresh",
            vec![DevFactor::magic_link().authenticated_ago(two_hours), DevFactor::totp()],
            true,
        ),
        (
            "email fresh + old webauthn",
            vec![DevFactor::magic_link(), DevFactor::webauthn().authenticated_ago(two_hours)],
            true,
        ),
        ("oauth + sms", vec![DevFactor::oauth_google(), DevFactor::sms_otp().authenticated_ago(mins(59))], true),
        (
            "sms + totp",
            vec![DevFactor::sms_otp().authenticated_ago(two_hours), DevFactor::totp().authenticated_ago(mins(30))],
            true,
        ),
        (
            "both older than an hour",
            vec![DevFactor::magic_link().authenticated_ago(two_hours), DevFactor::totp().authenticated_ago(mins(61))],
            false,
        ),
        ("one category twice (email otp + magic link)", vec![DevFactor::email_otp(), DevFactor::magic_link()], false),
        ("one category twice (totp + webauthn)", vec![DevFactor::totp(), DevFactor::webauthn()], false),
        ("password does not count", vec![DevFactor::password(), DevFactor::totp()], false),
        ("one factor", vec![DevFactor::totp()], false),
    ];
    for (name, factors, secure) in cases {
        let mut builder = issuer.stytch_session().without_factors();
        for factor in factors {
            builder = builder.factor(factor);
        }
        let seen = fetch(&base, "/secure", Cred::Bearer(&builder.mint()), None).await;
        if secure {
            assert_eq!(seen.status, StatusCode::OK, "{name}: {seen:?}");
        } else {
            assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{name}: {seen:?}");
            assert_eq!(seen.challenge.as_deref(), Some(step_up_header(None, Some(3600)).as_str()), "{name}");
        }
    }

    // With an acr standing for "secure session", challenges offer it.
    let config = GuardConfig::default().with_secure_session_acr("secure");
    let base = serve(routes().layer(stytch_layer(&issuer, config).await)).await;
    let weak = issuer.stytch_session().factor(DevFactor::password()).mint();
    fetch(&base, "/secure", Cred::Bearer(&weak), None)
        .await
        .challenged(401, &step_up_header(Some("secure"), Some(3600)));
}

#[tokio::test]
async fn combinators() {
    let issuer = DevIssuer::start().await.unwrap();
    let config =
        GuardConfig::default().with_factor_acr(FactorKind::WEBAUTHN, "phr").with_factor_acr(FactorKind::TOTP, "mfa");
    let transfer = Requirement::any([
        Requirement::factor(FactorKind::WEBAUTHN).within(mins(10)),
        Requirement::factor(FactorKind::TOTP).within(mins(5)),
    ]);
    let or_form = Requirement::factor(FactorKind::WEBAUTHN)
        .within(mins(10))
        .or(Requirement::factor(FactorKind::TOTP).within(mins(5)));
    let app = Router::new()
        .merge(guarded("/transfer", transfer))
        .merge(guarded("/transfer-or", or_form))
        .merge(guarded("/totp-and-admin", Requirement::factor(FactorKind::TOTP).and(Requirement::role("admin"))))
        .merge(guarded("/all", Requirement::all([Requirement::role("admin"), Requirement::role("auditor")])))
        .merge(guarded(
            "/admin-or-totp",
            Requirement::any([Requirement::role("admin"), Requirement::factor(FactorKind::TOTP).into()]),
        ))
        .merge(guarded(
            "/nested",
            Requirement::all([
                Requirement::authenticated(),
                Requirement::any([Requirement::role("admin"), Requirement::role("auditor")]),
                Requirement::factor(FactorKind::TOTP).within(mins(5)),
            ]),
        ))
        .layer(stytch_layer(&issuer, config).await);
    let base = serve(app).await;
    let with = |factors: Vec<DevFactor>, roles: &[&str]| {
        let mut builder = issuer.stytch_session().without_factors();
        for factor in factors {
            builder = builder.factor(factor);
        }
        for role in roles {
            builder = builder.role(*role);
        }
        builder.mint()
    };

    // "webauthn within 10 min OR totp within 5 min"
    let either = step_up_header(Some("phr mfa"), Some(300));
    for path in ["/transfer", "/transfer-or"] {
        for (factors, ok) in [
            (vec![DevFactor::webauthn().authenticated_ago(mins(8))], true),
            (vec![DevFactor::totp().authenticated_ago(mins(2))], true),
            (vec![DevFactor::totp().authenticated_ago(mins(8))], false),
            (vec![DevFactor::webauthn().authenticated_ago(mins(11))], false),
            (
                vec![DevFactor::webauthn().authenticated_ago(mins(11)), DevFactor::totp().authenticated_ago(mins(4))],
                true,
            ),
            (vec![DevFactor::password()], false),
        ] {
            let seen = fetch(&base, path, Cred::Bearer(&with(factors, &[])), None).await;
            if ok {
                seen.ok();
            } else {
                // The tightest bound is asked for: a fresh login satisfies both branches.
                seen.challenged(401, &either);
            }
        }
    }
    let problem =
        fetch(&base, "/transfer", Cred::Bearer(&with(vec![DevFactor::password()], &[])), Some("application/json"))
            .await
            .json();
    assert_eq!(problem["factors"], json!(["webauthn", "totp"]));
    assert_eq!(problem["acr_values"], json!(["phr", "mfa"]));
    assert_eq!(problem["max_age"], json!(300));

    // and(): authorization first, a step-up cannot grant a role.
    fetch(&base, "/totp-and-admin", Cred::Bearer(&with(vec![DevFactor::totp()], &["admin"])), None).await.ok();
    fetch(&base, "/totp-and-admin", Cred::Bearer(&with(vec![DevFactor::password()], &[])), None)
        .await
        .challenged(403, &forbidden_header(None));
    fetch(&base, "/totp-and-admin", Cred::Bearer(&with(vec![DevFactor::password()], &["admin"])), None)
        .await
        .challenged(401, &step_up_header(Some("mfa"), None));

    // all() of roles: every one.
    fetch(&base, "/all", Cred::Bearer(&with(vec![], &["admin", "auditor"])), None).await.ok();
    let seen = fetch(&base, "/all", Cred::Bearer(&with(vec![], &["admin"])), Some("application/json")).await;
    seen.challenged(403, &forbidden_header(None));
    assert_eq!(seen.json()["roles"], json!(["auditor"]));

    // any() with one curable branch: the step-up is offered, not a 403.
    fetch(&base, "/admin-or-totp", Cred::Bearer(&with(vec![], &["admin"])), None).await.ok();
    fetch(&base, "/admin-or-totp", Cred::Bearer(&with(vec![DevFactor::totp()], &[])), None).await.ok();
    fetch(&base, "/admin-or-totp", Cred::Bearer(&with(vec![DevFactor::password()], &[])), None)
        .await
        .challenged(401, &step_up_header(Some("mfa"), None));

    // Nested all/any.
    fetch(&base, "/nested", Cred::Bearer(&with(vec![DevFactor::totp()], &["auditor"])), None).await.ok();
    fetch(&base, "/nested", Cred::Bearer(&with(vec![DevFactor::totp()], &["viewer"])), None)
        .await
        .challenged(403, &forbidden_header(None));
    fetch(&base, "/nested", Cred::Bearer(&with(vec![DevFactor::totp().authenticated_ago(mins(6))], &["admin"])), None)
        .await
        .challenged(401, &step_up_header(Some("mfa"), Some(300)));
}

#[tokio::test]
async fn requirements_that_cannot_be_met_fail_closed() {
    let issuer = DevIssuer::start().await.unwrap();
    let configured: Vec<FactorKind> = Vec::new(); // e.g. an environment variable left empty
    let app = Router::new()
        .merge(guarded("/any-of-none", Requirement::any(Vec::<Requirement>::new())))
        .merge(guarded("/any-factor-of-none", Requirement::any_factor([], None)))
        .merge(guarded(
            "/nested-any-of-none",
            Requirement::all([Requirement::authenticated(), Requirement::any(Vec::<Requirement>::new())]),
        ))
        .merge(guarded("/all-of-none", Requirement::all(Vec::<Requirement>::new())))
        .merge(guarded("/all-factors-of-none", Requirement::all_factors(configured.clone(), Some(mins(1)))))
        // A misconfigured branch closes the route even where another branch would pass.
        .merge(guarded("/or-all-of-none", Requirement::authenticated().or(Requirement::all_factors(configured, None))))
        .layer(stytch_layer(&issuer, GuardConfig::default()).await);
    let base = serve(app).await;
    let token = issuer.stytch_session().factor(DevFactor::totp()).factor(DevFactor::password()).mint();
    let weak = issuer.stytch_session().without_factors().mint();
    let misconfigured = bearer(&[
        ("realm", "api"),
        ("error", "insufficient_scope"),
        ("error_description", "the route's requirement is misconfigured (a server configuration error)"),
    ]);
    for (path, reason) in [
        ("/any-of-none", "Requirement::any over no requirements"),
        ("/any-factor-of-none", "Requirement::any_factor over no factor kinds"),
        ("/nested-any-of-none", "Requirement::any over no requirements"),
        ("/all-of-none", "Requirement::all over no requirements"),
        ("/all-factors-of-none", "Requirement::all_factors over no factor kinds"),
        ("/or-all-of-none", "Requirement::all_factors over no factor kinds"),
    ] {
        for cred in [&token, &weak] {
            let seen = fetch(&base, path, Cred::Bearer(cred), None).await;
            assert_ne!(seen.status, StatusCode::OK, "{path}: an unsatisfiable requirement let the request through");
            seen.challenged(403, &misconfigured);
        }
        let problem = fetch(&base, path, Cred::Bearer(&token), Some("application/json")).await.json();
        assert_eq!(problem["status"], json!(403), "{path}");
        assert_eq!(problem["configuration_error"], json!(reason), "{path}");
    }
    // Without a session it is still a 401 first: nothing to judge yet.
    fetch(&base, "/all-of-none", Cred::None, None).await.challenged(401, r#"Bearer realm="api""#);
}

// ---------------------------------------------------------------------------------
// Challenge formats
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn challenges_for_api_clients() {
    let issuer = DevIssuer::start().await.unwrap();
    let app = Router::new()
        .merge(guarded("/me", Requirement::authenticated()))
        .merge(guarded("/mfa", Requirement::acr_at_least("mfa").and(Requirement::max_age(mins(5)))))
        .merge(guarded("/scope", Requirement::scope("payments:write")))
        .layer(oidc_layer(&issuer, levels()).await);
    let base = serve(app).await;
    let now = SystemTime::now();

    // No credential: RFC 6750 §3.1, no error code.
    let seen = fetch(&base, "/me", Cred::None, None).await;
    seen.challenged(401, r#"Bearer realm="api""#);
    assert_eq!(seen.body, "");
    assert_eq!(seen.cache_control.as_deref(), Some("no-store"));
    let seen = fetch(&base, "/me", Cred::None, Some("application/json")).await;
    seen.challenged(401, r#"Bearer realm="api""#);
    assert_eq!(
        seen.json(),
        json!({
            "type": "urn:tower-stepup:problem:unauthenticated",
            "title": "Unauthorized",
            "status": 401,
            "detail": "authentication is required",
        })
    );

    // Invalid tokens: invalid_token with a short fixed description.
    let expired = issuer.access_token().issued_at(now - mins(60)).mint();
    let seen = fetch(&base, "/me", Cred::Bearer(&expired), None).await;
    seen.challenged(401, r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#);
    let seen = fetch(&base, "/me", Cred::Bearer(&expired), Some("application/json")).await;
    assert_eq!(
        seen.json(),
        json!({
            "type": "urn:tower-stepup:problem:invalid-credential",
            "title": "Unauthorized",
            "status": 401,
            "detail": "the token has expired",
            "error": "invalid_token",
        })
    );
    let good = issuer.access_token().mint();
    let other = issuer.access_token().subject("someone-else").mint();
    let forged = format!("{}.{}", good.rsplit_once('.').unwrap().0, other.rsplit_once('.').unwrap().1);
    fetch(&base, "/me", Cred::Bearer(&forged), None).await.challenged(
        401,
        r#"Bearer realm="api", error="invalid_token", error_description="the token signature is invalid""#,
    );
    let wrong_audience = issuer.access_token().audience("api://other").mint();
    fetch(&base, "/me", Cred::Bearer(&wrong_audience), None).await.challenged(
        401,
        r#"Bearer realm="api", error="invalid_token", error_description="the token audience is not accepted""#,
    );
    let stytch_jwt = issuer.stytch_session().mint();
    let seen = fetch(&base, "/me", Cred::Bearer(&stytch_jwt), None).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "a Stytch JWT is not an access token: {seen:?}");
    assert!(seen.challenge.unwrap().starts_with(r#"Bearer realm="api", error="invalid_token", error_description=""#));

    // A malformed request: RFC 6750 invalid_request, 400.
    let response = client().get(format!("{base}/me")).header("authorization", "Bearer").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="api", error="invalid_request", error_description="the Authorization header is malformed""#
    );

    // Step-up: RFC 9470 §3.
    let pwd = issuer.access_token().acr("pwd").auth_time(now - mins(30)).mint();
    let seen = fetch(&base, "/mfa", Cred::Bearer(&pwd), None).await;
    seen.challenged(
        401,
        r#"Bearer realm="api", error="insufficient_user_authentication", error_description="a stronger or more recent authentication is required", acr_values="mfa phr", max_age="300""#,
    );
    assert_eq!(seen.body, "");
    assert_eq!(seen.cache_control.as_deref(), Some("no-store"));

    // Authorization: 403 insufficient_scope with the missing scope.
    let seen = fetch(&base, "/scope", Cred::Bearer(&pwd), Some("text/plain, application/problem+json;q=0.9")).await;
    seen.challenged(
        403,
        r#"Bearer realm="api", error="insufficient_scope", error_description="the session lacks the required authorization", scope="payments:write""#,
    );
    assert_eq!(
        seen.json(),
        json!({
            "type": "urn:tower-stepup:problem:forbidden",
            "title": "Forbidden",
            "status": 403,
            "detail": FORBIDDEN,
            "error": "insufficient_scope",
            "scopes": ["payments:write"],
            "roles": [],
            "permissions": [],
            "predicates": [],
        })
    );
    let token = issuer.access_token().scope("payments:read payments:write").mint();
    fetch(&base, "/scope", Cred::Bearer(&token), None).await.ok();
}

#[tokio::test]
async fn browsers_are_redirected_api_clients_are_not() {
    let issuer = DevIssuer::start().await.unwrap();
    let routes = || {
        Router::new()
            .merge(guarded("/me", Requirement::authenticated()))
            .merge(guarded(
                "/settings",
                Requirement::any([
                    Requirement::factor(FactorKind::WEBAUTHN).within(mins(10)),
                    Requirement::factor(FactorKind::TOTP).within(mins(5)),
                ]),
            ))
            .merge(guarded("/admin", Requirement::role("admin")))
    };
    let config = GuardConfig::default()
        .with_factor_acr(FactorKind::TOTP, "mfa")
        .with_factor_acr(FactorKind::WEBAUTHN, "phr")
        .with_login_url("/login")
        .with_step_up_url("/step-up");
    let base = serve(routes().layer(stytch_layer(&issuer, config).await)).await;
    let html = Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
    let password = issuer.stytch_session().factor(DevFactor::password()).mint();
    let totp = issuer.stytch_session().factor(DevFactor::totp()).mint();

    // No session: to the login page, with the path and query to come back to.
    let seen = fetch(&base, "/settings?tab=security&x=a%20b", Cred::None, html).await;
    assert_eq!(seen.status, StatusCode::SEE_OTHER, "{seen:?}");
    assert_eq!(seen.location.as_deref(), Some("/login?return_to=%2Fsettings%3Ftab%3Dsecurity%26x%3Da%2520b"));
    assert_eq!(seen.challenge, None);
    assert_eq!(seen.cache_control.as_deref(), Some("no-store"));

    // An invalid cookie: to the login page too.
    let expired = issuer.stytch_session().issued_at(SystemTime::now() - mins(60)).mint();
    let seen = fetch(&base, "/me", Cred::Cookie(&expired), html).await;
    assert_eq!(seen.status, StatusCode::SEE_OTHER, "{seen:?}");
    assert_eq!(seen.location.as_deref(), Some("/login?return_to=%2Fme"));

    // A session that falls short: to the step-up page with what is required.
    let seen = fetch(&base, "/settings?tab=2", Cred::Cookie(&password), html).await;
    assert_eq!(seen.status, StatusCode::SEE_OTHER, "{seen:?}");
    assert_eq!(
        seen.location.as_deref(),
        Some("/step-up?return_to=%2Fsettings%3Ftab%3D2&acr_values=phr%20mfa&max_age=300&factors=webauthn%2Ctotp")
    );
    fetch(&base, "/settings?tab=2", Cred::Cookie(&totp), html).await.ok();
    fetch(&base, "/me", Cred::Cookie(&password), html).await.ok();

    // Authorization is not fixed by logging in again: a plain 403.
    fetch(&base, "/admin", Cred::Cookie(&password), html).await.challenged(403, &forbidden_header(None));

    // Browsers not asking for HTML, and every bearer client, get the 401.
    fetch(&base, "/settings", Cred::Cookie(&password), Some("application/json"))
        .await
        .challenged(401, &step_up_header(Some("phr mfa"), Some(300)));
    fetch(&base, "/settings", Cred::Bearer(&password), html)
        .await
        .challenged(401, &step_up_header(Some("phr mfa"), Some(300)));
    fetch(&base, "/me", Cred::Bearer(&expired), html)
        .await
        .challenged(401, r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#);
    // A bearer header the layer could not even read is still a bearer client.
    for header in ["Bearer not a token", "Bearer"] {
        let response = client()
            .get(format!("{base}/me"))
            .header("authorization", header)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::SEE_OTHER, "{header:?} got a redirect: {:?}", response.headers());
        assert!(response.headers().get("location").is_none());
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with(r#"Bearer realm="api", error="#));
    }

    // Without URLs configured, browsers get the same 401 as everyone.
    let base = serve(routes().layer(stytch_layer(&issuer, GuardConfig::default()).await)).await;
    fetch(&base, "/me", Cred::None, html).await.challenged(401, r#"Bearer realm="api""#);
    fetch(&base, "/settings", Cred::Cookie(&password), html).await.challenged(401, &step_up_header(None, Some(300)));

    // Only a login URL: step-ups still get the 401; absolute https targets work.
    let config = GuardConfig::default().with_login_url("https://login.example.com/sign-in");
    let base = serve(routes().layer(stytch_layer(&issuer, config).await)).await;
    let seen = fetch(&base, "/me?a=1", Cred::None, html).await;
    assert_eq!(seen.status, StatusCode::SEE_OTHER);
    assert_eq!(seen.location.as_deref(), Some("https://login.example.com/sign-in?return_to=%2Fme%3Fa%3D1"));
    fetch(&base, "/settings", Cred::Cookie(&password), html).await.challenged(401, &step_up_header(None, Some(300)));
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_not_a_challenge() {
    let issuer = DevIssuer::start().await.unwrap();
    issuer.set_failure(Failure::Unavailable);
    let config = GuardConfig::default().with_login_url("/login");
    let layer =
        SessionLayer::stytch(&project(&issuer)).with_lazy_start().with_guard_config(config).build().await.unwrap();
    let app = Router::new().merge(guarded("/me", Requirement::authenticated())).layer(layer);
    let base = serve(app.clone()).await;
    let token = issuer.stytch_session().mint();

    for (cred, accept) in [(Cred::Bearer(&token), None), (Cred::Cookie(&token), Some("text/html"))] {
        let seen = fetch(&base, "/me", cred, accept).await;
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE, "{seen:?}");
        assert_eq!(seen.challenge, None);
        assert_eq!(seen.location, None, "an issuer outage is not a reason to log in again");
    }
    let response = client()
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:tower-stepup:problem:unavailable");
    assert_eq!(problem["status"], 503);
    assert_eq!(problem["error"], "temporarily_unavailable");

    let response = oneshot(&app, "/me", Cred::Bearer(&token), None).await;
    assert!(matches!(response.extensions().get::<Rejection>(), Some(Rejection::Unavailable(_))));
    assert!(response.extensions().get::<AuthError>().is_some_and(|e| e.kind().is_server_fault()));
}

/// A challenge format of the app's own: plain text, and it reports what it was told.
struct PlainText;

impl Challenge for PlainText {
    fn respond(&self, rejection: &Rejection, context: &ChallengeContext<'_>) -> Response<Bytes> {
        let (status, text) = match rejection {
            Rejection::Unauthenticated => (StatusCode::UNAUTHORIZED, "please log in".to_owned()),
            Rejection::InvalidCredential(error) => (StatusCode::UNAUTHORIZED, format!("bad credential: {error}")),
            Rejection::StepUp(step_up) => (
                StatusCode::UNAUTHORIZED,
                format!("step up: {}", step_up.factors.iter().map(FactorKind::as_str).collect::<Vec<_>>().join("+")),
            ),
            Rejection::Forbidden(_) => (StatusCode::NOT_FOUND, "no such page".to_owned()),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "later".to_owned()),
        };
        let context = format!(
            "realm={} return_to={} browser={} json={} login={:?}",
            context.realm,
            context.return_to,
            context.is_browser(),
            context.wants_json(),
            context.login_url
        );
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .header("x-context", context)
            .body(Bytes::from(text))
            .unwrap()
    }
}

#[tokio::test]
async fn a_custom_challenge_replaces_the_format() {
    let issuer = DevIssuer::start().await.unwrap();
    let config = GuardConfig::default().with_login_url("/login").with_challenge(PlainText).with_realm("shop");
    let app = Router::new()
        .merge(guarded("/me", Requirement::authenticated()))
        .merge(guarded("/totp", Requirement::factor(FactorKind::TOTP)))
        .merge(guarded("/admin", Requirement::role("admin")))
        .layer(SessionLayer::stytch(&project(&issuer)).with_guard_config(config).build().await.unwrap());
    let base = serve(app.clone()).await;
    let token = issuer.stytch_session().factor(DevFactor::password()).mint();

    let response = client().get(format!("{base}/me?x=1")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no redirect: the custom format decides");
    assert!(response.headers().get("www-authenticate").is_none());
    assert!(response.headers().get("location").is_none());
    assert_eq!(
        response.headers()["x-context"],
        r#"realm=shop return_to=/me?x=1 browser=true json=false login=Some("/login")"#
    );
    assert_eq!(response.text().await.unwrap(), "please log in");

    let seen = fetch(&base, "/totp", Cred::Bearer(&token), Some("application/json")).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.challenge, None);
    assert_eq!(seen.content_type.as_deref(), Some("text/plain"));
    assert_eq!(seen.body, "step up: totp");
    let seen = fetch(&base, "/admin", Cred::Bearer(&token), None).await;
    assert_eq!(seen.status, StatusCode::NOT_FOUND);
    assert_eq!(seen.body, "no such page");
    fetch(&base, "/me", Cred::Bearer(&token), None).await.ok();

    // The typed reason is still attached.
    let response = oneshot(&app, "/admin", Cred::Bearer(&token), None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    match response.extensions().get::<Rejection>() {
        Some(Rejection::Forbidden(forbidden)) => assert_eq!(forbidden.roles, ["admin"]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_typed_reason_rides_in_the_response_extensions() {
    let issuer = DevIssuer::start().await.unwrap();
    let config = levels().with_factor_acr(FactorKind::TOTP, "mfa");
    let app = Router::new()
        .merge(guarded("/me", Requirement::authenticated()))
        .merge(guarded("/totp", Requirement::factor(FactorKind::TOTP).within(mins(5))))
        .merge(guarded("/scope", Requirement::scope("admin").and(Requirement::role("root"))))
        .merge(guarded("/mfa", Requirement::acr_at_least("mfa")))
        .layer(oidc_layer(&issuer, config).await);
    let now = SystemTime::now();

    let response = oneshot(&app, "/me", Cred::None, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.extensions().get::<Rejection>(), Some(&Rejection::Unauthenticated));
    assert!(response.extensions().get::<AuthError>().is_none());

    let expired = issuer.access_token().issued_at(now - mins(60)).mint();
    let response = oneshot(&app, "/me", Cred::Bearer(&expired), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.extensions().get::<AuthError>().map(AuthError::kind), Some(AuthErrorKind::Expired));
    match response.extensions().get::<Rejection>() {
        Some(Rejection::InvalidCredential(error)) => assert_eq!(error.kind(), AuthErrorKind::Expired),
        other => panic!("{other:?}"),
    }

    let pwd = issuer.access_token().acr("pwd").amr(&["pwd"]).auth_time(now).mint();
    let response = oneshot(&app, "/totp", Cred::Bearer(&pwd), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    match response.extensions().get::<Rejection>() {
        Some(Rejection::StepUp(step_up)) => {
            assert_eq!(step_up.acr_values, ["mfa"]);
            assert_eq!(step_up.max_age, Some(mins(5)));
            assert_eq!(step_up.factors, [FactorKind::TOTP]);
        }
        other => panic!("{other:?}"),
    }
    let response = oneshot(&app, "/mfa", Cred::Bearer(&pwd), None).await;
    match response.extensions().get::<Rejection>() {
        Some(Rejection::StepUp(step_up)) => {
            assert_eq!(step_up.acr_values, ["mfa", "phr"]);
            assert_eq!(step_up.max_age, None);
            assert!(step_up.factors.is_empty());
        }
        other => panic!("{other:?}"),
    }

    let response = oneshot(&app, "/scope", Cred::Bearer(&pwd), None).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    match response.extensions().get::<Rejection>() {
        Some(Rejection::Forbidden(forbidden)) => {
            assert_eq!(forbidden.scopes, ["admin"]);
            assert_eq!(forbidden.roles, ["root"]);
            assert!(forbidden.permissions.is_empty());
        }
        other => panic!("{other:?}"),
    }

    // Success carries no reason.
    let response = oneshot(&app, "/me", Cred::Bearer(&pwd), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.extensions().get::<Rejection>().is_none());
}

// ---------------------------------------------------------------------------------
// Redirect safety
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn return_to_never_leaves_the_origin() {
    let issuer = DevIssuer::start().await.unwrap();
    let config = GuardConfig::default().with_login_url("/login");
    let app = Router::new()
        .route("/", get(|| async { "home" }).route_layer(Guard::authenticated()))
        .route("/{*rest}", get(|| async { "page" }).route_layer(Guard::authenticated()))
        .layer(stytch_layer(&issuer, config).await);
    let base = serve(app).await;
    let html = Some("text/html");

    // Through a real HTTP client.
    for (path, return_to) in [
        ("/account/settings?tab=1", "%2Faccount%2Fsettings%3Ftab%3D1"),
        ("/a?next=//evil.example", "%2Fa%3Fnext%3D%2F%2Fevil.example"),
        ("/caf%C3%A9", "%2Fcaf%25C3%25A9"),
        ("//evil.example/x", "%2F"),
        ("///evil.example/x", "%2F"),
        ("/%2F%2Fevil.example", "%2F"),
        ("/%2fevil.example", "%2F"),
        ("/%5Cevil.example", "%2F"),
        ("/%5cevil.example", "%2F"),
        ("/x%5C..%5Cevil", "%2F"),
        ("/%0D%0ASet-Cookie:x", "%2F"),
        ("/%00", "%2F"),
        ("/bad%zz", "%2F"),
    ] {
        let seen = fetch(&base, path, Cred::None, html).await;
        assert_eq!(seen.status, StatusCode::SEE_OTHER, "{path}: {seen:?}");
        assert_eq!(seen.location, Some(format!("/login?return_to={return_to}")), "{path}");
    }

    // Request targets an HTTP client library would normalise, sent raw.
    for (target, return_to) in [
        ("//evil.example/x", "%2F"),
        ("/\\evil.example", "%2F"),
        ("/\\\\evil.example", "%2F"),
        ("/x\\y", "%2F"),
        ("/%5C%5Cevil.example", "%2F"),
        // Absolute-form: only the path and query are ever used.
        ("http://evil.example/x?y=1", "%2Fx%3Fy%3D1"),
        ("https://evil.example//other.example/", "%2F"),
    ] {
        let (status, location) = raw_get(&base, target).await;
        assert_eq!(status, 303, "{target}");
        assert_eq!(location, Some(format!("/login?return_to={return_to}")), "{target}");
    }
}

#[test]
fn safe_return_to_cases() {
    for safe in ["/", "/settings", "/settings?tab=2&x=%2F", "/a/b/c", "/caf%C3%A9", "/a?next=//x", "/a//b", "/%20"] {
        assert_eq!(safe_return_to(safe), Some(safe), "{safe}");
    }
    for unsafe_ in [
        "",
        "settings",
        "//evil.example",
        "//evil.example/path",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/a\\b",
        "https://evil.example/",
        "http:/evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "/%2fevil.example",
        "/%5Cevil.example",
        "/%5cevil",
        "/x%5Cy",
        "/%0d%0aSet-Cookie:%20a=b",
        "/%09",
        "/%7F",
        "/%",
        "/%2",
        "/%zz",
        "/ space",
        "/tab\there",
        "/new\nline",
        "/caf\u{e9}",
    ] {
        assert_eq!(safe_return_to(unsafe_), None, "{unsafe_:?}");
    }
}

#[test]
fn redirect_targets_are_checked_at_configuration() {
    for bad in [
        "https://evil?x",
        "/login?next=1",
        "/login#top",
        "//evil.example/login",
        "/\\evil.example",
        "javascript:alert(1)",
        "data:text/html,hi",
        "http://login.example.com/login",
        "ftp://login.example.com/",
        "login",
        "",
    ] {
        assert!(
            matches!(GuardConfig::default().with_login_url(bad).validate(), Err(ConfigError::Invalid { .. })),
            "login URL {bad:?} was accepted"
        );
        assert!(
            matches!(GuardConfig::default().with_step_up_url(bad).validate(), Err(ConfigError::Invalid { .. })),
            "step-up URL {bad:?} was accepted"
        );
    }
    for good in ["/login", "/auth/step-up", "https://login.example.com/step-up", "http://127.0.0.1:8080/login"] {
        assert!(GuardConfig::default().with_login_url(good).validate().is_ok(), "{good}");
        assert!(GuardConfig::default().with_step_up_url(good).validate().is_ok(), "{good}");
    }
}

// ---------------------------------------------------------------------------------
// Header escaping
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn header_values_cannot_inject_syntax() {
    let issuer = DevIssuer::start().await.unwrap();
    let nasty_level = "m\"fa\\\r\nX-Evil: 1, error=\"x\u{e9}";
    let config = GuardConfig::default()
        .with_acr_levels(["pwd", nasty_level, "phr"])
        .with_factor_acr(FactorKind::TOTP, "to\"tp\r\n")
        .with_step_up_url("/step-up")
        .with_realm("my \"realm\"\\\r\nSet-Cookie: a=b; \u{e9}t\u{e9}");
    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_guard_config(config).build().await.unwrap();
    let app = Router::new()
        .merge(guarded("/me", Requirement::authenticated()))
        .merge(guarded("/level", Requirement::acr_at_least(nasty_level)))
        .merge(guarded("/totp", Requirement::factor(FactorKind::TOTP)))
        .merge(guarded("/scope", Requirement::scope("a\"b")))
        .layer(layer);
    let base = serve(app).await;
    let realm = r#"realm="my \"realm\"\\Set-Cookie: a=b; t""#;

    let seen = fetch(&base, "/me", Cred::None, None).await;
    seen.challenged(401, &format!("Bearer {realm}"));
    let token = issuer.access_token().acr("pwd").mint();
    let seen = fetch(&base, "/level", Cred::Bearer(&token), None).await;
    seen.challenged(
        401,
        &format!(
            r#"Bearer {realm}, error="insufficient_user_authentication", error_description="{STEP_UP}", acr_values="m\"fa\\X-Evil: 1, error=\"x phr""#
        ),
    );
    fetch(&base, "/totp", Cred::Bearer(&token), None).await.challenged(
        401,
        &format!(r#"Bearer {realm}, error="insufficient_user_authentication", error_description="{STEP_UP}", acr_values="to\"tp""#),
    );
    fetch(&base, "/scope", Cred::Bearer(&token), None).await.challenged(
        403,
        &format!(r#"Bearer {realm}, error="insufficient_scope", error_description="{FORBIDDEN}", scope="a\"b""#),
    );
    // Exactly one challenge header, and the JSON form keeps the values intact.
    let response = client().get(format!("{base}/level")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.headers().get_all("www-authenticate").iter().count(), 1);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("x-evil").is_none());
    let seen = fetch(&base, "/level", Cred::Bearer(&token), Some("application/json")).await;
    assert_eq!(seen.json()["acr_values"], json!([nasty_level, "phr"]));

    // In a redirect, everything is percent-encoded.
    let stytch_config = GuardConfig::default().with_acr_levels(["pwd", nasty_level]).with_step_up_url("/step-up");
    let app = Router::new()
        .merge(guarded("/level", Requirement::acr_at_least(nasty_level)))
        .layer(stytch_layer(&issuer, stytch_config).await);
    let base = serve(app).await;
    let jwt = issuer.stytch_session().mint();
    let seen = fetch(&base, "/level", Cred::Cookie(&jwt), Some("text/html")).await;
    assert_eq!(seen.status, StatusCode::SEE_OTHER);
    assert_eq!(
        seen.location.as_deref(),
        Some("/step-up?return_to=%2Flevel&acr_values=m%22fa%5C%0D%0AX-Evil%3A%201%2C%20error%3D%22x%C3%A9")
    );
}

// ---------------------------------------------------------------------------------
// Composition with routers, the extractor, a missing layer
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn guards_on_groups_and_nested_routers() {
    let issuer = DevIssuer::start().await.unwrap();
    let config = GuardConfig::default()
        .with_factor_acr(FactorKind::TOTP, "mfa")
        .with_login_url("/login")
        .with_step_up_url("/step-up");
    let admin = Router::new()
        .route("/users", get(|s: Session| async move { format!("users for {}", s.subject()) }))
        .route("/stats", get(|| async { "stats" }))
        .nest(
            "/danger",
            Router::new()
                .route("/wipe", get(|| async { "wiped" }))
                .route_layer(Guard::new(Requirement::factor(FactorKind::TOTP).within(mins(5)))),
        )
        .route_layer(Guard::new(Requirement::role("admin")));
    let account = Router::new()
        .route("/profile", get(|| async { "profile" }))
        .route("/email", get(|| async { "email" }))
        .route_layer(Guard::authenticated());
    let app = Router::new()
        .route("/", get(|| async { "public" }))
        .nest("/admin", admin)
        .nest("/account", account)
        .layer(stytch_layer(&issuer, config).await);
    let base = serve(app).await;

    let admin_pwd = issuer.stytch_session().subject("root").role("admin").factor(DevFactor::password()).mint();
    let admin_totp = issuer.stytch_session().role("admin").factor(DevFactor::totp()).mint();
    let user = issuer.stytch_session().factor(DevFactor::totp()).mint();

    fetch(&base, "/", Cred::None, None).await.ok();
    // Known paths of a guarded group are challenged; unknown ones stay 404.
    for path in ["/admin/users", "/admin/stats", "/admin/danger/wipe", "/account/profile", "/account/email"] {
        fetch(&base, path, Cred::None, None).await.challenged(401, r#"Bearer realm="api""#);
    }
    for path in ["/admin/nope", "/admin/danger/nope", "/account/nope", "/nope", "/admin/users/extra"] {
        for cred in [Cred::None, Cred::Bearer(&user)] {
            let seen = fetch(&base, path, cred, None).await;
            assert_eq!(seen.status, StatusCode::NOT_FOUND, "{path}: {seen:?}");
            assert_eq!(seen.challenge, None, "{path}");
        }
    }

    let seen = fetch(&base, "/admin/users", Cred::Bearer(&admin_pwd), None).await;
    seen.ok();
    assert_eq!(seen.body, "users for root");
    fetch(&base, "/admin/users", Cred::Bearer(&user), None).await.challenged(403, &forbidden_header(None));
    fetch(&base, "/account/profile", Cred::Bearer(&user), None).await.ok();

    // Guards of outer and inner groups both apply, outer first.
    fetch(&base, "/admin/danger/wipe", Cred::Bearer(&admin_totp), None).await.ok();
    fetch(&base, "/admin/danger/wipe", Cred::Bearer(&user), None).await.challenged(403, &forbidden_header(None));
    fetch(&base, "/admin/danger/wipe", Cred::Bearer(&admin_pwd), None)
        .await
        .challenged(401, &step_up_header(Some("mfa"), Some(300)));

    // Redirects from nested routes come back to the full path.
    let seen = fetch(&base, "/account/profile?x=1", Cred::None, Some("text/html")).await;
    assert_eq!(seen.location.as_deref(), Some("/login?return_to=%2Faccount%2Fprofile%3Fx%3D1"), "{seen:?}");
    let seen = fetch(&base, "/admin/danger/wipe", Cred::Cookie(&admin_pwd), Some("text/html")).await;
    assert_eq!(
        seen.location.as_deref(),
        Some("/step-up?return_to=%2Fadmin%2Fdanger%2Fwipe&acr_values=mfa&max_age=300&factors=totp"),
        "{seen:?}"
    );
}

requirement!(RecentTotp = Requirement::factor(FactorKind::TOTP).within(Duration::from_secs(300)));
requirement!(Admin = Requirement::role("admin"));

async fn recent_totp(totp: Require<RecentTotp>) -> String {
    format!("totp ok for {}", totp.subject())
}

async fn admin_only(admin: Require<Admin>) -> String {
    format!("admin ok for {}", admin.into_session().subject())
}

#[tokio::test]
async fn require_extractor_answers_like_the_guard() {
    let issuer = DevIssuer::start().await.unwrap();
    let config =
        levels().with_factor_acr(FactorKind::TOTP, "mfa").with_login_url("/login").with_step_up_url("/step-up");
    let app = Router::new()
        .route("/x/totp", get(recent_totp))
        .route("/x/admin", get(admin_only))
        .merge(guarded("/g/totp", RecentTotp::requirement().clone()))
        .merge(guarded("/g/admin", Requirement::role("admin")))
        .nest("/nested", Router::new().route("/totp", get(recent_totp)))
        .layer(stytch_layer(&issuer, config).await);
    let base = serve(app.clone()).await;

    let password = issuer.stytch_session().factor(DevFactor::password()).mint();
    let stale = issuer.stytch_session().factor(DevFactor::totp().authenticated_ago(mins(10))).mint();
    let fresh = issuer.stytch_session().subject("fresh-user").factor(DevFactor::totp()).role("admin").mint();
    let expired = issuer.stytch_session().issued_at(SystemTime::now() - mins(60)).mint();

    let seen = fetch(&base, "/x/totp", Cred::Bearer(&fresh), None).await;
    seen.ok();
    assert_eq!(seen.body, "totp ok for fresh-user");
    assert_eq!(fetch(&base, "/x/admin", Cred::Bearer(&fresh), None).await.body, "admin ok for fresh-user");

    let html = Some("text/html");
    let json = Some("application/json");
    for (kind, guard_path, require_path) in [("totp", "/g/totp", "/x/totp"), ("admin", "/g/admin", "/x/admin")] {
        for (cred, accept) in [
            (Cred::None, None),
            (Cred::None, json),
            (Cred::None, html),
            (Cred::Bearer(&password), None),
            (Cred::Bearer(&stale), json),
            (Cred::Bearer(&expired), None),
            (Cred::Cookie(&password), html),
            (Cred::Cookie(&stale), None),
            (Cred::Cookie(&expired), html),
        ] {
            let by_guard = fetch(&base, &format!("{guard_path}?q=1"), cred, accept).await;
            let by_require = fetch(&base, &format!("{require_path}?q=1"), cred, accept).await;
            assert_ne!(by_guard.status, StatusCode::OK, "{kind}");
            assert_eq!(by_guard.status, by_require.status, "{kind}");
            assert_eq!(by_guard.challenge, by_require.challenge, "{kind}");
            assert_eq!(by_guard.body, by_require.body, "{kind}");
            assert_eq!(by_guard.content_type, by_require.content_type, "{kind}");
            assert_eq!(
                by_guard.location.map(|l| l.replace(&guard_path.replace('/', "%2F"), "PATH")),
                by_require.location.map(|l| l.replace(&require_path.replace('/', "%2F"), "PATH")),
                "{kind}"
            );
        }
    }
    fetch(&base, "/x/totp", Cred::Bearer(&stale), None).await.challenged(401, &step_up_header(Some("mfa"), Some(300)));
    let seen = fetch(&base, "/x/totp?q=1", Cred::Cookie(&stale), html).await;
    assert_eq!(
        seen.location.as_deref(),
        Some("/step-up?return_to=%2Fx%2Ftotp%3Fq%3D1&acr_values=mfa&max_age=300&factors=totp")
    );
    let seen = fetch(&base, "/nested/totp", Cred::Cookie(&stale), html).await;
    assert_eq!(
        seen.location.as_deref(),
        Some("/step-up?return_to=%2Fnested%2Ftotp&acr_values=mfa&max_age=300&factors=totp"),
        "{seen:?}"
    );

    // The typed reason is attached by the extractor too.
    let response = oneshot(&app, "/x/totp", Cred::Bearer(&stale), None).await;
    match response.extensions().get::<Rejection>() {
        Some(Rejection::StepUp(step_up)) => assert_eq!(step_up.factors, [FactorKind::TOTP]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_guard_without_session_layer_is_a_500_naming_it() {
    // Keys are irrelevant here, but the routes are served the same way.
    let app = Router::new()
        .route("/guarded", get(|| async { "unreachable" }).route_layer(Guard::authenticated()))
        .route("/extractor", get(|s: Session| async move { s.subject().to_owned() }))
        .route("/require", get(admin_only));
    let base = serve(app.clone()).await;
    for path in ["/guarded", "/extractor", "/require"] {
        let response = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(response.headers().get("www-authenticate").is_none(), "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("SessionLayer"), "{path}: {body}");
    }
    let response = oneshot(&app, "/guarded", Cred::None, None).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.extensions().get::<AuthError>().map(AuthError::kind), Some(AuthErrorKind::MissingLayer));
    assert!(body_text(response).await.contains("SessionLayer"));
}

#[tokio::test]
async fn a_bad_login_url_is_reported_by_build() {
    let issuer = DevIssuer::start().await.expect("dev issuer");
    let guards = GuardConfig::default().with_login_url("//evil.example/login");
    let error = SessionLayer::stytch(&crate::common::project(&issuer))
        .with_lazy_start()
        .with_guard_config(guards)
        .build()
        .await
        .expect_err("a protocol-relative login URL is refused");
    assert!(matches!(error, ConfigError::Invalid { name: "login URL", .. }), "{error:?}");
}

#[tokio::test]
async fn stytch_sessions_are_judged_at_the_level_their_factors_give_them() {
    let issuer = DevIssuer::start().await.unwrap();
    let routes = || {
        Router::new()
            .merge(guarded("/pwd", Requirement::acr_at_least("pwd")))
            .merge(guarded("/mfa", Requirement::acr_at_least("mfa")))
            .merge(guarded("/phr", Requirement::acr_at_least("phr")))
    };
    let mint = |factors: Vec<DevFactor>| {
        let mut builder = issuer.stytch_session().without_factors();
        for factor in factors {
            builder = builder.factor(factor);
        }
        builder.mint()
    };
    let none = mint(vec![]);
    let email = mint(vec![DevFactor::email_otp()]);
    let totp = mint(vec![DevFactor::totp()]);
    let email_twice = mint(vec![DevFactor::email_otp(), DevFactor::email_otp()]);
    let email_totp = mint(vec![DevFactor::email_otp(), DevFactor::totp()]);
    let email_webauthn = mint(vec![DevFactor::email_otp(), DevFactor::webauthn()]);
    let webauthn = mint(vec![DevFactor::webauthn()]);

    // The documented default: one factor kind is `pwd`, two distinct kinds `mfa`.
    let base = serve(routes().layer(stytch_layer(&issuer, levels()).await)).await;
    for (path, passing, failing, acr_values) in [
        ("/pwd", vec![&email, &totp, &email_twice, &email_totp], vec![&none], "pwd mfa phr"),
        ("/mfa", vec![&email_totp, &email_webauthn], vec![&none, &email, &totp, &email_twice, &webauthn], "mfa phr"),
        ("/phr", vec![], vec![&email_totp, &email_webauthn, &webauthn], "phr"),
    ] {
        for token in passing {
            fetch(&base, path, Cred::Bearer(token), None).await.ok();
        }
        for token in failing {
            fetch(&base, path, Cred::Bearer(token), None)
                .await
                .challenged(401, &step_up_header(Some(acr_values), None));
        }
    }

    // `with_factor_acr` refines it: a factor mapped to a higher level raises the
    // session to that level; one mapped to a lower level never lowers it.
    let config = levels().with_factor_acr(FactorKind::WEBAUTHN, "phr").with_factor_acr(FactorKind::EMAIL_OTP, "pwd");
    let base = serve(routes().layer(stytch_layer(&issuer, config).await)).await;
    fetch(&base, "/phr", Cred::Bearer(&webauthn), None).await.ok();
    fetch(&base, "/phr", Cred::Bearer(&email_webauthn), None).await.ok();
    fetch(&base, "/mfa", Cred::Bearer(&email_totp), None).await.ok();
    fetch(&base, "/phr", Cred::Bearer(&email_totp), None).await.challenged(401, &step_up_header(Some("phr"), None));
    fetch(&base, "/mfa", Cred::Bearer(&email), None).await.challenged(401, &step_up_header(Some("mfa phr"), None));

    // An issuer's own `acr` is taken as sent, whatever the factors: an OIDC token
    // with `acr=pwd` and two `amr` methods stays at `pwd`.
    let base = serve(routes().layer(oidc_layer(&issuer, levels()).await)).await;
    let pwd_two_methods = issuer.access_token().acr("pwd").amr(&["pwd", "otp"]).mint();
    fetch(&base, "/pwd", Cred::Bearer(&pwd_two_methods), None).await.ok();
    fetch(&base, "/mfa", Cred::Bearer(&pwd_two_methods), None)
        .await
        .challenged(401, &step_up_header(Some("mfa phr"), None));
}
