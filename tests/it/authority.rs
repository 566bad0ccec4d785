//! The authority over real HTTP: `fresh()` / `fresh_within` guards, coalesced
//! confirmations, the deny list, failure policy, opaque tokens (Stytch session
//! tokens and RFC 7662 introspection), renewal cookies, B2B, and redaction.
//!
//! Every test runs a dev issuer and the app on loopback ports and talks to both with
//! `reqwest`; a few also drive the router in-process (`oneshot`) to read the typed
//! `AuthError` a refusal carries in its extensions.

/// Issuer answers bound to the credential they are about.
mod confirm;
/// Credentials only the issuer can judge: budget, issuer and audience rules.
mod opaque;
/// Stytch answers read right: errors, durations, B2B revocation.
mod stytch;

use crate::common::{
    b2b_project_with_secret, bearer, challenge, cookies, error_kind, info, introspection, oneshot, project,
    project_with_secret, routes, serve, set_cookies, stytch_app, with_cookies, TestResult, JWT_COOKIE, MAX_POLLS,
    SHORT_WINDOW, TOKEN_COOKIE,
};
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::Router;
use http::header::{ACCEPT, AUTHORIZATION, COOKIE, RETRY_AFTER, SET_COOKIE};
use serde_json::{json, Value};
use tower_stepup::{
    AuthErrorKind, Authority, AuthorityCredential, Confirmation, CookieAttributes, Guard, IntrospectionAuthority,
    RenewedTokens, SessionLayer, SessionLayerBuilder, StytchAuthority,
};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, DevSession, Endpoint, Failure, OpaqueTokenSpec, DEFAULT_AUDIENCE};

// ------------------------------------------------------------------ helpers

async fn app_with(builder: SessionLayerBuilder) -> String {
    serve(routes(builder.build().await.unwrap())).await
}

fn find_cookie<'a>(cookies: &'a [cookie::Cookie<'static>], name: &str) -> &'a cookie::Cookie<'static> {
    cookies.iter().find(|c| c.name() == name).unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

/// Both session cookies are cleared: empty values, `Max-Age=0`.
fn assert_cleared(headers: &http::HeaderMap) {
    let cookies = set_cookies(headers);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for name in [JWT_COOKIE, TOKEN_COOKIE] {
        let cookie = find_cookie(&cookies, name);
        assert_eq!(cookie.value(), "", "{cookie}");
        assert_eq!(cookie.max_age(), Some(cookie::time::Duration::ZERO), "{cookie}");
    }
    for raw in headers.get_all(SET_COOKIE) {
        assert!(raw.to_str().unwrap().contains("Max-Age=0"), "{raw:?}");
    }
}

/// An expired session JWT of a live session (correctly signed, `exp` ten minutes ago).
fn expired_jwt(issuer: &DevIssuer, session: &DevSession) -> String {
    issuer
        .stytch_session()
        .session_id(&session.session_id)
        .subject(&session.user_id)
        .factor(DevFactor::password())
        .issued_at(SystemTime::now() - Duration::from_secs(15 * 60))
        .lifetime(Duration::from_secs(5 * 60))
        .mint()
}

// ------------------------------------------------------------------ revocation

#[tokio::test]
async fn revocation_is_caught_on_the_next_fresh_request_then_refused_everywhere() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-revoked", vec![DevFactor::password()]);
    let bystander = issuer.create_session("user-bystander", vec![DevFactor::password()]);

    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 200);
    let transfer = bearer(&http, format!("{base}/transfer"), &session.session_jwt).await;
    assert_eq!(transfer.status(), 200);
    assert_eq!(transfer.headers().get_all(SET_COOKIE).iter().count(), 0, "bearer clients never get cookies");
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);

    assert!(issuer.revoke_session(&session.session_id));

    // Not learned yet: the local route keeps accepting the JWT, without issuer calls.
    for _ in 0..3 {
        assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 200);
    }
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);

    // The very next fresh request asks the issuer and is refused.
    let transfer = bearer(&http, format!("{base}/transfer"), &session.session_jwt).await;
    assert_eq!(transfer.status(), 401);
    assert!(challenge(&transfer).contains("error=\"invalid_token\""), "{}", challenge(&transfer));
    assert_eq!(transfer.headers().get_all(SET_COOKIE).iter().count(), 0, "bearer clients never get cookies");
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2);

    // Learned: every route refuses it now, locally — the cached JWT ...
    let me = bearer(&http, format!("{base}/me"), &session.session_jwt).await;
    assert_eq!(me.status(), 401);
    assert!(challenge(&me).contains("invalid_token"), "{}", challenge(&me));
    // ... and a JWT of the same session this server never saw.
    let unseen = issuer.stytch_session().session_id(&session.session_id).subject(&session.user_id).mint();
    assert_ne!(unseen, session.session_jwt);
    assert_eq!(bearer(&http, format!("{base}/me"), &unseen).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/recent"), &unseen).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/lenient"), &session.session_jwt).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2, "the deny list is a local lookup");

    // Other sessions are not affected.
    assert_eq!(bearer(&http, format!("{base}/me"), &bystander.session_jwt).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &bystander.session_jwt).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn revocation_clears_the_cookies_of_cookie_clients() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-cookies", vec![DevFactor::password()]);
    let cookie = cookies(&session);

    let transfer = with_cookies(&http, format!("{base}/transfer"), &cookie).await;
    assert_eq!(transfer.status(), 200);
    assert_eq!(set_cookies(transfer.headers()).len(), 2, "renewed cookies");

    assert!(issuer.revoke_session(&session.session_id));
    let me = with_cookies(&http, format!("{base}/me"), &cookie).await;
    assert_eq!(me.status(), 200, "not learned yet");
    assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0);

    let transfer = with_cookies(&http, format!("{base}/transfer"), &cookie).await;
    assert_eq!(transfer.status(), 401);
    assert!(challenge(&transfer).contains("invalid_token"), "{}", challenge(&transfer));
    assert_cleared(transfer.headers());

    // From now on every route refuses the session and clears the cookies again.
    let me = with_cookies(&http, format!("{base}/me"), &cookie).await;
    assert_eq!(me.status(), 401);
    assert_cleared(me.headers());
    // Only the session token left (the JWT cookie was dropped by the browser, say).
    let token_only = format!("{TOKEN_COOKIE}={}", session.session_token);
    let me = with_cookies(&http, format!("{base}/me"), &token_only).await;
    assert_eq!(me.status(), 401);
    assert_cleared(me.headers());
    Ok(())
}

