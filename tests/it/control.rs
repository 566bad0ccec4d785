//! Issue 10 through [`SessionControl`]: step-up completion (the app finished a
//! TOTP step-up at the issuer; one call writes the new cookies and teaches the
//! layer), cookie modes, and "sign out other devices", over HTTP against the dev
//! issuer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::HeaderMap;
use serde_json::{json, Value};
use tower_stepup::{
    Authority, AuthorityCredential, AuthorityFuture, ConfigError, CookieAttributes, CookieMode, Guard, GuardConfig,
    RenewedTokens, Requirement, RevokeFuture, Session, SessionControl, SessionLayer, SessionLayerBuilder,
    SessionsFuture, SteppedUp, StytchAuthority,
};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, DevSession, Endpoint, Failure, DEV_TOTP_CODE};

use crate::common::{
    b2b_project_with_secret, bearer, client, cookies, info, project, project_with_secret, serve, set_cookies,
    TestResult, JWT_COOKIE, TOKEN_COOKIE,
};

/// What the app's handlers need to call the issuer themselves.
#[derive(Clone)]
struct Issuer {
    base: String,
    project_id: String,
    secret: String,
}

/// The value of cookie `name` in a request's `Cookie` header.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let text = headers.get(COOKIE)?.to_str().ok()?;
    cookie::Cookie::split_parse(text).flatten().find(|c| c.name() == name).map(|c| c.value().to_owned())
}

/// The request's session token: the `stytch_session` cookie, else the bearer token.
fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, TOKEN_COOKIE).or_else(|| {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        value.strip_prefix("Bearer ").map(str::to_owned)
    })
}

fn refusal(error: &tower_stepup::AuthError) -> (StatusCode, Json<Value>) {
    let status = if error.kind().is_server_fault() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::FORBIDDEN };
    (status, Json(json!({ "kind": format!("{:?}", error.kind()) })))
}

/// `POST /step-up {"code": …}`: what an app does. Stytch's `totps/authenticate`
/// with the session's own token, then one call to complete the step-up. Bearer
/// clients get their new tokens in the body.
async fn step_up(
    State(issuer): State<Issuer>,
    control: SessionControl,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(SteppedUp, Json<Value>), (StatusCode, Json<Value>)> {
    let token = session_token(&headers).ok_or((StatusCode::BAD_REQUEST, Json(json!({}))))?;
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/totps/authenticate", issuer.base))
        .basic_auth(&issuer.project_id, Some(&issuer.secret))
        .json(&json!({
            "user_id": control.session().subject(),
            "totp_code": body["code"],
            "session_token": token,
        }))
        .send()
        .await
        .map_err(|_| (StatusCode::BAD_GATEWAY, Json(json!({}))))?;
    if !answer.status().is_success() {
        return Err((StatusCode::UNAUTHORIZED, Json(json!({ "issuer": answer.status().as_u16() }))));
    }
    let stytch: Value = answer.json().await.map_err(|_| (StatusCode::BAD_GATEWAY, Json(json!({}))))?;
    let tokens = RenewedTokens::new()
        .with_session_jwt(stytch["session_jwt"].as_str().unwrap_or_default())
        .with_session_token(stytch["session_token"].as_str().unwrap_or_default());
    let stepped_up = control.complete_step_up(tokens).await.map_err(|error| refusal(&error))?;
    let handed_back = stepped_up.bearer_tokens().map(|t| json!({ "session_jwt": t.session_jwt() }));
    Ok((stepped_up, Json(json!({ "bearer": handed_back }))))
}

/// `POST /adopt {"session_jwt", "session_token"}`: a careless app that completes a
/// step-up with whatever tokens the client sends: what the library must refuse.
async fn adopt(
    control: SessionControl,
    Json(body): Json<Value>,
) -> Result<(SteppedUp, StatusCode), (StatusCode, Json<Value>)> {
    let mut tokens = RenewedTokens::new();
    if let Some(jwt) = body["session_jwt"].as_str() {
        tokens = tokens.with_session_jwt(jwt);
    }
    if let Some(token) = body["session_token"].as_str() {
        tokens = tokens.with_session_token(token);
    }
    let stepped_up = control.complete_step_up(tokens).await.map_err(|error| refusal(&error))?;
    Ok((stepped_up, StatusCode::OK))
}

async fn list(control: SessionControl) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let sessions = control.sessions().await.map_err(|error| refusal(&error))?;
    let ids: Vec<_> = sessions.iter().map(|s| s.session_id().unwrap_or_default().to_owned()).collect();
    Ok(Json(json!({ "ids": ids, "current": control.session().session_id() })))
}

