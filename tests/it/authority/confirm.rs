//! Issuer answers bound to the credential they are about (`fresh()` and
//! `fresh_within` routes): an answer about one token never judges another token of
//! the same `sid` (RFC 7662), the credential confirmed is the one that produced the
//! local session (mixed Stytch cookies), an answer about another session is refused
//! without side effects, and errors about the credential are `401`, not `503`.
//!
//! Every test runs a dev issuer (or a stand-in introspection endpoint) and the app on
//! loopback ports and talks to both with `reqwest`; a few also drive the router in
//! process (`oneshot`) to read the typed `AuthError` a refusal carries.

use crate::common::{
    bearer, bearer_owned, challenge, error_kind, introspection_app, oneshot, project_with_secret, routes, serve,
    set_cookies, stytch_app, with_cookies, TestResult, TestResultOf, JWT_COOKIE, MAX_POLLS, TOKEN_COOKIE,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::{Json, Router};
use http::header::SET_COOKIE;
use serde_json::{json, Value};
use tower_stepup::{
    AuthErrorKind, Authority, AuthorityCredential, AuthorityFuture, Confirmation, IntrospectionAuthority,
    RenewedTokens, Session, SessionLayer,
};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, Endpoint, Failure, DEFAULT_AUDIENCE, DEFAULT_SUBJECT};

// ------------------------------------------------------------------ helpers

/// No cookie of a response carries a value (clearing a cookie is fine; writing
/// someone's tokens is not).
fn assert_no_tokens_written(headers: &http::HeaderMap) {
    for cookie in set_cookies(headers) {
        assert_eq!(cookie.value(), "", "a session cookie was written: {}", cookie.name());
    }
}