#[tokio::test]
async fn revocation_of_an_opaque_only_session_reaches_every_route() -> TestResult {
    // A browser holding only the `stytch_session` cookie. The fresh route learns of
    // the revocation; the local route must refuse the session from then on, also
    // once the leeway (all a session without JWT `exp` would be denied for) has
    // passed, while the opaque-token cache still holds the earlier "alive".
    let issuer = DevIssuer::start().await?;
    let base = app_with(
        SessionLayer::stytch(&project_with_secret(&issuer))
            .with_leeway(Duration::from_secs(1))
            .with_opaque_token_ttl(Duration::from_secs(60)),
    )
    .await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-opaque-revoked", vec![DevFactor::password()]);
    let cookie = format!("{TOKEN_COOKIE}={}", session.session_token);

    assert_eq!(with_cookies(&http, format!("{base}/me"), &cookie).await.status(), 200);
    assert!(issuer.revoke_session(&session.session_id));
    assert_eq!(with_cookies(&http, format!("{base}/me"), &cookie).await.status(), 200, "cached, not learned yet");

    let transfer = with_cookies(&http, format!("{base}/transfer"), &cookie).await;
    assert_eq!(transfer.status(), 401);
    assert_cleared(transfer.headers());
    assert_eq!(with_cookies(&http, format!("{base}/me"), &cookie).await.status(), 401);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let me = with_cookies(&http, format!("{base}/me"), &cookie).await;
    assert_eq!(me.status(), 401, "a revoked session came back once its deny-list entry expired");
    Ok(())
}

#[tokio::test]
async fn revocation_learned_from_a_jwt_outlives_cached_opaque_answers() -> TestResult {
    // The fresh route learns of the revocation from a short-lived bearer JWT. The
    // session is refused everywhere for as long as any cached answer could admit it:
    // not only until that JWT expires, but also while the opaque-token cache still
    // holds an "alive" for the session token.
    let issuer = DevIssuer::start().await?;
    let base = app_with(
        SessionLayer::stytch(&project_with_secret(&issuer))
            .with_leeway(Duration::from_secs(1))
            .with_opaque_token_ttl(Duration::from_secs(60)),
    )
    .await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-cross", vec![DevFactor::password()]);
    let token_only = format!("{TOKEN_COOKIE}={}", session.session_token);
    let short_jwt = issuer
        .stytch_session()
        .session_id(&session.session_id)
        .subject(&session.user_id)
        .lifetime(Duration::from_secs(1))
        .mint();

    assert_eq!(with_cookies(&http, format!("{base}/me"), &token_only).await.status(), 200);
    assert!(issuer.revoke_session(&session.session_id));
    assert_eq!(bearer(&http, format!("{base}/transfer"), &short_jwt).await.status(), 401);
    assert_eq!(with_cookies(&http, format!("{base}/me"), &token_only).await.status(), 401);

    // Past the JWT's `exp` plus leeway.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let me = with_cookies(&http, format!("{base}/me"), &token_only).await;
    assert_eq!(me.status(), 401, "the cached opaque answer admitted a revoked session again");
    Ok(())
}

// ------------------------------------------------------------------ fresh_within

#[tokio::test]
async fn fresh_within_reuses_a_recent_confirmation_and_asks_again_after_the_window() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-window", vec![DevFactor::password()]);

    assert_eq!(bearer(&http, format!("{base}/recent"), &session.session_jwt).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);
    for _ in 0..3 {
        assert_eq!(bearer(&http, format!("{base}/recent"), &session.session_jwt).await.status(), 200);
    }
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1, "one call per session per window");

    // Revoked, but the one-hour window still holds the confirmation: not seen yet.
    assert!(issuer.revoke_session(&session.session_id));
    assert_eq!(bearer(&http, format!("{base}/recent"), &session.session_jwt).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);

    // The same confirmation is older than the 300 ms window of `/short` once we wait
    // just past it: that route asks again and sees the revocation.
    tokio::time::sleep(SHORT_WINDOW + Duration::from_millis(50)).await;
    let short = bearer(&http, format!("{base}/short"), &session.session_jwt).await;
    assert_eq!(short.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2);

    // Learned: the long-window route refuses it too, without a call.
    assert_eq!(bearer(&http, format!("{base}/recent"), &session.session_jwt).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2);
    Ok(())
}

