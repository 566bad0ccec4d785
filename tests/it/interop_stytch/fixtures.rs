//! Stytch's own documented bodies (`tests/fixtures/stytch/`), unknown extra fields
//! included, read by our authority and profile into the exact expected `Session`.
//! The authority reads them from a tiny server answering the fixture; the session JWT
//! is signed by a dev issuer in Stytch mode and read by our layer and by the SDK.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tower_stepup::{
    AuthErrorKind, Authority as _, AuthorityCredential, Factor, FactorKind, Organization, Session, SessionAttributes,
    StytchAuthority, StytchProject, TokenKind,
};
use tower_stepup_dev_issuer::{DevAlg, DevIssuer, DevIssuerConfig};

use super::{library_reads, library_view, ok, sdk_view, Driver};
use crate::common::{serve, TestResult};

/// The project of the API reference's examples.
const DOC_PROJECT: &str = "project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62";

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stytch").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at(text: &str) -> SystemTime {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    SystemTime::from(parsed)
}

/// A factor as our library keeps it: its fields, and Stytch's whole object as details.
fn factor(raw: &Value) -> Factor {
    Factor::new(FactorKind::parse(raw["type"].as_str().expect("type")))
        .with_delivery_method(raw["delivery_method"].as_str().expect("delivery_method"))
        .with_last_authenticated_at(at(raw["last_authenticated_at"].as_str().expect("last_authenticated_at")))
        .with_details(raw.clone())
}

/// A Stytch stand-in that answers `path` with `status` and `body`, whatever is asked.
async fn answering(path: &str, status: StatusCode, body: Value) -> String {
    let app = Router::new().route(path, post(move || async move { (status, axum::Json(body)) }));
    serve(app).await
}

async fn authority_for(b2b: bool, status: StatusCode, body: Value) -> StytchAuthority {
    let path = if b2b { "/v1/b2b/sessions/authenticate" } else { "/v1/sessions/authenticate" };
    let base = answering(path, status, body).await;
    let project = if b2b { StytchProject::b2b(DOC_PROJECT) } else { StytchProject::consumer(DOC_PROJECT) }
        .expect("project id")
        .with_base_url(base)
        .with_secret("secret-test-fixture");
    StytchAuthority::new(&project).expect("authority")
}

#[tokio::test]
async fn consumer_authenticate_response_becomes_the_expected_session() -> TestResult {
    let body = fixture("authenticate_consumer.json");
    let raw = &body["session"];
    let authority = authority_for(false, StatusCode::OK, body.clone()).await;
    let confirmed =
        authority.authenticate(AuthorityCredential::Opaque("mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q")).await?;

    let expected = Session::builder(
        "user-test-16d9ba61-97a1-4ba4-9720-b03761dc50c6",
        format!("stytch.com/{DOC_PROJECT}"),
    )
    .audience(vec![DOC_PROJECT.to_owned()])
    .token_kind(TokenKind::Opaque)
    .session_id("session-test-fe6c042b-6286-479f-8a4f-b046a6c46509")
    .factors(vec![factor(&raw["authentication_factors"][0])])
    .auth_time(at("2021-08-09T07:41:52Z"))
    .roles(vec!["stytch_user".to_owned()])
    .started_at(at("2021-08-09T07:41:52Z"))
    .last_accessed_at(at("2021-08-09T07:41:52Z"))
    .session_expires_at(at("2021-08-10T07:41:52Z"))
    .claims(json!({ "claim1": "value1", "claim2": "value2" }))
    .attributes(SessionAttributes::new().with_ip_address("203.0.113.1".parse()?).with_user_agent(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",
    ))
    .build();
    let session = &confirmed.session;
    assert_eq!(session.subject(), expected.subject());
    assert_eq!(session.session_id(), expected.session_id());
    assert_eq!(session.factors(), expected.factors());
    assert_eq!(session.raw_claims(), expected.raw_claims());
    assert_eq!(session.organization(), None);
    assert_eq!(session, &expected);

    let renewed = confirmed.renewed.expect("renewed tokens");
    assert_eq!(renewed.session_jwt(), body["session_jwt"].as_str());
    assert_eq!(renewed.session_token(), Some("mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q"));
    assert_eq!(renewed.expires_at(), Some(at("2021-08-10T07:41:52Z")));
    Ok(())
}

