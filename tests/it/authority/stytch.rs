//! Stytch answers read right (issue 8, items 11–13), over real HTTP against the dev
//! issuer:
//!
//! - only `404 session_not_found` ends a session (401, cookies cleared, deny-listed);
//!   every other Stytch error is a server-side fault (`503`, cookies and deny list
//!   untouched), for confirmations and for `revoke`;
//! - `session_duration_minutes` stays within Stytch's 5..=527040, in the library and
//!   in the dev issuer;
//! - B2B revoke names `member_session_id`, and each revoke endpoint takes only its own
//!   fields.

use crate::common::{
    b2b_project_with_secret, cookies, project_with_secret, stytch_app, TestResult, JWT_COOKIE, TOKEN_COOKIE,
};
use std::time::Duration;

use http::header::{ACCEPT, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tower_stepup::{AuthErrorKind, Authority, AuthorityCredential, ConfigError, StytchAuthority};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, Endpoint, Failure};

const MINUTE: Duration = Duration::from_secs(60);

/// Stytch errors that say nothing about the user's session, each with the kind it
/// must become: a server-side fault.
const NOT_ABOUT_THE_SESSION: &[(u16, &str, AuthErrorKind)] = &[
    (400, "bad_request", AuthErrorKind::AuthorityUnavailable),
    (400, "invalid_session_duration_minutes", AuthErrorKind::AuthorityUnavailable),
    (401, "cname_required_for_http_only_cookies", AuthErrorKind::AuthorityUnavailable),
    (401, "unauthorized_credentials", AuthErrorKind::BadServerCredentials),
    (403, "use_https", AuthErrorKind::AuthorityUnavailable),
    (404, "user_not_found", AuthErrorKind::AuthorityUnavailable),
    (408, "request_timeout", AuthErrorKind::AuthorityTimeout),
    (429, "too_many_requests", AuthErrorKind::AuthorityUnavailable),
    (500, "internal_server_error", AuthErrorKind::AuthorityUnavailable),
    (502, "bad_gateway", AuthErrorKind::AuthorityUnavailable),
];

async fn get_with(
    http: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut request = http.get(url).header(ACCEPT, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn set_cookie_count(response: &reqwest::Response) -> usize {
    response.headers().get_all(SET_COOKIE).iter().count()
}

/// A raw call to a Stytch session endpoint of the dev issuer.
async fn post(issuer: &DevIssuer, path: &str, body: Value) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", issuer.base_url()))
        .basic_auth(issuer.project_id(), Some(issuer.secret()))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

/// The error body Stytch sends, with the expected status and type.
fn assert_stytch_error(status: StatusCode, body: &Value, expected: u16, error_type: &str) {
    assert_eq!(status.as_u16(), expected, "{body}");
    assert_eq!(body["status_code"], expected, "{body}");
    assert_eq!(body["error_type"], error_type, "{body}");
    for field in ["request_id", "error_message", "error_url"] {
        assert!(body[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {body}");
    }
}

// ------------------------------------------------------------------ item 11

#[tokio::test]
async fn stytch_errors_not_about_the_session_fail_closed_and_log_nobody_out() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    // One live session through every error: if any of them deny-listed it or cleared
    // its cookies, the later checks would fail.
    let session = issuer.create_session("user-kept", vec![DevFactor::password()]);
    let cookie = cookies(&session);

    for &(status, error_type, _) in NOT_ABOUT_THE_SESSION {
        let case = format!("{status} {error_type}");
        issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::StytchError { status, error_type });

        let transfer = get_with(&http, format!("{base}/transfer"), Some(&cookie), None).await;
        assert_eq!(transfer.status(), 503, "{case}");
        assert_eq!(set_cookie_count(&transfer), 0, "{case}: a server-side fault must not touch cookies");
        let transfer = get_with(&http, format!("{base}/transfer"), None, Some(&session.session_jwt)).await;
        assert_eq!(transfer.status(), 503, "{case}");

        // Not deny-listed: local routes still take the session, by cookie and bearer.
        let me = get_with(&http, format!("{base}/me"), Some(&cookie), None).await;
        assert_eq!(me.status(), 200, "{case}");
        assert_eq!(set_cookie_count(&me), 0, "{case}");
        let me = get_with(&http, format!("{base}/me"), None, Some(&session.session_jwt)).await;
        assert_eq!(me.status(), 200, "{case}");
    }

    // Stytch answers again: the session was never ended.
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::None);
    let transfer = get_with(&http, format!("{base}/transfer"), None, Some(&session.session_jwt)).await;
    assert_eq!(transfer.status(), 200);
    Ok(())
}

#[tokio::test]
async fn session_not_found_ends_the_session() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    // The session is live at the issuer: only the answer says it is gone.
    let session = issuer.create_session("user-ended", vec![DevFactor::password()]);
    assert_eq!(get_with(&http, format!("{base}/me"), None, Some(&session.session_jwt)).await.status(), 200);
    issuer.set_endpoint_failure(
        Endpoint::SessionsAuthenticate,
        Failure::StytchError { status: 404, error_type: "session_not_found" },
    );

    let transfer = get_with(&http, format!("{base}/transfer"), Some(&cookies(&session)), None).await;
    assert_eq!(transfer.status(), 401);
    let cleared: Vec<String> =
        transfer.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    for name in [JWT_COOKIE, TOKEN_COOKIE] {
        assert!(
            cleared.iter().any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0")),
            "{name} not cleared: {cleared:?}"
        );
    }
    // Deny-listed: the still-valid JWT no longer passes on a local route.
    let me = get_with(&http, format!("{base}/me"), None, Some(&session.session_jwt)).await;
    assert_eq!(me.status(), 401);
    Ok(())
}