#[tokio::test]
async fn fresh_within_short_window_sees_a_revocation_after_it() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-short", vec![DevFactor::password()]);

    assert_eq!(bearer(&http, format!("{base}/short"), &session.session_jwt).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);
    assert!(issuer.revoke_session(&session.session_id));
    tokio::time::sleep(SHORT_WINDOW + Duration::from_millis(50)).await;
    assert_eq!(bearer(&http, format!("{base}/short"), &session.session_jwt).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2);
    Ok(())
}

// ------------------------------------------------------------------ coalescing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_cause_one_authenticate_call() -> TestResult {
    let issuer = DevIssuer::start().await?;
    // Room for a loaded machine (the whole suite runs in one process): what is tested
    // is that the calls coalesce, not how fast one call is.
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?.with_timeout(Duration::from_secs(10));
    let base = app_with(SessionLayer::stytch(&project_with_secret(&issuer)).with_authority(authority)).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-burst", vec![DevFactor::password()]);
    let cookie = cookies(&session);
    // A slow issuer keeps the first call in flight while most requests arrive, so
    // they join it rather than find its answer cached.
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Slow(Duration::from_millis(300)));

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let (http, url, jwt, cookie) =
            (http.clone(), format!("{base}/recent"), session.session_jwt.clone(), cookie.clone());
        // Bearer JWTs and cookie clients mixed: confirmations are keyed by session.
        tasks.spawn(async move {
            let request =
                if i % 2 == 0 { http.get(url).bearer_auth(jwt) } else { http.get(url).header(COOKIE, cookie) };
            request.send().await.map(|r| r.status().as_u16())
        });
    }
    let mut statuses = Vec::new();
    while let Some(result) = tasks.join_next().await {
        statuses.push(result??);
    }
    assert_eq!(statuses.len(), 500);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_a_fresh_route_share_calls_in_flight() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?.with_timeout(Duration::from_secs(10));
    let base = app_with(SessionLayer::stytch(&project_with_secret(&issuer)).with_authority(authority)).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-fresh-burst", vec![DevFactor::password()]);

    // `fresh()` promises: every request is confirmed by a call that started no
    // earlier than the request arrived, or by a call already in flight when it
    // arrived (that one is shared). It does not promise "far fewer calls than
    // requests": a request arriving just after a call finished asks again. So a
    // burst makes at least one and at most one call per request, and all pass.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (http, url, jwt) = (http.clone(), format!("{base}/transfer"), session.session_jwt.clone());
        tasks.spawn(async move { http.get(url).bearer_auth(jwt).send().await.map(|r| r.status().as_u16()) });
    }
    let mut statuses = Vec::new();
    while let Some(result) = tasks.join_next().await {
        statuses.push(result??);
    }
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    assert!((1..=100).contains(&calls), "{calls} calls for 100 requests");

    // A request arriving while a call is in flight joins it: hold the call at the
    // issuer, wait until it has arrived there, then send a second request (the hold
    // is long next to one loopback request, so it arrives while the call is held).
    issuer.reset_counts();
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Slow(Duration::from_millis(1500)));
    let first = tokio::spawn(bearer_status(http.clone(), format!("{base}/transfer"), session.session_jwt.clone()));
    let mut polls = 0;
    while issuer.request_count(Endpoint::SessionsAuthenticate) == 0 {
        polls += 1;
        assert!(polls < MAX_POLLS, "the first confirmation never reached the issuer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = bearer(&http, format!("{base}/transfer"), &session.session_jwt).await;
    assert_eq!(second.status(), 200);
    assert_eq!(first.await?, 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1, "the second request joined the first call");
    Ok(())
}

async fn bearer_status(http: reqwest::Client, url: String, token: String) -> u16 {
    http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

// ------------------------------------------------------------------ failure policy

#[tokio::test]
async fn issuer_down_fails_closed_on_fresh_routes_and_open_where_allowed() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-outage", vec![DevFactor::password()]);
    let cookie = cookies(&session);

    for failure in [Failure::Status500, Failure::Unavailable] {
        issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, failure);
        let before = issuer.request_count(Endpoint::SessionsAuthenticate);

        let transfer = bearer(&http, format!("{base}/transfer"), &session.session_jwt).await;
        assert_eq!(transfer.status(), 503, "{failure:?}");
        assert!(transfer.headers().contains_key(RETRY_AFTER), "{failure:?}: {:?}", transfer.headers());

        // A cookie client: 503 too, and its cookies are left alone.
        let transfer = http
            .get(format!("{base}/transfer"))
            .header(COOKIE, &cookie)
            .header(ACCEPT, "application/json")
            .send()
            .await?;
        assert_eq!(transfer.status(), 503);
        assert!(transfer.headers().contains_key(RETRY_AFTER));
        assert_eq!(transfer.headers().get_all(SET_COOKIE).iter().count(), 0, "an outage must not log anyone out");
        let problem: Value = transfer.json().await?;
        assert_eq!(problem["status"], 503);
        assert_eq!(problem["detail"], "the issuer is unavailable", "{problem}");

        // Fail-open routes judge the local session; local routes never ask.
        assert_eq!(bearer(&http, format!("{base}/lenient"), &session.session_jwt).await.status(), 200);
        assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 200);
        assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), before + 3, "failures are not cached");
    }

    // Back up: the failures were not remembered.
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::None);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &session.session_jwt).await.status(), 200);

    // Fail-open is for outages only: a session the issuer says is gone is refused.
    assert!(issuer.revoke_session(&session.session_id));
    assert_eq!(bearer(&http, format!("{base}/lenient"), &session.session_jwt).await.status(), 401);
    Ok(())
}