#[tokio::test]
async fn b2b_authenticate_response_becomes_the_expected_session() -> TestResult {
    let body = fixture("authenticate_b2b.json");
    let raw = &body["member_session"];
    let authority = authority_for(true, StatusCode::OK, body.clone()).await;
    let confirmed =
        authority.authenticate(AuthorityCredential::Jwt(body["session_jwt"].as_str().expect("jwt"))).await?;

    let expected =
        Session::builder("member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f", format!("stytch.com/{DOC_PROJECT}"))
            .audience(vec![DOC_PROJECT.to_owned()])
            .token_kind(TokenKind::Jwt)
            .session_id("session-test-fe6c042b-6286-479f-8a4f-b046a6c46509")
            .factors(vec![factor(&raw["authentication_factors"][0])])
            .auth_time(at("2023-01-09T07:41:52Z"))
            .roles(vec!["stytch_member".to_owned(), "editor".to_owned()])
            .started_at(at("2023-01-09T07:41:52Z"))
            .last_accessed_at(at("2023-01-09T07:41:52Z"))
            .session_expires_at(at("2021-08-10T07:41:52Z"))
            .organization(
                Organization::new("organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931").with_slug("example-org"),
            )
            .claims(json!({ "claim1": "value1", "claim2": "value2" }))
            .build();
    let session = &confirmed.session;
    assert_eq!(session.subject(), expected.subject());
    assert_eq!(session.organization(), expected.organization());
    assert_eq!(session.roles(), expected.roles());
    assert_eq!(session.factors(), expected.factors());
    assert_eq!(session, &expected);
    Ok(())
}

#[tokio::test]
async fn stytch_error_bodies_are_read_as_stytch_means_them() -> TestResult {
    for (b2b, status, name, kind) in [
        (false, StatusCode::NOT_FOUND, "error_session_not_found.json", AuthErrorKind::SessionRevoked),
        (true, StatusCode::NOT_FOUND, "error_session_not_found.json", AuthErrorKind::SessionRevoked),
        (false, StatusCode::UNAUTHORIZED, "error_unauthorized_credentials.json", AuthErrorKind::BadServerCredentials),
    ] {
        let authority = authority_for(b2b, status, fixture(name)).await;
        let error = authority.authenticate(AuthorityCredential::Opaque("token")).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{name}");
        // The detail names Stytch's error type and request id, nothing else of the body.
        let detail = error.to_string();
        assert!(!detail.contains("x_future_error_field"), "{detail}");
    }
    // The same error type with another status is no session verdict.
    let authority = authority_for(false, StatusCode::BAD_REQUEST, fixture("error_session_not_found.json")).await;
    let error = authority.authenticate(AuthorityCredential::Opaque("token")).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::AuthorityUnavailable);
    Ok(())
}

#[tokio::test]
async fn documented_session_jwt_becomes_the_expected_session_for_us_and_the_sdk() -> TestResult {
    let issuer =
        DevIssuer::start_with(DevIssuerConfig::default().with_project_id(DOC_PROJECT).with_stytch_mode()).await?;
    // The documented claims, re-timed to now (the example expired in 2021): iat, nbf,
    // exp and the session's expires_at. Everything else is as documented.
    let mut claims = fixture("session_jwt_claims.json");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    let session_end = SystemTime::UNIX_EPOCH + Duration::from_secs(now + 3600);
    let session_end_text =
        time::OffsetDateTime::from(session_end).format(&time::format_description::well_known::Rfc3339)?;
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now);
    claims["exp"] = json!(now + 300);
    claims["https://stytch.com/session"]["expires_at"] = json!(session_end_text);
    let kid = issuer.current_kid(DevAlg::RS256);
    let jwt = issuer.sign_raw(json!({ "alg": "RS256", "kid": kid, "typ": "JWT" }), &claims, &kid);

    let project = StytchProject::consumer(DOC_PROJECT)?.with_base_url(issuer.base_url());
    let ours = library_reads(&project, &jwt).await.expect("our layer accepts the documented JWT");
    let raw = &claims["https://stytch.com/session"];
    let expected =
        Session::builder("user-test-16d9ba61-97a1-4ba4-9720-b03761dc50c6", format!("stytch.com/{DOC_PROJECT}"))
            .audience(vec![DOC_PROJECT.to_owned()])
            .issued_at(SystemTime::UNIX_EPOCH + Duration::from_secs(now))
            .expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(now + 300))
            .session_id("session-test-fe6c042b-6286-479f-8a4f-b046a6c46509")
            .factors(vec![factor(&raw["authentication_factors"][0])])
            .auth_time(at("2021-11-02T21:49:19Z"))
            .roles(vec!["stytch_user".to_owned()])
            .started_at(at("2021-11-02T21:49:19Z"))
            .last_accessed_at(at("2021-11-02T21:49:19Z"))
            .session_expires_at(session_end)
            .claims(json!({ "claim1": "value1", "claim2": { "nested": "value2" } }))
            .attributes(SessionAttributes::new().with_ip_address("203.0.113.1".parse()?).with_user_agent("Mozilla/5.0"))
            .build();
    assert_eq!(ours.session_id(), expected.session_id());
    assert_eq!(ours.factors(), expected.factors());
    assert_eq!(ours.raw_claims(), expected.raw_claims());
    assert_eq!(ours, expected);

    // The official SDK reads the same session from it.
    let mut driver = Driver::start(&issuer).await;
    let line = driver.call("consumer", "authenticateJwtLocal", json!({ "session_jwt": jwt })).await;
    assert_eq!(sdk_view(ok(&line), false), library_view(&ours, false));
    Ok(())
}