async fn revoke_one(control: SessionControl, Json(body): Json<Value>) -> Result<StatusCode, (StatusCode, Json<Value>)> {
    let id = body["id"].as_str().unwrap_or_default();
    control.revoke_session(id).await.map_err(|error| refusal(&error))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_others(control: SessionControl) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let ended = control.revoke_other_sessions().await.map_err(|error| refusal(&error))?;
    Ok(Json(json!({ "ended": ended })))
}

/// `/me`, `/mfa` (acr `mfa`, local), `/mfa-fresh` (acr `mfa`, confirmed within an
/// hour), `/step-up`, `/adopt`, `/sessions` and the revocation routes behind
/// `builder`'s layer.
async fn app(issuer: &DevIssuer, builder: SessionLayerBuilder) -> String {
    let layer =
        builder.with_guard_config(GuardConfig::default().with_acr_levels(["pwd", "mfa"])).build().await.expect("layer");
    let mfa = Requirement::acr_at_least("mfa");
    let state = Issuer {
        base: issuer.base_url(),
        project_id: issuer.project_id().to_owned(),
        secret: issuer.secret().to_owned(),
    };
    let routes = Router::new()
        .route("/me", get(info))
        .route("/mfa", get(info).route_layer(Guard::new(mfa.clone())))
        .route("/mfa-fresh", get(info).route_layer(Guard::new(mfa).fresh_within(std::time::Duration::from_secs(3600))))
        .route("/step-up", post(step_up))
        .route("/adopt", post(adopt))
        .route("/sessions", get(list))
        .route("/sessions/revoke", post(revoke_one))
        .route("/sessions/others/revoke", post(revoke_others))
        .with_state(state);
    serve(routes.layer(layer)).await
}

/// A browser's cookie jar after applying the response's `Set-Cookie` headers to
/// `jar` (the `Cookie` header it then sends).
fn apply(jar: &str, response: &reqwest::Response) -> String {
    let mut cookies: Vec<(String, String)> = cookie::Cookie::split_parse(jar.to_owned())
        .flatten()
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect();
    for set in set_cookies(response.headers()) {
        cookies.retain(|(name, _)| name != set.name());
        if !set.value().is_empty() {
            cookies.push((set.name().to_owned(), set.value().to_owned()));
        }
    }
    cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
}

async fn get_with(http: &reqwest::Client, url: String, jar: &str) -> reqwest::Response {
    http.get(url).header(COOKIE, jar).send().await.expect("request")
}

async fn post_json(http: &reqwest::Client, url: String, jar: &str, body: &Value) -> reqwest::Response {
    http.post(url).header(COOKIE, jar).json(body).send().await.expect("request")
}

async fn post_json_bearer(http: &reqwest::Client, url: String, token: &str, body: &Value) -> reqwest::Response {
    http.post(url).bearer_auth(token).json(body).send().await.expect("request")
}

async fn kind(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap_or_default();
    body["kind"].as_str().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------- step-up completion

#[tokio::test]
async fn a_browser_steps_up_and_its_new_cookie_jar_passes_mfa() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(&issuer, SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let http = client();
    let session = issuer.create_session("user-step-up", vec![DevFactor::password()]);
    let jar = cookies(&session);

    // Before: one factor kind, sent to step up; the fresh route asked the issuer
    // and was told the same (an answer it would otherwise reuse for an hour).
    assert_eq!(get_with(&http, format!("{base}/mfa"), &jar).await.status(), 401);
    assert_eq!(get_with(&http, format!("{base}/mfa-fresh"), &jar).await.status(), 401);

    // A wrong code: the issuer refuses, nothing is written.
    let wrong = post_json(&http, format!("{base}/step-up"), &jar, &json!({ "code": "123456" })).await;
    assert_eq!(wrong.status(), 401);
    assert!(set_cookies(wrong.headers()).is_empty());

    let done = post_json(&http, format!("{base}/step-up"), &jar, &json!({ "code": DEV_TOTP_CODE })).await;
    assert_eq!(done.status(), 200);
    let written = set_cookies(done.headers());
    assert_eq!(written.len(), 2, "{written:?}");
    for cookie in &written {
        assert!([JWT_COOKIE, TOKEN_COOKIE].contains(&cookie.name()), "{cookie}");
        assert_eq!(cookie.http_only(), Some(true), "default mode: backend-owned, {cookie}");
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.path(), Some("/"));
        assert!(cookie.max_age().is_some_and(|age| age.whole_seconds() > 300), "the session's lifetime: {cookie}");
    }
    let new_jar = apply(&jar, &done);
    let body: Value = done.json().await?;
    assert_eq!(body["bearer"], Value::Null, "a cookie client's tokens stay in its cookies");
    assert_ne!(new_jar, jar);

    // After: the very next request with the new JWT is a cache hit (no issuer
    // call) and passes; the fresh route asks again instead of reusing the answer
    // from before the step-up.
    let calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    let mfa = get_with(&http, format!("{base}/mfa"), &new_jar).await;
    assert_eq!(mfa.status(), 200);
    let seen: Value = mfa.json().await?;
    assert_eq!(seen["session_id"], json!(session.session_id));
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), calls, "learnt, not asked about");
    assert_eq!(get_with(&http, format!("{base}/mfa-fresh"), &new_jar).await.status(), 200);
    // The old JWT still names the session as it was.
    assert_eq!(bearer(&http, format!("{base}/mfa"), &session.session_jwt).await.status(), 401);
    Ok(())
}