#[tokio::test]
async fn slow_issuer_times_out_as_authority_timeout() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?.with_timeout(Duration::from_millis(200));
    let layer = SessionLayer::stytch(&project_with_secret(&issuer)).with_authority(authority).build().await?;
    let app = routes(layer);
    let base = serve(app.clone()).await;
    let session = issuer.create_session("user-slow", vec![DevFactor::password()]);
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Slow(Duration::from_secs(5)));

    // In process: the refusal carries the typed error.
    let response = oneshot(app.clone(), "/transfer", &session.session_jwt).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key(RETRY_AFTER));
    assert_eq!(error_kind(&response), Some(AuthErrorKind::AuthorityTimeout));

    // Over HTTP: the problem document names it.
    let response = reqwest::Client::new()
        .get(format!("{base}/transfer"))
        .bearer_auth(&session.session_jwt)
        .header(ACCEPT, "application/problem+json")
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await?;
    assert_eq!(problem["detail"], AuthErrorKind::AuthorityTimeout.description(), "{problem}");

    // Fail-open lets the local session through instead.
    assert_eq!(oneshot(app, "/lenient", &session.session_jwt).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn garbage_from_the_issuer_is_a_clear_error() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let layer = SessionLayer::stytch(&project_with_secret(&issuer)).build().await?;
    let app = routes(layer);
    let session = issuer.create_session("user-garbage", vec![DevFactor::password()]);
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Garbage);

    let response = oneshot(app.clone(), "/transfer", &session.session_jwt).await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_kind(&response), Some(AuthErrorKind::AuthorityResponse));
    // An opaque token that needs the issuer: a 503 too, not a 401 and not a panic.
    let response = oneshot(app.clone(), "/me", &session.session_token).await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_kind(&response), Some(AuthErrorKind::AuthorityResponse));

    // The authority itself says so.
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?;
    let error = authority.authenticate(AuthorityCredential::Opaque(&session.session_token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::AuthorityResponse);
    assert!(!error.to_string().contains(&session.session_token), "{error}");

    // Introspection as well.
    issuer.set_endpoint_failure(Endpoint::Introspect, Failure::Garbage);
    let introspection =
        IntrospectionAuthority::new(&issuer.introspection_url(), issuer.client_id(), issuer.client_secret())?;
    let token = issuer.issue_opaque_access_token(OpaqueTokenSpec::new());
    let error = introspection.authenticate(AuthorityCredential::Opaque(&token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::AuthorityResponse);
    assert!(!error.to_string().contains(&token), "{error}");
    Ok(())
}

#[tokio::test]
async fn wrong_server_credentials_are_503_not_401() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let wrong = project_with_secret(&issuer).with_secret("secret-test-not-the-right-one");
    let layer = SessionLayer::stytch(&wrong).build().await?;
    let app = routes(layer);
    let base = serve(app.clone()).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-misconfigured", vec![DevFactor::password()]);

    let response = oneshot(app.clone(), "/transfer", &session.session_jwt).await;
    assert_eq!(response.status(), 503, "the user did nothing wrong");
    assert_eq!(error_kind(&response), Some(AuthErrorKind::BadServerCredentials));
    let transfer = with_cookies(&http, format!("{base}/transfer"), &cookies(&session)).await;
    assert_eq!(transfer.status(), 503);
    assert_eq!(transfer.headers().get_all(SET_COOKIE).iter().count(), 0, "no logout for a server fault");
    // An opaque session token needs the issuer too.
    let me = with_cookies(&http, format!("{base}/me"), &format!("{TOKEN_COOKIE}={}", session.session_token)).await;
    assert_eq!(me.status(), 503);
    // JWTs on local routes do not need the secret.
    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 200);

    let error =
        StytchAuthority::new(&wrong)?.authenticate(AuthorityCredential::Jwt(&session.session_jwt)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::BadServerCredentials);
    let introspection = IntrospectionAuthority::new(&issuer.introspection_url(), issuer.client_id(), "wrong-secret")?;
    let token = issuer.issue_opaque_access_token(OpaqueTokenSpec::new());
    let error = introspection.authenticate(AuthorityCredential::Opaque(&token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::BadServerCredentials);
    Ok(())
}