/// Waits until the issuer has received `count` requests at `endpoint`.
async fn wait_for_calls(issuer: &DevIssuer, endpoint: Endpoint, count: usize) {
    let mut polls = 0;
    while issuer.request_count(endpoint) < count {
        polls += 1;
        assert!(polls < MAX_POLLS, "the call never reached the issuer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// ------------------------------------------------- one sid, two tokens (RFC 7662)

#[tokio::test]
async fn cached_answer_about_one_token_never_serves_another_token_of_its_sid() -> TestResult {
    // Keycloak puts the SSO session id in every access token: a first-party app's
    // token with `admin` and a third-party app's token with only `read` share a sid.
    let issuer = DevIssuer::start().await?;
    let base = introspection_app(&issuer).await;
    let http = reqwest::Client::new();
    let admin = issuer.access_token().sid("sid-1").scope("admin").client_id("first-party").mint();
    let read = issuer.access_token().sid("sid-1").scope("read").client_id("third-party").mint();

    // Weaker token after the stronger one: it must not borrow the cached answer.
    let response = bearer(&http, format!("{base}/admin"), &admin).await;
    assert_eq!(response.status(), 200);
    let response = bearer(&http, format!("{base}/admin"), &read).await;
    assert_eq!(response.status(), 403, "the read-only token passed on the admin token's answer");
    assert_eq!(issuer.request_count(Endpoint::Introspect), 2, "one call per token");
    // Each token's own answer is still reused within the window.
    assert_eq!(bearer(&http, format!("{base}/admin"), &admin).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/admin"), &read).await.status(), 403);
    assert_eq!(issuer.request_count(Endpoint::Introspect), 2);

    // Weaker token first: its answer must not be what the stronger token is judged on.
    let admin2 = issuer.access_token().sid("sid-2").scope("admin").mint();
    let read2 = issuer.access_token().sid("sid-2").scope("read").mint();
    assert_eq!(bearer(&http, format!("{base}/admin"), &read2).await.status(), 403);
    let response = bearer(&http, format!("{base}/admin"), &admin2).await;
    assert_eq!(response.status(), 200, "the admin token was judged on the read-only token's answer");
    let body: Value = response.json().await?;
    assert_eq!(body["scopes"], json!(["admin"]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_in_flight_for_one_token_is_never_joined_by_another_token_of_its_sid() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = introspection_app(&issuer).await;
    let http = reqwest::Client::new();
    // The issuer holds each call long enough for the second request to arrive
    // while the first is still in flight.
    issuer.set_endpoint_failure(Endpoint::Introspect, Failure::Slow(Duration::from_millis(800)));

    for (first_scope, second_scope) in [("admin", "read"), ("read", "admin")] {
        issuer.reset_counts();
        let sid = format!("sid-{first_scope}-first");
        let first = issuer.access_token().sid(&sid).scope(first_scope).client_id(format!("{first_scope}-app")).mint();
        let second =
            issuer.access_token().sid(&sid).scope(second_scope).client_id(format!("{second_scope}-app")).mint();
        let in_flight = tokio::spawn(bearer_owned(http.clone(), format!("{base}/admin-fresh"), first));
        wait_for_calls(&issuer, Endpoint::Introspect, 1).await;
        let response = bearer(&http, format!("{base}/admin-fresh"), &second).await;
        let first = in_flight.await?;
        let expected = |scope: &str| if scope == "admin" { 200 } else { 403 };
        assert_eq!(first.status().as_u16(), expected(first_scope), "{first_scope} token, in flight first");
        assert_eq!(
            response.status().as_u16(),
            expected(second_scope),
            "{second_scope} token joined the {first_scope} token's call"
        );
        if response.status() == 200 {
            let body: Value = response.json().await?;
            assert_eq!(body["client_id"], json!(format!("{second_scope}-app")));
        }
        assert_eq!(issuer.request_count(Endpoint::Introspect), 2, "one call per token");
    }
    Ok(())
}

// ------------------------------------------------- mixed Stytch cookies

#[tokio::test]
async fn revoked_jwt_next_to_another_users_session_token_is_refused() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let victim = issuer.create_session("user-victim", vec![DevFactor::password()]);
    let attacker = issuer.create_session("user-attacker", vec![DevFactor::password()]);
    assert!(issuer.revoke_session(&victim.session_id));

    let mixed = format!("{JWT_COOKIE}={}; {TOKEN_COOKIE}={}", victim.session_jwt, attacker.session_token);
    let response = with_cookies(&http, format!("{base}/transfer"), &mixed).await;
    assert_eq!(response.status(), 401, "a revoked JWT passed next to another session's token");
    assert!(challenge(&response).contains("invalid_token"), "{}", challenge(&response));
    assert_no_tokens_written(response.headers());

    // The revocation is learned: the revoked JWT is refused on local routes too, and
    // never served as the other user.
    assert_eq!(bearer(&http, format!("{base}/me"), &victim.session_jwt).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/recent"), &victim.session_jwt).await.status(), 401);
    // The other user's session is not affected.
    let own = format!("{JWT_COOKIE}={}; {TOKEN_COOKIE}={}", attacker.session_jwt, attacker.session_token);
    let response = with_cookies(&http, format!("{base}/transfer"), &own).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["sub"], json!("user-attacker"));
    Ok(())
}

#[tokio::test]
async fn live_jwt_next_to_a_planted_session_token_is_not_deny_listed() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let live = issuer.create_session("user-live", vec![DevFactor::password()]);
    // Well-shaped (44 base64url characters) but no session of this issuer.
    let planted = "A".repeat(44);

    let mixed = format!("{JWT_COOKIE}={}; {TOKEN_COOKIE}={planted}", live.session_jwt);
    let response = with_cookies(&http, format!("{base}/transfer"), &mixed).await;
    // Served as its own session: the JWT produced the local session, so the JWT is
    // what is confirmed, and the renewed cookies are that session's own tokens.
    assert_eq!(response.status(), 200);
    let written = set_cookies(response.headers());
    let token = written.iter().find(|c| c.name() == TOKEN_COOKIE).map(|c| c.value().to_owned());
    assert_eq!(token.as_deref(), Some(live.session_token.as_str()), "{written:?}");
    let body: Value = response.json().await?;
    assert_eq!(body["sub"], json!("user-live"));
    assert_eq!(body["session_id"], json!(live.session_id));

    // The live session was not deny-listed.
    assert_eq!(bearer(&http, format!("{base}/me"), &live.session_jwt).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &live.session_jwt).await.status(), 200);
    let token_only = format!("{TOKEN_COOKIE}={}", live.session_token);
    assert_eq!(with_cookies(&http, format!("{base}/me"), &token_only).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn stytch_answers_are_still_shared_by_every_token_of_the_session() -> TestResult {
    // Stytch confirms whole sessions: another JWT of the same session (and the
    // session's cookies) reuse the answer within the window, without a second call.
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-shared", vec![DevFactor::password()]);
    let other_jwt = issuer.stytch_session().session_id(&session.session_id).subject(&session.user_id).mint();
    assert_ne!(other_jwt, session.session_jwt);

    assert_eq!(bearer(&http, format!("{base}/recent"), &session.session_jwt).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);
    assert_eq!(bearer(&http, format!("{base}/recent"), &other_jwt).await.status(), 200);
    let cookie = format!("{JWT_COOKIE}={other_jwt}; {TOKEN_COOKIE}={}", session.session_token);
    assert_eq!(with_cookies(&http, format!("{base}/recent"), &cookie).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1, "one call per session per window");
    Ok(())
}

/// An authority that answers about a session of its own choosing, with new tokens.
struct OtherSession {
    subject: &'static str,
    session_id: &'static str,
}

impl Authority for OtherSession {
    fn authenticate<'a>(&'a self, _credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
        Box::pin(async move {
            let session = Session::builder(self.subject, "https://other.example").session_id(self.session_id).build();
            let renewed =
                RenewedTokens::new().with_session_jwt("other.session.jwt").with_session_token("other-session-token");
            Ok(Confirmation::new(session).with_renewed(renewed))
        })
    }
    fn confirms_whole_session(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn an_answer_about_another_session_is_refused_without_side_effects() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-asked", vec![DevFactor::password()]);
    let cookie = format!("{JWT_COOKIE}={}; {TOKEN_COOKIE}={}", session.session_jwt, session.session_token);
    let answers = [
        // Another user.
        OtherSession { subject: "user-other", session_id: "session-other" },
        // The same user, another session.
        OtherSession { subject: "user-asked", session_id: "session-other" },
    ];
    for authority in answers {
        let layer = SessionLayer::stytch(&project_with_secret(&issuer)).with_authority(authority).build().await?;
        let base = serve(routes(layer)).await;
        for path in ["/transfer", "/recent", "/lenient"] {
            let response = with_cookies(&http, format!("{base}{path}"), &cookie).await;
            assert_eq!(response.status(), 401, "{path}");
            assert!(challenge(&response).contains("invalid_token"), "{}", challenge(&response));
            assert_eq!(response.headers().get_all(SET_COOKIE).iter().count(), 0, "{path}: cookies were written");
        }
        // Nothing was deny-listed.
        assert_eq!(with_cookies(&http, format!("{base}/me"), &cookie).await.status(), 200);
    }
    Ok(())
}

// ------------------------------------------------- credential errors are 401

/// A stand-in introspection endpoint answering `body` to every request.
async fn introspection_answering(body: Value) -> String {
    let answer = move || {
        let body = body.clone();
        async move { Json(body) }
    };
    serve(Router::new().route("/introspect", post(answer))).await
}

async fn app_introspecting_at(issuer: &DevIssuer, url: &str, audience: Option<&str>) -> TestResultOf<Router> {
    let mut authority = IntrospectionAuthority::new(url, "client", "secret")?
        .with_issuer(issuer.issuer())
        .with_timeout(Duration::from_millis(500));
    if let Some(audience) = audience {
        authority = authority.with_audience(audience);
    }
    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_authority(authority).build().await?;
    Ok(routes(layer))
}

#[tokio::test]
async fn credential_errors_in_the_issuer_answer_are_401_on_fresh_routes() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = reqwest::Client::new();
    let expired = introspection_answering(json!({
        "active": true,
        "sub": DEFAULT_SUBJECT,
        "exp": unix_now() - 600,
    }))
    .await;
    let other_audience = introspection_answering(json!({
        "active": true,
        "sub": DEFAULT_SUBJECT,
        "aud": "https://payments.example",
    }))
    .await;
    let other_issuer = introspection_answering(json!({
        "active": true,
        "sub": DEFAULT_SUBJECT,
        "iss": "https://elsewhere.example",
    }))
    .await;
    let cases = [
        (format!("{expired}/introspect"), None, AuthErrorKind::Expired),
        (format!("{other_issuer}/introspect"), None, AuthErrorKind::WrongIssuer),
        (format!("{other_audience}/introspect"), Some(DEFAULT_AUDIENCE), AuthErrorKind::WrongAudience),
    ];
    for (url, audience, kind) in cases {
        let app = app_introspecting_at(&issuer, &url, audience).await?;
        let base = serve(app.clone()).await;
        let jwt = issuer.access_token().mint();
        assert_eq!(bearer(&http, format!("{base}/me"), &jwt).await.status(), 200, "locally valid");
        for path in ["/transfer", "/lenient"] {
            let response = bearer(&http, format!("{base}{path}"), &jwt).await;
            assert_eq!(response.status(), 401, "{kind:?} on {path}");
            assert!(challenge(&response).contains("error=\"invalid_token\""), "{}", challenge(&response));
            let response = oneshot(app.clone(), path, &jwt).await;
            assert_eq!(error_kind(&response), Some(kind), "{path}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn introspection_responses_on_fresh_routes() -> TestResult {
    // What a fresh route answers for each kind of introspection response: faults of
    // the endpoint are 503 (and a fail-open route serves the local session); a claim
    // of the answer that is wrong is the credential's fault: 401, fail-open or not.
    let issuer = DevIssuer::start().await?;
    let target = issuer.introspection_url();
    let fake = serve(
        Router::new()
            .route(
                "/redirect",
                post(move || {
                    let target = target.clone();
                    async move { (http::StatusCode::FOUND, [(http::header::LOCATION, target)]) }
                }),
            )
            .route("/string-active", post(|| async { Json(json!({"active": "true", "sub": DEFAULT_SUBJECT})) }))
            .route("/no-active", post(|| async { Json(json!({"sub": DEFAULT_SUBJECT})) }))
            .route("/huge", post(|| async { "x".repeat(2 * 1024 * 1024) }))
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Json(json!({"active": true, "sub": DEFAULT_SUBJECT}))
                }),
            )
            .route("/iss-number", post(|| async { Json(json!({"active": true, "sub": DEFAULT_SUBJECT, "iss": 5})) }))
            // Since the layer's audience rules apply to introspection answers, one
            // without `aud` is the credential's fault (401), not the issuer's.
            .route("/no-aud", post(|| async { Json(json!({"active": true, "sub": DEFAULT_SUBJECT})) }))
            .route(
                "/ok",
                post(|| async { Json(json!({"active": true, "sub": DEFAULT_SUBJECT, "aud": DEFAULT_AUDIENCE})) }),
            ),
    )
    .await;
    let http = reqwest::Client::new();
    // (path, fresh, fresh + fail_open)
    let cases = [
        ("redirect", 503, 200),
        ("string-active", 503, 200),
        ("no-active", 503, 200),
        ("huge", 503, 200),
        ("slow", 503, 200),
        ("iss-number", 401, 401),
        ("no-aud", 401, 401),
        ("ok", 200, 200),
    ];
    for (path, fresh_want, lenient_want) in cases {
        let base = serve(app_introspecting_at(&issuer, &format!("{fake}/{path}"), None).await?).await;
        let jwt = issuer.access_token().mint();
        let fresh = bearer(&http, format!("{base}/transfer"), &jwt).await.status();
        let lenient = bearer(&http, format!("{base}/lenient"), &jwt).await.status();
        assert_eq!((fresh.as_u16(), lenient.as_u16()), (fresh_want, lenient_want), "{path}");
    }
    Ok(())
}

/// A confirmation's renewed session JWT is cached only for a client that receives
/// it: a bearer client never sends it, so caching it would only push out sessions
/// that are in use. A cookie client gets it as a cookie, and its next request with
/// it is a cache hit.
#[cfg(feature = "__bench")]
#[tokio::test]
async fn renewed_jwts_are_cached_only_for_clients_that_receive_them() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let layer = SessionLayer::stytch(&project_with_secret(&issuer)).build().await?;
    let base = serve(routes(layer.clone())).await;
    let http = reqwest::Client::new();
    let entries = || tower_stepup::__bench::cache_stats(&layer).map(|(entries, _)| entries);

    let api = issuer.create_session("user-bearer", vec![DevFactor::password()]);
    // The dev issuer's JWTs are deterministic to the second: renewals one second
    // later are other tokens (not a wait for an outcome).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_eq!(bearer(&http, format!("{base}/transfer"), &api.session_jwt).await.status(), 200);
    }
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 3);
    assert_eq!(entries(), Some(1), "only the JWT the bearer client sends is cached");

    let browser = issuer.create_session("user-browser", vec![DevFactor::password()]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let transfer = with_cookies(&http, format!("{base}/transfer"), &crate::common::cookies(&browser)).await;
    assert_eq!(transfer.status(), 200);
    let renewed = set_cookies(transfer.headers())
        .into_iter()
        .find(|cookie| cookie.name() == JWT_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .ok_or("no renewed JWT cookie")?;
    assert!(renewed != browser.session_jwt, "the issuer renewed the JWT");
    assert_eq!(entries(), Some(3), "the browser's JWT and its renewed one");
    let me = with_cookies(&http, format!("{base}/me"), &format!("{JWT_COOKIE}={renewed}")).await;
    assert_eq!(me.status(), 200);
    assert_eq!(entries(), Some(3), "the renewed JWT was a cache hit");
    Ok(())
}