#[tokio::test]
async fn a_bearer_client_gets_its_tokens_back_and_no_cookies() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(&issuer, SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let http = client();
    let session = issuer.create_session("user-bearer-step-up", vec![DevFactor::password()]);

    let done =
        post_json_bearer(&http, format!("{base}/step-up"), &session.session_token, &json!({ "code": DEV_TOTP_CODE }))
            .await;
    assert_eq!(done.status(), 200);
    assert_eq!(done.headers().get_all(SET_COOKIE).iter().count(), 0, "bearer clients never get cookies");
    let body: Value = done.json().await?;
    let jwt = body["bearer"]["session_jwt"].as_str().ok_or("tokens handed back")?;
    assert_eq!(bearer(&http, format!("{base}/mfa"), jwt).await.status(), 200);
    // The session token's cached answer was about the session before the step-up.
    assert_eq!(bearer(&http, format!("{base}/mfa"), &session.session_token).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn step_up_tokens_of_another_user_or_session_are_refused_and_nothing_is_written() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(&issuer, SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let http = client();
    let victim = issuer.create_session("user-victim", vec![DevFactor::password()]);
    let jar = cookies(&victim);
    // The attacker stepped up their own account, and holds a second session of
    // the victim's user too (e.g. an old device).
    let attacker = issuer.create_session("user-attacker", vec![DevFactor::password(), DevFactor::totp()]);
    let sibling = issuer.create_session("user-victim", vec![DevFactor::password(), DevFactor::totp()]);
    let stepped = issuer.add_factor(&victim.session_token, DevFactor::totp()).ok_or("step-up")?;
    let foreign_issuer = DevIssuer::start().await?;
    let forged = foreign_issuer.stytch_session().subject(&victim.user_id).session_id(&victim.session_id).mint();

    for (case, body, expected) in [
        (
            "another user's tokens",
            json!({ "session_jwt": attacker.session_jwt, "session_token": attacker.session_token }),
            "InvalidClaim",
        ),
        ("another user's JWT alone", json!({ "session_jwt": attacker.session_jwt }), "InvalidClaim"),
        ("another user's session token alone", json!({ "session_token": attacker.session_token }), "InvalidClaim"),
        ("another session of the same user", json!({ "session_jwt": sibling.session_jwt }), "InvalidClaim"),
        (
            "the right JWT with another session's token",
            json!({ "session_jwt": stepped.session_jwt, "session_token": sibling.session_token }),
            "InvalidClaim",
        ),
        ("a JWT signed by someone else", json!({ "session_jwt": forged }), "UnknownKey"),
        ("garbage", json!({ "session_jwt": "a.b.c" }), "Malformed"),
        ("nothing", json!({}), "MissingClaim"),
    ] {
        let out = post_json(&http, format!("{base}/adopt"), &jar, &body).await;
        assert_eq!(out.status(), 403, "{case}");
        assert!(set_cookies(out.headers()).is_empty(), "{case}: no cookies");
        let seen = kind(out).await;
        assert!(seen == expected || (expected == "UnknownKey" && seen == "KeySetUnavailable"), "{case}: {seen}");
    }
    // Nothing was learnt: the victim's own session is still one factor kind.
    assert_eq!(get_with(&http, format!("{base}/mfa"), &jar).await.status(), 401);

    // The session's own stepped-up tokens are taken.
    let body = json!({ "session_jwt": stepped.session_jwt, "session_token": stepped.session_token });
    let out = post_json(&http, format!("{base}/adopt"), &jar, &body).await;
    assert_eq!(out.status(), 200);
    assert_eq!(set_cookies(out.headers()).len(), 2);

    // Tokens of a session that has ended are refused too.
    assert!(issuer.revoke_session(&victim.session_id));
    let out = post_json_bearer(
        &http,
        format!("{base}/adopt"),
        &victim.session_jwt,
        &json!({ "session_token": victim.session_token }),
    )
    .await;
    assert_eq!(out.status(), 403);
    assert_eq!(kind(out).await, "SessionRevoked");
    Ok(())
}

#[tokio::test]
async fn without_an_authority_only_the_verified_jwt_is_written() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(&issuer, SessionLayer::stytch(&project(&issuer))).await;
    let http = client();
    let session = issuer.create_session("user-no-authority-step-up", vec![DevFactor::password()]);
    let jar = cookies(&session);
    let stepped = issuer.add_factor(&session.session_token, DevFactor::totp()).ok_or("step-up")?;

    let body = json!({ "session_jwt": stepped.session_jwt, "session_token": stepped.session_token });
    let out = post_json(&http, format!("{base}/adopt"), &jar, &body).await;
    assert_eq!(out.status(), 200);
    let written = set_cookies(out.headers());
    let names: Vec<&str> = written.iter().map(cookie::Cookie::name).collect();
    assert_eq!(names, [JWT_COOKIE], "an unchecked token is not written");
    assert_eq!(get_with(&http, format!("{base}/mfa"), &apply(&jar, &out)).await.status(), 200);
    Ok(())
}

// ---------------------------------------------------------------- cookie modes

#[tokio::test]
async fn frontend_sdk_mode_writes_what_the_sdk_writes_everywhere() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let attributes = CookieAttributes::new(CookieMode::FrontendSdk).with_domain("example.test");
    let base =
        app(&issuer, SessionLayer::stytch(&project_with_secret(&issuer)).with_cookie_attributes(attributes)).await;
    let http = client();
    let session = issuer.create_session("user-sdk", vec![DevFactor::password()]);
    let jar = cookies(&session);

    let done = post_json(&http, format!("{base}/step-up"), &jar, &json!({ "code": DEV_TOTP_CODE })).await;
    assert_eq!(done.status(), 200);
    // A fresh route renews the session: the same attributes.
    let new_jar = apply(&jar, &done);
    let renewed = get_with(&http, format!("{base}/mfa-fresh"), &new_jar).await;
    assert_eq!(renewed.status(), 200);
    for response in [&done, &renewed] {
        let written = set_cookies(response.headers());
        assert_eq!(written.len(), 2, "{written:?}");
        for cookie in &written {
            // The SDK's own: Path=/, SameSite=Lax, Secure, Max-Age, Domain (with
            // `availableToSubdomains`), never HttpOnly (it reads them itself).
            assert_eq!(cookie.http_only(), None, "{cookie}");
            assert_eq!(cookie.domain(), Some("example.test"), "{cookie}");
            assert_eq!(cookie.path(), Some("/"), "{cookie}");
            assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{cookie}");
            assert_eq!(cookie.secure(), Some(true), "{cookie}");
            assert!(cookie.max_age().is_some(), "{cookie}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn cookie_attributes_that_could_smuggle_others_stop_the_build() {
    let issuer = DevIssuer::start().await.expect("issuer");
    for attributes in [
        CookieAttributes::default().with_domain("example.test; HttpOnly=false"),
        CookieAttributes::default().with_domain("exa mple.test"),
        CookieAttributes::default().with_path("/a; Domain=evil.test"),
        CookieAttributes::default().with_path("app"),
    ] {
        let built =
            SessionLayer::stytch(&project(&issuer)).with_lazy_start().with_cookie_attributes(attributes).build().await;
        assert!(matches!(built, Err(ConfigError::Invalid { .. })), "{built:?}");
    }
}

// ---------------------------------------------------------------- other devices

async fn ids(response: reqwest::Response) -> TestResultOfIds {
    let body: Value = response.json().await?;
    let mut ids: Vec<String> =
        body["ids"].as_array().ok_or("ids")?.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
    ids.sort();
    Ok(ids)
}

type TestResultOfIds = Result<Vec<String>, Box<dyn std::error::Error>>;

fn sorted(sessions: &[&DevSession]) -> Vec<String> {
    let mut ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn sign_out_other_devices() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(&issuer, SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let http = client();
    let current = issuer.create_session("user-devices", vec![DevFactor::password()]);
    let laptop = issuer.create_session("user-devices", vec![DevFactor::password()]);
    let phone = issuer.create_session("user-devices", vec![DevFactor::password()]);
    let stranger = issuer.create_session("user-stranger", vec![DevFactor::password()]);
    let jar = cookies(&current);
    for session in [&laptop, &phone, &stranger] {
        assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 200);
    }

    let listed = get_with(&http, format!("{base}/sessions"), &jar).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(ids(listed).await?, sorted(&[&current, &laptop, &phone]), "the user's own sessions only");
    assert_eq!(issuer.request_count(Endpoint::SessionsGet), 1);

    // Another user's session id is not this user's to end: nothing is revoked.
    let out = post_json(&http, format!("{base}/sessions/revoke"), &jar, &json!({ "id": stranger.session_id })).await;
    assert_eq!(out.status(), 403);
    assert_eq!(kind(out).await, "UnknownSession");
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 0);
    assert_eq!(bearer(&http, format!("{base}/me"), &stranger.session_jwt).await.status(), 200);

    // One device: refused on a local route from the next request, no issuer call.
    let out = post_json(&http, format!("{base}/sessions/revoke"), &jar, &json!({ "id": laptop.session_id })).await;
    assert_eq!(out.status(), 204);
    let calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    assert_eq!(bearer(&http, format!("{base}/me"), &laptop.session_jwt).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), calls);
    assert!(!issuer.revoke_session(&laptop.session_id), "gone at the issuer");
    let listed = get_with(&http, format!("{base}/sessions"), &jar).await;
    assert_eq!(ids(listed).await?, sorted(&[&current, &phone]));

    // Every other device: the current session stays.
    let out = post_json(&http, format!("{base}/sessions/others/revoke"), &jar, &json!({})).await;
    assert_eq!(out.status(), 200);
    assert_eq!(out.json::<Value>().await?["ended"], 1);
    assert_eq!(bearer(&http, format!("{base}/me"), &phone.session_jwt).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &phone.session_token).await.status(), 401);
    assert!(!issuer.revoke_session(&phone.session_id), "gone at the issuer");
    assert_eq!(get_with(&http, format!("{base}/me"), &jar).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/me"), &stranger.session_jwt).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn an_issuer_failing_to_revoke_leaves_the_sessions_refused_here() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(&issuer, SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let http = client();
    let current = issuer.create_session("user-devices-500", vec![DevFactor::password()]);
    let other = issuer.create_session("user-devices-500", vec![DevFactor::password()]);

    issuer.set_endpoint_failure(Endpoint::SessionsRevoke, Failure::Status500);
    let out = post_json(&http, format!("{base}/sessions/others/revoke"), &cookies(&current), &json!({})).await;
    assert_eq!(out.status(), 503);
    assert_eq!(bearer(&http, format!("{base}/me"), &other.session_jwt).await.status(), 401);
    assert!(issuer.revoke_session(&other.session_id), "still alive at the issuer");

    // The issuer cannot list: nothing can be chosen, nothing is revoked.
    issuer.set_endpoint_failure(Endpoint::SessionsGet, Failure::Unavailable);
    let out = post_json(&http, format!("{base}/sessions/others/revoke"), &cookies(&current), &json!({})).await;
    assert_eq!(out.status(), 503);
    assert_eq!(get_with(&http, format!("{base}/me"), &cookies(&current)).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn b2b_lists_the_members_sessions_in_its_organization() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(&issuer, SessionLayer::stytch(&b2b_project_with_secret(&issuer))).await;
    let http = client();
    let current = issuer.create_b2b_session("member-devices", "organization-a", "a", vec![DevFactor::password()]);
    let other = issuer.create_b2b_session("member-devices", "organization-a", "a", vec![DevFactor::password()]);
    let elsewhere = issuer.create_b2b_session("member-devices", "organization-b", "b", vec![DevFactor::password()]);

    let listed = get_with(&http, format!("{base}/sessions"), &cookies(&current)).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(ids(listed).await?, sorted(&[&current, &other]));
    let out =
        post_json(&http, format!("{base}/sessions/revoke"), &cookies(&current), &json!({ "id": elsewhere.session_id }))
            .await;
    assert_eq!(kind(out).await, "UnknownSession");
    // B2B revocation names `member_session_id` (the dev issuer refuses `session_id`).
    let out =
        post_json(&http, format!("{base}/sessions/revoke"), &cookies(&current), &json!({ "id": other.session_id }))
            .await;
    assert_eq!(out.status(), 204);
    assert!(!issuer.revoke_session(&other.session_id));
    assert!(issuer.revoke_session(&elsewhere.session_id), "another organization's session is untouched");
    Ok(())
}

/// Stytch for everything, except a sessions list that also names another user.
struct LyingList {
    stytch: StytchAuthority,
    stranger: Arc<std::sync::Mutex<Option<Session>>>,
}

impl Authority for LyingList {
    fn authenticate<'a>(&'a self, credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
        self.stytch.authenticate(credential)
    }
    fn confirms_whole_session(&self) -> bool {
        true
    }
    fn sessions<'a>(&'a self, session: &'a Session) -> SessionsFuture<'a> {
        Box::pin(async move {
            let mut listed = self.stytch.sessions(session).await?;
            listed.extend(self.stranger.lock().unwrap().clone());
            Ok(listed)
        })
    }
    fn revoke_by_id<'a>(&'a self, session: &'a Session) -> RevokeFuture<'a> {
        self.stytch.revoke_by_id(session)
    }
}

#[tokio::test]
async fn an_issuer_listing_another_users_session_is_not_believed() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let stranger_slot = Arc::new(std::sync::Mutex::new(None));
    let authority =
        LyingList { stytch: StytchAuthority::new(&project_with_secret(&issuer))?, stranger: stranger_slot.clone() };
    let base = app(&issuer, SessionLayer::stytch(&project_with_secret(&issuer)).with_authority(authority)).await;
    let http = client();
    let current = issuer.create_session("user-lied-to", vec![DevFactor::password()]);
    let stranger = issuer.create_session("user-stranger-2", vec![DevFactor::password()]);
    let confirmed = StytchAuthority::new(&project_with_secret(&issuer))?
        .authenticate(AuthorityCredential::Opaque(&stranger.session_token))
        .await?;
    *stranger_slot.lock().unwrap() = Some(confirmed.session);

    let out =
        post_json(&http, format!("{base}/sessions/revoke"), &cookies(&current), &json!({ "id": stranger.session_id }))
            .await;
    assert_eq!(out.status(), 503);
    assert_eq!(kind(out).await, "AuthorityResponse");
    let out = post_json(&http, format!("{base}/sessions/others/revoke"), &cookies(&current), &json!({})).await;
    assert_eq!(out.status(), 503);
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 0);
    assert_eq!(bearer(&http, format!("{base}/me"), &stranger.session_jwt).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn listing_needs_an_authority_that_knows_whole_sessions() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = client();
    let session = issuer.create_session("user-unsupported", vec![DevFactor::password()]);
    // No authority at all.
    let base = app(&issuer, SessionLayer::stytch(&project(&issuer))).await;
    let out = get_with(&http, format!("{base}/sessions"), &cookies(&session)).await;
    assert_eq!(out.status(), 503);
    assert_eq!(kind(out).await, "Unsupported");
    assert_eq!(issuer.request_count(Endpoint::SessionsGet), 0);
    Ok(())
}

#[tokio::test]
async fn the_dev_issuer_lists_like_stytch() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-list", vec![DevFactor::password()]);
    let url = format!("{}/v1/sessions", issuer.base_url());
    let unauthenticated = http.get(format!("{url}?user_id=user-list")).send().await?;
    assert_eq!(unauthenticated.status(), 401);
    let missing = http.get(&url).basic_auth(issuer.project_id(), Some(issuer.secret())).send().await?;
    assert_eq!(missing.status(), 400);
    let listed: Value = http
        .get(format!("{url}?user_id=user-list"))
        .basic_auth(issuer.project_id(), Some(issuer.secret()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["status_code"], 200);
    assert_eq!(listed["sessions"][0]["session_id"], json!(session.session_id));
    assert_eq!(listed["sessions"][0]["user_id"], "user-list");
    assert!(listed["request_id"].is_string());
    let b2b = http
        .get(format!("{}/v1/b2b/sessions?member_id=m", issuer.base_url()))
        .basic_auth(issuer.project_id(), Some(issuer.secret()))
        .send()
        .await?;
    assert_eq!(b2b.status(), 400, "organization_id is required");
    Ok(())
}