#[tokio::test]
async fn authority_reads_each_stytch_error_for_authenticate_and_revoke() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?;
    let session = issuer.create_session("user-kinds", vec![DevFactor::password()]);
    let ended = [(404, "session_not_found", AuthErrorKind::SessionRevoked)];

    for &(status, error_type, kind) in NOT_ABOUT_THE_SESSION.iter().chain(&ended) {
        let failure = Failure::StytchError { status, error_type };
        issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, failure);
        issuer.set_endpoint_failure(Endpoint::SessionsRevoke, failure);
        for credential in
            [AuthorityCredential::Opaque(&session.session_token), AuthorityCredential::Jwt(&session.session_jwt)]
        {
            let error = authority.authenticate(credential).await.unwrap_err();
            assert_eq!(error.kind(), kind, "{status} {error_type}");
            assert_eq!(error.kind().is_server_fault(), kind != AuthErrorKind::SessionRevoked);
            let detail = error.detail().unwrap_or_default();
            assert!(detail.contains(error_type) && detail.contains("request-id-test-"), "{detail}");
            assert!(!error.to_string().contains(credential.token()), "{error}");
        }
        let error = authority.revoke(&session.session_id).await.unwrap_err();
        assert_eq!(error.kind(), kind, "revoke: {status} {error_type}");
    }

    // The session lived through all of it.
    issuer.set_failure(Failure::None);
    authority.authenticate(AuthorityCredential::Opaque(&session.session_token)).await?;
    Ok(())
}

// ------------------------------------------------------------------ item 12

#[tokio::test]
async fn session_duration_outside_stytch_range_is_a_config_error() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let new = || StytchAuthority::new(&project_with_secret(&issuer));
    for bad in [Duration::ZERO, 4 * MINUTE, Duration::from_secs(299), 527_041 * MINUTE, Duration::MAX] {
        let error = new()?.with_session_duration(bad).check().unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { .. }), "{bad:?}: {error:?}");
        // A layer does not start with it.
        let layer = tower_stepup::SessionLayer::stytch(&project_with_secret(&issuer))
            .with_authority(new()?.with_session_duration(bad));
        let error = layer.with_lazy_start().build().await.unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { .. }), "{bad:?}: {error:?}");
    }
    assert_eq!(StytchAuthority::MIN_SESSION_DURATION, 5 * MINUTE);
    assert_eq!(StytchAuthority::MAX_SESSION_DURATION, 527_040 * MINUTE);

    // The bounds are accepted by the library and by the dev issuer, which enforces
    // Stytch's range: a confirmation with each succeeds.
    let session = issuer.create_session("user-duration", vec![DevFactor::password()]);
    for good in [StytchAuthority::MIN_SESSION_DURATION, StytchAuthority::MAX_SESSION_DURATION] {
        let authority = new()?.with_session_duration(good);
        authority.check()?;
        let confirmation = authority.authenticate(AuthorityCredential::Opaque(&session.session_token)).await?;
        assert_eq!(confirmation.session.subject(), "user-duration");
    }
    Ok(())
}

#[tokio::test]
async fn dev_issuer_refuses_session_durations_stytch_refuses() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let session = issuer.create_session("user-range", vec![DevFactor::password()]);
    for path in ["/v1/sessions/authenticate", "/v1/b2b/sessions/authenticate"] {
        for minutes in [json!(0), json!(4), json!(527_041), json!(-5), json!(5.5), json!("60")] {
            let body = json!({ "session_token": session.session_token, "session_duration_minutes": minutes });
            let (status, error) = post(&issuer, path, body).await?;
            assert_stytch_error(status, &error, 400, "invalid_session_duration_minutes");
        }
    }
    for minutes in [5, 527_040] {
        let body = json!({ "session_token": session.session_token, "session_duration_minutes": minutes });
        let (status, body) = post(&issuer, "/v1/sessions/authenticate", body).await?;
        assert_eq!(status, StatusCode::OK, "{minutes}: {body}");
    }
    Ok(())
}