#[tokio::test]
async fn authority_kinds_over_http() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?.with_timeout(Duration::from_millis(200));
    let session = issuer.create_session("user-kinds", vec![DevFactor::password()]);

    let confirmation = authority.authenticate(AuthorityCredential::Jwt(&session.session_jwt)).await?;
    assert_eq!(confirmation.session.subject(), "user-kinds");
    assert_eq!(confirmation.session.session_id(), Some(session.session_id.as_str()));
    let renewed = confirmation.renewed.as_ref().ok_or("no renewed tokens")?;
    assert_eq!(renewed.session_token(), Some(session.session_token.as_str()));
    assert!(renewed.session_jwt().is_some_and(|jwt| jwt.split('.').count() == 3));

    for failure in [Failure::Status500, Failure::Unavailable] {
        issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, failure);
        let error = authority.authenticate(AuthorityCredential::Opaque(&session.session_token)).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::AuthorityUnavailable, "{failure:?}");
    }
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Slow(Duration::from_secs(5)));
    let error = authority.authenticate(AuthorityCredential::Opaque(&session.session_token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::AuthorityTimeout);

    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::None);
    assert!(issuer.revoke_session(&session.session_id));
    for credential in
        [AuthorityCredential::Opaque(&session.session_token), AuthorityCredential::Jwt(&session.session_jwt)]
    {
        let error = authority.authenticate(credential).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::SessionRevoked, "{credential:?}");
        assert!(!error.to_string().contains(credential.token()), "{error}");
    }

    // Nobody listening: unavailable, not a panic.
    let dead = project_with_secret(&issuer);
    issuer.shutdown();
    let mut polls = 0;
    let error = loop {
        let error = StytchAuthority::new(&dead)?
            .authenticate(AuthorityCredential::Opaque(&session.session_token))
            .await
            .unwrap_err();
        if error.kind() != AuthErrorKind::SessionRevoked {
            break error;
        }
        polls += 1;
        assert!(polls < MAX_POLLS, "the issuer never stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(error.kind().is_server_fault(), "{error:?}");
    Ok(())
}

// ------------------------------------------------------------------ opaque tokens

#[tokio::test]
async fn stytch_session_cookie_alone_authenticates_and_gets_a_jwt_cookie() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-token-only", vec![DevFactor::password()]);

    let me = with_cookies(&http, format!("{base}/me"), &format!("{TOKEN_COOKIE}={}", session.session_token)).await;
    assert_eq!(me.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);
    let cookies = set_cookies(me.headers());
    let jwt = find_cookie(&cookies, JWT_COOKIE).value().to_owned();
    assert_eq!(jwt.split('.').count(), 3, "{jwt}");
    assert_eq!(find_cookie(&cookies, TOKEN_COOKIE).value(), session.session_token);
    let body: Value = me.json().await?;
    assert_eq!(body["sub"], "user-token-only");
    assert_eq!(body["session_id"], session.session_id.as_str());
    assert_eq!(body["opaque"], true);

    // The renewed JWT verifies locally: no further issuer call.
    let me = bearer(&http, format!("{base}/me"), &jwt).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await?["opaque"], false);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);

    // The same session token as a bearer token works, without cookies.
    let me = bearer(&http, format!("{base}/me"), &session.session_token).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0, "bearer clients never get cookies");
    Ok(())
}

async fn introspection_app_with_ttl(issuer: &DevIssuer, ttl: Duration) -> String {
    app_with(
        SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE)
            .with_authority(introspection(issuer))
            .with_opaque_token_ttl(ttl),
    )
    .await
}

#[tokio::test]
async fn introspected_opaque_tokens_become_sessions_and_are_cached() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = introspection_app_with_ttl(&issuer, Duration::from_secs(60)).await;
    let http = reqwest::Client::new();
    let token = issuer.issue_opaque_access_token(
        OpaqueTokenSpec::new()
            .audience(DEFAULT_AUDIENCE)
            .subject("user-introspected")
            .scope("read write")
            .acr("urn:example:loa:2")
            .amr(&["pwd", "otp"])
            .auth_time(SystemTime::now()),
    );

    let me = bearer(&http, format!("{base}/me"), &token).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0);
    let body: Value = me.json().await?;
    assert_eq!(body["sub"], "user-introspected");
    assert_eq!(body["scopes"], json!(["read", "write"]));
    assert_eq!(body["acr"], "urn:example:loa:2");
    assert_eq!(body["amr"], json!(["pwd", "otp"]));
    assert_eq!(body["factors"], json!(["password", "otp"]));
    assert_eq!(body["opaque"], true);

    for _ in 0..5 {
        assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200);
    }
    assert_eq!(issuer.request_count(Endpoint::Introspect), 1, "cached for the opaque-token TTL");
    Ok(())
}

#[tokio::test]
async fn opaque_token_cache_expires_after_its_ttl() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = introspection_app_with_ttl(&issuer, Duration::from_millis(200)).await;
    let http = reqwest::Client::new();
    let token = issuer.issue_opaque_access_token(OpaqueTokenSpec::new().audience(DEFAULT_AUDIENCE));

    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::Introspect), 1);
    assert!(issuer.revoke_opaque_access_token(&token));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let me = bearer(&http, format!("{base}/me"), &token).await;
    assert_eq!(me.status(), 401);
    assert!(challenge(&me).contains("invalid_token"), "{}", challenge(&me));
    assert_eq!(issuer.request_count(Endpoint::Introspect), 2);
    Ok(())
}

#[tokio::test]
async fn inactive_opaque_tokens_are_invalid_tokens() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = introspection_app_with_ttl(&issuer, Duration::from_secs(60)).await;
    let http = reqwest::Client::new();

    let revoked = issuer.issue_opaque_access_token(OpaqueTokenSpec::new());
    assert!(issuer.revoke_opaque_access_token(&revoked));
    let expired = issuer.issue_opaque_access_token(
        OpaqueTokenSpec::new()
            .issued_at(SystemTime::now() - Duration::from_secs(3600))
            .lifetime(Duration::from_secs(60)),
    );
    let unknown = "ot-test-never-issued-by-anyone";
    for token in [revoked.as_str(), expired.as_str(), unknown] {
        let me = bearer(&http, format!("{base}/me"), token).await;
        assert_eq!(me.status(), 401, "{token}");
        let challenge = challenge(&me);
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(!challenge.contains(token), "{challenge}");
    }
    // An inactive answer is cached like an active one: repeating it costs nothing.
    let calls = issuer.request_count(Endpoint::Introspect);
    assert_eq!(calls, 3);
    assert_eq!(bearer(&http, format!("{base}/me"), &revoked).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::Introspect), calls);
    Ok(())
}

#[tokio::test]
async fn introspection_revocation_seen_on_a_fresh_route_reaches_local_routes() -> TestResult {
    // An introspected token without `sid`: the fresh route learns of the revocation
    // (one introspection call); the local route must not keep serving the "active"
    // answer it cached before.
    let issuer = DevIssuer::start().await?;
    let base = introspection_app_with_ttl(&issuer, Duration::from_secs(60)).await;
    let http = reqwest::Client::new();
    let token = issuer
        .issue_opaque_access_token(OpaqueTokenSpec::new().subject("user-opaque-fresh").audience(DEFAULT_AUDIENCE));

    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &token).await.status(), 200);
    assert!(issuer.revoke_opaque_access_token(&token));
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200, "cached, not learned yet");

    let before = issuer.request_count(Endpoint::Introspect);
    let transfer = bearer(&http, format!("{base}/transfer"), &token).await;
    assert_eq!(transfer.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::Introspect), before + 1);
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 401, "the revocation was learned");
    Ok(())
}

#[tokio::test]
async fn garbage_tokens_never_reach_the_issuer() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let oidc = introspection_app_with_ttl(&issuer, Duration::from_secs(60)).await;
    let stytch = stytch_app(&issuer).await;
    let http = reqwest::Client::new();

    let too_long = "a".repeat(tower_stepup::DEFAULT_MAX_TOKEN_LEN + 1);
    let headers: [&[u8]; 6] = [
        b"Bearer abc def",
        "Bearer t\u{f6}ken".as_bytes(),
        b"Bearer ====",
        b"Bearer abc\"def",
        b"Bearer a.b.c",
        too_long.as_bytes(),
    ];
    for base in [&oidc, &stytch] {
        for path in ["/me", "/transfer", "/recent"] {
            for value in headers {
                let value = if value.starts_with(b"Bearer") { value.to_vec() } else { [b"Bearer ", value].concat() };
                let response = http
                    .get(format!("{base}{path}"))
                    .header(AUTHORIZATION, http::HeaderValue::from_bytes(&value)?)
                    .send()
                    .await?;
                assert!(
                    response.status() == 400 || response.status() == 401,
                    "{path} {:?}: {}",
                    String::from_utf8_lossy(&value),
                    response.status()
                );
            }
            for cookie in ["stytch_session=a%20b", "stytch_session=\"quoted\"", "stytch_session_jwt=not-a-jwt"] {
                let response = with_cookies(&http, format!("{base}{path}"), cookie).await;
                assert!(response.status() == 400 || response.status() == 401, "{cookie}: {}", response.status());
            }
        }
    }
    assert_eq!(issuer.request_count(Endpoint::Introspect), 0);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 0);
    Ok(())
}

#[tokio::test]
async fn opaque_tokens_without_an_authority_are_unsupported() -> TestResult {
    let issuer = DevIssuer::start().await?;
    // No secret: no authority.
    let project = project(&issuer);
    let app = Router::new().route("/me", get(info)).layer(SessionLayer::stytch(&project).build().await?);
    let base = serve(app.clone()).await;
    let session = issuer.create_session("user-no-authority", vec![DevFactor::password()]);

    let response = oneshot(app.clone(), "/me", &session.session_token).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_kind(&response), Some(AuthErrorKind::OpaqueTokenUnsupported));
    let me = reqwest::Client::new()
        .get(format!("{base}/me"))
        .header(COOKIE, format!("{TOKEN_COOKIE}={}", session.session_token))
        .header(ACCEPT, "application/json")
        .send()
        .await?;
    assert_eq!(me.status(), 401);
    assert_eq!(me.json::<Value>().await?["detail"], AuthErrorKind::OpaqueTokenUnsupported.description());

    // Same for an OIDC layer without introspection.
    let oidc = Router::new()
        .route("/me", get(info))
        .layer(SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).build().await?);
    let token = issuer.issue_opaque_access_token(OpaqueTokenSpec::new());
    let response = oneshot(oidc, "/me", &token).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_kind(&response), Some(AuthErrorKind::OpaqueTokenUnsupported));
    assert_eq!(issuer.request_count(Endpoint::Introspect), 0);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 0);

    // A fresh() guard without an authority is a configuration error, said loudly.
    let fresh = Router::new()
        .route("/transfer", get(info).route_layer(Guard::authenticated().fresh()))
        .layer(SessionLayer::stytch(&project).build().await?);
    assert_eq!(oneshot(fresh, "/transfer", &session.session_jwt).await.status(), 500);
    Ok(())
}

// ------------------------------------------------------------------ renewal