// ------------------------------------------------------------------ item 13

#[tokio::test]
async fn b2b_revoke_sends_member_session_id() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let authority = StytchAuthority::new(&b2b_project_with_secret(&issuer))?;
    let member = issuer.create_b2b_session("member-test-revoke", "organization-test-1", "acme", vec![]);
    authority.authenticate(AuthorityCredential::Opaque(&member.session_token)).await?;

    issuer.reset_counts();
    authority.revoke(&member.session_id).await?;
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 1);
    let error = authority.authenticate(AuthorityCredential::Opaque(&member.session_token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::SessionRevoked);
    // Gone already: Stytch's 404 session_not_found, read as such.
    let error = authority.revoke(&member.session_id).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::SessionRevoked);

    // Consumer revoke keeps `session_id`.
    let consumer = StytchAuthority::new(&project_with_secret(&issuer))?;
    let user = issuer.create_session("user-test-revoke", vec![DevFactor::password()]);
    consumer.revoke(&user.session_id).await?;
    let error = consumer.authenticate(AuthorityCredential::Opaque(&user.session_token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::SessionRevoked);
    Ok(())
}

#[tokio::test]
async fn revoke_endpoints_take_only_their_own_fields() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let b2b = "/v1/b2b/sessions/revoke";
    let consumer = "/v1/sessions/revoke";
    let member = issuer.create_b2b_session("member-test-fields", "organization-test-1", "acme", vec![]);
    let user = issuer.create_session("user-test-fields", vec![DevFactor::password()]);

    for (path, body) in [
        // B2B has no `session_id`.
        (b2b, json!({ "session_id": member.session_id })),
        (consumer, json!({ "member_session_id": user.session_id })),
        (consumer, json!({ "member_id": user.user_id })),
        (b2b, json!({ "member_session_id": member.session_id, "session_token": member.session_token })),
        (consumer, json!({ "session_id": user.session_id, "session_jwt": user.session_jwt })),
        (b2b, json!({ "member_session_id": member.session_id, "reason": "logout" })),
        (b2b, json!({})),
        (consumer, json!({})),
        (b2b, json!({ "member_session_id": 42 })),
    ] {
        let (status, error) = post(&issuer, path, body.clone()).await?;
        assert_stytch_error(status, &error, 400, "bad_request");
        assert!(!error["error_message"].as_str().unwrap_or_default().is_empty(), "{path} {body}");
    }
    // Nothing was revoked by the refused requests.
    let (status, _) =
        post(&issuer, "/v1/b2b/sessions/authenticate", json!({ "session_token": member.session_token })).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        post(&issuer, "/v1/sessions/authenticate", json!({ "session_token": user.session_token })).await?;
    assert_eq!(status, StatusCode::OK);
    // Authenticate takes its own fields only, too.
    let (status, error) =
        post(&issuer, "/v1/sessions/authenticate", json!({ "session_token": user.session_token, "session_id": "x" }))
            .await?;
    assert_stytch_error(status, &error, 400, "bad_request");

    // Each endpoint revokes only its own kind of session.
    let (status, error) = post(&issuer, consumer, json!({ "session_id": member.session_id })).await?;
    assert_stytch_error(status, &error, 404, "session_not_found");
    let (status, error) = post(&issuer, b2b, json!({ "member_session_id": user.session_id })).await?;
    assert_stytch_error(status, &error, 404, "session_not_found");

    // Every accepted field works.
    let second = issuer.create_b2b_session("member-test-fields", "organization-test-1", "acme", vec![]);
    let third = issuer.create_b2b_session("member-test-other", "organization-test-1", "acme", vec![]);
    let fourth = issuer.create_b2b_session("member-test-jwt", "organization-test-1", "acme", vec![]);
    let (status, _) = post(&issuer, b2b, json!({ "member_id": "member-test-fields" })).await?;
    assert_eq!(status, StatusCode::OK);
    for gone in [&member, &second] {
        let (status, _) =
            post(&issuer, "/v1/b2b/sessions/authenticate", json!({ "session_token": gone.session_token })).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "member_id revokes every session of the member");
    }
    let (status, _) = post(&issuer, b2b, json!({ "session_token": third.session_token })).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(&issuer, b2b, json!({ "session_jwt": fourth.session_jwt })).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(&issuer, consumer, json!({ "session_token": user.session_token })).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}