#[tokio::test]
async fn expired_jwt_with_a_live_session_token_is_renewed_into_cookies() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-renewed", vec![DevFactor::password()]);
    let expired = expired_jwt(&issuer, &session);

    // Issue 10: the expired JWT alone is confirmed with the issuer (the JWT itself;
    // `fallback.rs` covers that path), and a bearer client never gets cookies.
    let me = bearer(&http, format!("{base}/me"), &expired).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0, "bearer clients never get cookies");
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);

    // Together with its session token, the token is asked about, and renews both.
    let cookie = format!("{JWT_COOKIE}={expired}; {TOKEN_COOKIE}={}", session.session_token);
    let me = with_cookies(&http, format!("{base}/me"), &cookie).await;
    assert_eq!(me.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2);
    let cookies = set_cookies(me.headers());
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert_eq!(cookie.secure(), Some(true), "{cookie}");
        assert_eq!(cookie.http_only(), Some(true), "{cookie}");
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{cookie}");
        assert_eq!(cookie.path(), Some("/"), "{cookie}");
        assert_eq!(cookie.domain(), None, "{cookie}");
        // The dev session lives 60 minutes from its creation a moment ago.
        let max_age = cookie.max_age().ok_or("no Max-Age")?.whole_seconds();
        assert!((3000..=3600).contains(&max_age), "Max-Age {max_age} does not match the session");
    }
    let renewed = find_cookie(&cookies, JWT_COOKIE).value().to_owned();
    assert_ne!(renewed, expired);
    assert_eq!(find_cookie(&cookies, TOKEN_COOKIE).value(), session.session_token);
    assert_eq!(me.json::<Value>().await?["session_id"], session.session_id.as_str());

    // The renewed JWT works locally.
    assert_eq!(bearer(&http, format!("{base}/me"), &renewed).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2);

    // A revoked session is not renewed: the cookies are cleared instead.
    let other = issuer.create_session("user-renewed-revoked", vec![DevFactor::password()]);
    let expired = expired_jwt(&issuer, &other);
    assert!(issuer.revoke_session(&other.session_id));
    let cookie = format!("{JWT_COOKIE}={expired}; {TOKEN_COOKIE}={}", other.session_token);
    let me = with_cookies(&http, format!("{base}/me"), &cookie).await;
    assert_eq!(me.status(), 401);
    assert_cleared(me.headers());
    Ok(())
}

#[tokio::test]
async fn cookie_attributes_are_configurable() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let attributes = CookieAttributes::default()
        .with_domain("example.test")
        .with_path("/app")
        .with_same_site(tower_stepup::SameSite::Strict);
    let base = app_with(SessionLayer::stytch(&project_with_secret(&issuer)).with_cookie_attributes(attributes)).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-attributes", vec![DevFactor::password()]);

    let transfer = with_cookies(&http, format!("{base}/transfer"), &cookies(&session)).await;
    assert_eq!(transfer.status(), 200);
    let cookies = set_cookies(transfer.headers());
    assert_eq!(cookies.len(), 2);
    for cookie in &cookies {
        assert_eq!(cookie.domain(), Some("example.test"), "{cookie}");
        assert_eq!(cookie.path(), Some("/app"), "{cookie}");
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict), "{cookie}");
        assert_eq!(cookie.secure(), Some(true), "{cookie}");
        assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    }

    // Cleared cookies carry the same attributes, or the browser would keep them.
    assert!(issuer.revoke_session(&session.session_id));
    let transfer =
        with_cookies(&http, format!("{base}/transfer"), &format!("{TOKEN_COOKIE}={}", session.session_token)).await;
    assert_eq!(transfer.status(), 401);
    assert_cleared(transfer.headers());
    for cookie in set_cookies(transfer.headers()) {
        assert_eq!(cookie.domain(), Some("example.test"), "{cookie}");
        assert_eq!(cookie.path(), Some("/app"), "{cookie}");
    }
    Ok(())
}

#[tokio::test]
async fn step_up_on_a_fresh_route_then_renewed_cookies() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-step-up", vec![DevFactor::password()]);
    let cookie = cookies(&session);

    let totp = with_cookies(&http, format!("{base}/totp"), &cookie).await;
    assert_eq!(totp.status(), 401);
    let header = challenge(&totp);
    assert!(header.contains("error=\"insufficient_user_authentication\""), "{header}");
    assert!(header.contains("max_age=\"300\""), "{header}");

    let stepped_up = issuer.add_factor(&session.session_token, DevFactor::totp()).ok_or("session gone")?;
    // The old JWT does not show the TOTP factor; the issuer does.
    let totp = with_cookies(&http, format!("{base}/totp"), &cookie).await;
    assert_eq!(totp.status(), 200);
    let cookies = set_cookies(totp.headers());
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let renewed = find_cookie(&cookies, JWT_COOKIE).value().to_owned();
    assert_ne!(renewed, session.session_jwt);
    let body: Value = totp.json().await?;
    assert!(body["factors"].as_array().ok_or("factors")?.contains(&json!("totp")), "{body}");

    // The renewed JWT carries the factor itself.
    let me = bearer(&http, format!("{base}/me"), &renewed).await;
    assert!(me.json::<Value>().await?["factors"].as_array().ok_or("factors")?.contains(&json!("totp")));

    // A browser holding only the session token: the layer authenticated it from an
    // earlier (cached) answer, the fresh guard from a newer one. The response must
    // carry the newer JWT once, not be overwritten by the older one.
    let other = issuer.create_session("user-step-up-token-only", vec![DevFactor::password()]);
    let token_only = format!("{TOKEN_COOKIE}={}", other.session_token);
    assert_eq!(with_cookies(&http, format!("{base}/me"), &token_only).await.status(), 200);
    assert_eq!(with_cookies(&http, format!("{base}/totp"), &token_only).await.status(), 401);
    issuer.add_factor(&other.session_token, DevFactor::totp()).ok_or("session gone")?;
    let totp = with_cookies(&http, format!("{base}/totp"), &token_only).await;
    assert_eq!(totp.status(), 200);
    let cookies = set_cookies(totp.headers());
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let renewed = find_cookie(&cookies, JWT_COOKIE).value().to_owned();
    let me = bearer(&http, format!("{base}/me"), &renewed).await;
    assert!(me.json::<Value>().await?["factors"].as_array().ok_or("factors")?.contains(&json!("totp")));

    // A bearer client steps up too, but never gets cookies.
    let totp = bearer(&http, format!("{base}/totp"), &stepped_up.session_jwt).await;
    assert_eq!(totp.status(), 200);
    assert_eq!(totp.headers().get_all(SET_COOKIE).iter().count(), 0);
    Ok(())
}

// ------------------------------------------------------------------ B2B

#[tokio::test]
async fn b2b_sessions_carry_their_organization() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app_with(SessionLayer::stytch(&b2b_project_with_secret(&issuer))).await;
    let http = reqwest::Client::new();
    let session =
        issuer.create_b2b_session("member-test-1", "organization-test-1", "acme", vec![DevFactor::password()]);

    // Locally, from the JWT.
    let me = bearer(&http, format!("{base}/me"), &session.session_jwt).await;
    assert_eq!(me.status(), 200);
    let body: Value = me.json().await?;
    assert_eq!(body["sub"], "member-test-1");
    assert_eq!(body["organization"], "organization-test-1");

    // From the issuer (`/v1/b2b/sessions/authenticate`), on a fresh route and for the
    // opaque session token.
    for response in [
        bearer(&http, format!("{base}/transfer"), &session.session_jwt).await,
        with_cookies(&http, format!("{base}/transfer"), &cookies(&session)).await,
        with_cookies(&http, format!("{base}/me"), &format!("{TOKEN_COOKIE}={}", session.session_token)).await,
    ] {
        assert_eq!(response.status(), 200, "{:?}", response.headers());
        let body: Value = response.json().await?;
        assert_eq!(body["sub"], "member-test-1");
        assert_eq!(body["session_id"], session.session_id.as_str());
        assert_eq!(body["organization"], "organization-test-1");
        assert_eq!(body["organization_slug"], "acme");
    }
    assert!(issuer.request_count(Endpoint::SessionsAuthenticate) >= 3);

    // Revocation works the same way.
    assert!(issuer.revoke_session(&session.session_id));
    assert_eq!(bearer(&http, format!("{base}/transfer"), &session.session_jwt).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 401);
    Ok(())
}

// ------------------------------------------------------------------ redaction

#[tokio::test]
async fn tokens_and_secrets_never_appear_in_debug_or_display() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let session = issuer.create_session("user-redacted", vec![DevFactor::password()]);
    let secrets = [
        issuer.secret().to_owned(),
        issuer.client_secret().to_owned(),
        session.session_token.clone(),
        session.session_jwt.clone(),
    ];
    let check = |what: &str, text: &str| {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} leaks a secret: {text}");
        }
    };

    let stytch = StytchAuthority::new(&project_with_secret(&issuer))?;
    check("StytchAuthority", &format!("{stytch:?}"));
    let introspection =
        IntrospectionAuthority::new(&issuer.introspection_url(), issuer.client_id(), issuer.client_secret())?;
    check("IntrospectionAuthority", &format!("{introspection:?}"));
    check("AuthorityCredential::Jwt", &format!("{:?}", AuthorityCredential::Jwt(&session.session_jwt)));
    check("AuthorityCredential::Opaque", &format!("{:?}", AuthorityCredential::Opaque(&session.session_token)));
    let renewed = RenewedTokens::new()
        .with_session_jwt(session.session_jwt.clone())
        .with_session_token(session.session_token.clone())
        .with_expires_at(SystemTime::now() + Duration::from_secs(60));
    check("RenewedTokens", &format!("{renewed:?}"));
    assert_eq!(renewed.session_jwt(), Some(session.session_jwt.as_str()), "still readable through the accessor");

    // A real confirmation: the issuer sent back the token and a new JWT.
    let confirmation: Confirmation = stytch.authenticate(AuthorityCredential::Opaque(&session.session_token)).await?;
    let new_jwt = confirmation.renewed.as_ref().and_then(RenewedTokens::session_jwt).ok_or("no new JWT")?.to_owned();
    let debug = format!("{confirmation:?} {:?}", confirmation.session);
    check("Confirmation", &debug);
    assert!(!debug.contains(&new_jwt), "Confirmation leaks the renewed JWT: {debug}");

    // Errors from every failure path.
    let mut errors = Vec::new();
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Garbage);
    errors.push(stytch.authenticate(AuthorityCredential::Jwt(&session.session_jwt)).await.unwrap_err());
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Status500);
    errors.push(stytch.authenticate(AuthorityCredential::Opaque(&session.session_token)).await.unwrap_err());
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::None);
    let wrong = StytchAuthority::new(&project_with_secret(&issuer).with_secret("secret-test-wrong"))?;
    errors.push(wrong.authenticate(AuthorityCredential::Opaque(&session.session_token)).await.unwrap_err());
    assert!(issuer.revoke_session(&session.session_id));
    errors.push(stytch.authenticate(AuthorityCredential::Opaque(&session.session_token)).await.unwrap_err());
    errors.push(stytch.authenticate(AuthorityCredential::Jwt(&session.session_jwt)).await.unwrap_err());
    let token = issuer.issue_opaque_access_token(OpaqueTokenSpec::new());
    assert!(issuer.revoke_opaque_access_token(&token));
    errors.push(introspection.authenticate(AuthorityCredential::Opaque(&token)).await.unwrap_err());
    for error in &errors {
        check("AuthError Display", &error.to_string());
        check("AuthError Debug", &format!("{error:?}"));
        assert!(!error.to_string().contains(&token), "{error}");
    }
    Ok(())
}
