//! Interop with software nobody here wrote: the official Stytch Node SDK (`stytch`,
//! pinned in `tests/interop/package.json`) against the dev issuer in Stytch mode, and
//! our library reading the very same sessions. Each answer the SDK prints is checked
//! field for field, most of them against what our library makes of the same session.
//!
//! Needs Node (20+) and `npm ci` in `tests/interop`; without them these tests fail and
//! say so, they never skip.

mod fixtures;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::header::COOKIE;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tower::ServiceExt as _;
use tower_stepup::{
    AuthErrorKind, Authority as _, AuthorityCredential, Session, SessionLayer, StytchAuthority, StytchProject,
};
use tower_stepup_dev_issuer::{DevAlg, DevFactor, DevIssuer, DevIssuerConfig, DevSession, Endpoint};

use crate::common::{b2b_project_with_secret, project, project_with_secret, TestResult, JWT_COOKIE};

/// Longest wait for one answer of the driver (Node start-up included): a guard against
/// a hung child, not a timing assertion.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

const ORG: &str = "organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931";
const ORG_SLUG: &str = "example-org";

/// `tests/interop`, where the driver and its `node_modules` live.
fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// The Stytch SDK driver (`tests/interop/stytch-driver.mjs`) as a child process, one JSON
/// step per line in, one JSON answer per line out. Killed when dropped.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Driver {
    /// Starts the driver against `issuer` and waits for its `ready` line.
    async fn start(issuer: &DevIssuer) -> Driver {
        let dir = interop_dir();
        assert!(
            dir.join("node_modules").join("stytch").join("package.json").is_file(),
            "the Stytch Node SDK is not installed: run `npm ci` in tests/interop (needs Node 20+)"
        );
        let spawned = Command::new("node")
            .arg(dir.join("stytch-driver.mjs"))
            .arg(issuer.base_url())
            .arg(issuer.project_id())
            .env("STYTCH_SECRET", issuer.secret())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => panic!(
                "cannot run `node` ({error}): install Node 20+ and run `npm ci` in tests/interop for the interop tests"
            ),
        };
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = BufReader::new(child.stdout.take().expect("driver stdout")).lines();
        let mut driver = Driver { child, stdin, stdout };
        let ready = driver.read().await;
        assert_eq!(ready["name"], "ready", "{ready}");
        assert_eq!(ready["answer"]["stytch"], "14.2.0", "the pinned SDK version: {ready}");
        driver
    }

    /// The next answer line; on a dead driver, fails with its stderr.
    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(ANSWER_TIMEOUT, self.stdout.next_line()).await;
        match line {
            Ok(Ok(Some(line))) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver printed {line:?}: {e}"))
            }
            other => {
                let mut stderr = String::new();
                if let Some(mut err) = self.child.stderr.take() {
                    let _ = tokio::time::timeout(Duration::from_secs(5), err.read_to_string(&mut stderr)).await;
                }
                panic!("the Stytch SDK driver gave no answer ({other:?}); its stderr:\n{stderr}")
            }
        }
    }

    /// Runs `client.sessions.<method>(params)` in the SDK; returns the driver's line.
    async fn call(&mut self, client: &str, method: &str, params: Value) -> Value {
        self.step(json!({ "name": method, "client": client, "method": method, "params": params })).await
    }

    async fn step(&mut self, step: Value) -> Value {
        let mut line = step.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.expect("write to the driver");
        self.stdin.flush().await.expect("flush the driver");
        let answer = self.read().await;
        assert_eq!(answer["name"], step["name"], "answers come in order: {answer}");
        answer
    }
}

/// The SDK's answer of a successful call.
#[track_caller]
fn ok(line: &Value) -> &Value {
    assert_eq!(line["ok"], true, "the SDK call failed: {line}");
    &line["answer"]
}

/// The error of a failed call, as the SDK exposes it.
#[track_caller]
fn failed(line: &Value) -> &Value {
    assert_eq!(line["ok"], false, "the SDK call succeeded: {line}");
    &line["error"]
}

/// A `StytchError` with every field of Stytch's error body, as Stytch sends it.
#[track_caller]
fn assert_stytch_error(line: &Value, status: u16, error_type: &str, message: &str) {
    let error = failed(line);
    assert_eq!(error["class"], "StytchError", "{error}");
    assert_eq!(error["status_code"], status, "{error}");
    assert_eq!(error["error_type"], error_type, "{error}");
    assert_eq!(error["error_message"], message, "{error}");
    assert_eq!(error["error_url"], format!("https://stytch.com/docs/api/errors/{status}#{error_type}"), "{error}");
    assert!(error["request_id"].as_str().is_some_and(|id| id.starts_with("request-id-test-")), "{error}");
}

/// A `ClientError` of the SDK's local verification, with its `code`.
#[track_caller]
fn assert_client_error(line: &Value, code: &str) {
    let error = failed(line);
    assert_eq!(error["class"], "ClientError", "{error}");
    assert_eq!(error["code"], code, "{error}");
}

/// The `request_id` and `status_code` every Stytch answer carries.
#[track_caller]
fn assert_stytch_ok(answer: &Value) {
    assert_eq!(answer["status_code"], 200, "{answer}");
    assert!(answer["request_id"].as_str().is_some_and(|id| id.starts_with("request-id-test-")), "{answer}");
}

/// A dev issuer that imitates Stytch strictly (RS256 only).
async fn stytch_issuer() -> DevIssuer {
    DevIssuer::start_with(DevIssuerConfig::default().with_stytch_mode()).await.expect("dev issuer starts")
}

/// Unix seconds of an RFC 3339 time (the SDK writes `…Z` or `….000Z`).
fn secs(text: &Value) -> Value {
    let text = text.as_str().unwrap_or_else(|| panic!("not a timestamp: {text}"));
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    json!(at.unix_timestamp())
}

fn unix(at: Option<SystemTime>) -> Value {
    at.map_or(Value::Null, |at| json!(at.duration_since(SystemTime::UNIX_EPOCH).expect("after the epoch").as_secs()))
}

/// A Stytch session object (remote `session` / `member_session`, or the SDK's local
/// answer) reduced to what a session is: ids, times, factors, roles, custom claims.
fn sdk_view(session: &Value, b2b: bool) -> Value {
    let factors: Vec<Value> = session["authentication_factors"]
        .as_array()
        .unwrap_or_else(|| panic!("no factors: {session}"))
        .iter()
        .map(|f| {
            json!({
                "type": f["type"],
                "delivery_method": f["delivery_method"],
                "last_authenticated_at": secs(&f["last_authenticated_at"]),
            })
        })
        .collect();
    let (id, owner) = if b2b { ("member_session_id", "member_id") } else { ("session_id", "user_id") };
    let mut view = json!({
        "session_id": session[id],
        "user_id": session[owner],
        "started_at": secs(&session["started_at"]),
        "last_accessed_at": secs(&session["last_accessed_at"]),
        "expires_at": secs(&session["expires_at"]),
        "authentication_factors": factors,
        "roles": session["roles"],
        "custom_claims": session["custom_claims"],
    });
    if b2b {
        view["organization_id"] = session["organization_id"].clone();
    }
    view
}

/// What our library makes of a session, in the shape of [`sdk_view`].
fn library_view(session: &Session, b2b: bool) -> Value {
    let factors: Vec<Value> = session
        .factors()
        .iter()
        .map(|f| {
            json!({
                "type": f.kind().as_str(),
                "delivery_method": f.delivery_method(),
                "last_authenticated_at": unix(f.last_authenticated_at()),
            })
        })
        .collect();
    let mut view = json!({
        "session_id": session.session_id(),
        "user_id": session.subject(),
        "started_at": unix(session.started_at()),
        "last_accessed_at": unix(session.last_accessed_at()),
        "expires_at": unix(session.session_expires_at()),
        "authentication_factors": factors,
        "roles": session.roles(),
        "custom_claims": session.raw_claims(),
    });
    if b2b {
        view["organization_id"] = json!(session.organization().map(|o| o.id.clone()));
    }
    view
}

/// Our library's reading of a session JWT, verified locally by a Stytch layer (keys from
/// the issuer's Stytch JWKS path, no secret: no issuer call).
async fn library_reads(stytch: &StytchProject, jwt: &str) -> Result<Session, (http::StatusCode, String)> {
    let layer = SessionLayer::stytch(stytch).build().await.expect("stytch layer");
    let app = Router::new().route("/me", get(capture)).layer(layer);
    let request = http::Request::builder()
        .uri("/me")
        .header(COOKIE, format!("{JWT_COOKIE}={jwt}"))
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status();
    let session = response.extensions().get::<Session>().cloned();
    match session {
        Some(session) if status.is_success() => Ok(session),
        _ => {
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
            Err((status, String::from_utf8_lossy(&body).into_owned()))
        }
    }
}

/// Hands the session the layer made to [`library_reads`], in the response extensions.
async fn capture(session: Session) -> http::Response<Body> {
    let mut response = http::Response::new(Body::empty());
    response.extensions_mut().insert(session);
    response
}

/// The B2B project of `issuer`, verified locally only.
fn b2b_project(issuer: &DevIssuer) -> StytchProject {
    StytchProject::b2b(issuer.project_id()).expect("project id").with_base_url(issuer.base_url())
}

/// A session JWT of `session`, issued `age` ago with `lifetime` (expired when
/// `age > lifetime`), signed like the issuer's own.
fn session_jwt_aged(issuer: &DevIssuer, session: &DevSession, age: Duration, lifetime: Duration) -> String {
    issuer
        .stytch_session()
        .session_id(&session.session_id)
        .subject(&session.user_id)
        .factor(DevFactor::password())
        .issued_at(SystemTime::now() - age)
        .lifetime(lifetime)
        .mint()
}

fn b2b_login(issuer: &DevIssuer, member_id: &str) -> DevSession {
    issuer.create_b2b_session(member_id, ORG, ORG_SLUG, vec![DevFactor::email_otp(), DevFactor::totp()])
}

#[tokio::test]
async fn stytch_sdk_reads_the_stytch_jwks_rs256_only() -> TestResult {
    let issuer = stytch_issuer().await;
    // A key of another algorithm exists (an attacker's or a test's): Stytch would never
    // publish it, and the Stytch JWKS paths do not.
    let es256 = issuer.stytch_session().alg(DevAlg::ES256).mint();
    let mut driver = Driver::start(&issuer).await;
    for client in ["consumer", "b2b"] {
        let line = driver.call(client, "getJWKS", json!({ "project_id": issuer.project_id() })).await;
        let answer = ok(&line);
        assert_stytch_ok(answer);
        let keys = answer["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1, "{answer}");
        assert_eq!(keys[0]["kid"], issuer.current_kid(DevAlg::RS256));
        assert_eq!(keys[0]["alg"], "RS256");
        assert_eq!(keys[0]["kty"], "RSA");
        assert_eq!(keys[0]["use"], "sig");
        // Unknown project: Stytch's 404.
        let line = driver
            .call(client, "getJWKS", json!({ "project_id": "project-test-00000000-0000-0000-0000-000000000000" }))
            .await;
        assert_stytch_error(&line, 404, "project_not_found", "Project could not be found.");
    }
    // The ES256 token fails with the SDK and with our library alike.
    let line = driver.call("consumer", "authenticateJwtLocal", json!({ "session_jwt": es256 })).await;
    assert_client_error(&line, "jwt_invalid");
    let refused = library_reads(&project(&issuer), &es256).await.unwrap_err();
    assert_eq!(refused.0, http::StatusCode::UNAUTHORIZED, "{refused:?}");
    // And the session API does not take it either.
    let line = driver.call("consumer", "authenticate", json!({ "session_jwt": es256 })).await;
    assert_eq!(failed(&line)["status_code"], 401, "{line}");
    Ok(())
}

#[tokio::test]
async fn stytch_sdk_and_our_library_read_the_same_session() -> TestResult {
    let issuer = stytch_issuer().await;
    let login = issuer.create_session("user-test-interop", vec![DevFactor::password(), DevFactor::totp()]);
    let mut driver = Driver::start(&issuer).await;

    let by_token = driver.call("consumer", "authenticate", json!({ "session_token": login.session_token })).await;
    let answer = ok(&by_token);
    assert_stytch_ok(answer);
    assert_eq!(answer["session_token"], login.session_token.as_str());
    assert_eq!(answer["user"]["user_id"], "user-test-interop");
    assert_eq!(answer["session"]["session_id"], login.session_id.as_str());
    let sdk = sdk_view(&answer["session"], false);
    assert_eq!(sdk["authentication_factors"][0]["type"], "password");
    assert_eq!(sdk["authentication_factors"][1]["type"], "totp");
    // The JWT of the answer, read by our library, is the same session, field for field.
    let jwt = answer["session_jwt"].as_str().expect("session_jwt").to_owned();
    let ours = library_reads(&project(&issuer), &jwt).await.expect("our library accepts the SDK's JWT");
    assert_eq!(library_view(&ours, false), sdk);
    // The SDK's local verification of that JWT says the same.
    let local = driver.call("consumer", "authenticateJwtLocal", json!({ "session_jwt": jwt })).await;
    assert_eq!(sdk_view(ok(&local), false), sdk);
    // So does our StytchAuthority, asked with the JWT.
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?;
    let confirmed = authority.authenticate(AuthorityCredential::Jwt(&jwt)).await?;
    let mut confirmed_view = library_view(&confirmed.session, false);
    let by_jwt = driver.call("consumer", "authenticate", json!({ "session_jwt": jwt })).await;
    let remote = sdk_view(&ok(&by_jwt)["session"], false);
    // last_accessed_at moves with every authenticate call; everything else is fixed.
    confirmed_view["last_accessed_at"] = remote["last_accessed_at"].clone();
    assert_eq!(confirmed_view, remote);
    assert_eq!(remote["session_id"], sdk["session_id"]);

    // B2B: the member session, its organization, the member.
    let member = b2b_login(&issuer, "member-test-interop");
    let line = driver.call("b2b", "authenticate", json!({ "session_token": member.session_token })).await;
    let answer = ok(&line);
    assert_stytch_ok(answer);
    assert_eq!(answer["member"]["member_id"], "member-test-interop");
    assert_eq!(answer["organization"]["organization_id"], ORG);
    assert_eq!(answer["organization"]["organization_slug"], ORG_SLUG);
    assert_eq!(answer["member_authenticated"], true);
    let sdk = sdk_view(&answer["member_session"], true);
    assert_eq!(sdk["organization_id"], ORG);
    let jwt = answer["session_jwt"].as_str().expect("session_jwt").to_owned();
    let ours = library_reads(&b2b_project(&issuer), &jwt).await.expect("our library accepts the member JWT");
    assert_eq!(library_view(&ours, true), sdk);
    assert_eq!(ours.organization().and_then(|o| o.slug.as_deref()), Some(ORG_SLUG));
    let local = driver.call("b2b", "authenticateJwtLocal", json!({ "session_jwt": jwt })).await;
    let local = ok(&local);
    assert_eq!(local["organization_slug"], ORG_SLUG);
    assert_eq!(sdk_view(local, true), sdk);
    // A consumer token is no member session, and the other way round.
    let line = driver.call("b2b", "authenticate", json!({ "session_token": login.session_token })).await;
    assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    let line = driver.call("consumer", "authenticate", json!({ "session_token": member.session_token })).await;
    assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    Ok(())
}

#[tokio::test]
async fn stytch_sdk_renews_an_expired_jwt_and_so_does_our_authority() -> TestResult {
    let issuer = stytch_issuer().await;
    let login = issuer.create_session("user-test-renew", vec![DevFactor::password()]);
    let expired = session_jwt_aged(&issuer, &login, Duration::from_secs(600), Duration::from_secs(300));
    let mut driver = Driver::start(&issuer).await;

    let line = driver.call("consumer", "authenticateJwtLocal", json!({ "session_jwt": expired })).await;
    assert_client_error(&line, "jwt_invalid");
    assert!(library_reads(&project(&issuer), &expired).await.is_err(), "expired locally for us too");

    let line = driver.call("consumer", "authenticate", json!({ "session_jwt": expired })).await;
    let answer = ok(&line);
    assert_eq!(answer["session"]["session_id"], login.session_id.as_str());
    let renewed = answer["session_jwt"].as_str().expect("session_jwt").to_owned();
    assert_ne!(renewed, expired);
    let local = driver.call("consumer", "authenticateJwtLocal", json!({ "session_jwt": renewed })).await;
    assert_eq!(ok(&local)["session_id"], login.session_id.as_str());
    let ours = library_reads(&project(&issuer), &renewed).await.expect("the renewed JWT verifies for us");
    assert_eq!(library_view(&ours, false), sdk_view(&answer["session"], false));

    // Our authority renews from the same expired JWT: new tokens, the same session.
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?;
    let confirmed = authority.authenticate(AuthorityCredential::Jwt(&expired)).await?;
    assert_eq!(confirmed.session.session_id(), Some(login.session_id.as_str()));
    let tokens = confirmed.renewed.expect("renewed tokens");
    assert!(tokens.session_jwt().is_some_and(|jwt| jwt != expired));
    assert_eq!(tokens.session_token(), Some(login.session_token.as_str()));

    // Revoked: the expired JWT renews no more, for either.
    assert!(issuer.revoke_session(&login.session_id));
    let line = driver.call("consumer", "authenticate", json!({ "session_jwt": expired })).await;
    assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    let error = authority.authenticate(AuthorityCredential::Jwt(&expired)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::SessionRevoked);
    Ok(())
}

#[tokio::test]
async fn stytch_sdk_authenticate_jwt_prefers_local_then_falls_back() -> TestResult {
    let issuer = stytch_issuer().await;
    let login = issuer.create_session("user-test-local", vec![DevFactor::password()]);
    let mut driver = Driver::start(&issuer).await;
    let remote_calls = || issuer.request_count(Endpoint::SessionsAuthenticate);

    // Fresh: verified locally, no call to the session API, the same JWT back.
    let before = remote_calls();
    let line = driver.call("consumer", "authenticateJwt", json!({ "session_jwt": login.session_jwt })).await;
    let answer = ok(&line);
    assert_eq!(answer["session_jwt"], login.session_jwt.as_str());
    assert_eq!(answer["session"]["session_id"], login.session_id.as_str());
    assert_eq!(remote_calls(), before);

    // Too old for max_token_age_seconds: refused locally, renewed remotely.
    let old = session_jwt_aged(&issuer, &login, Duration::from_secs(120), Duration::from_secs(300));
    let line = driver
        .call("consumer", "authenticateJwtLocal", json!({ "session_jwt": old, "max_token_age_seconds": 60 }))
        .await;
    assert_client_error(&line, "jwt_too_old");
    let line =
        driver.call("consumer", "authenticateJwt", json!({ "session_jwt": old, "max_token_age_seconds": 60 })).await;
    let answer = ok(&line);
    assert_stytch_ok(answer);
    assert_ne!(answer["session_jwt"], old.as_str());
    assert_eq!(remote_calls(), before + 1);
    // Expired: the same fallback.
    let expired = session_jwt_aged(&issuer, &login, Duration::from_secs(600), Duration::from_secs(300));
    let line = driver.call("consumer", "authenticateJwt", json!({ "session_jwt": expired })).await;
    assert_eq!(ok(&line)["session"]["session_id"], login.session_id.as_str());
    assert_eq!(remote_calls(), before + 2);

    // Revoked: a fresh JWT still verifies locally (Stytch documents it: until it
    // expires), but max_token_age_seconds 0 forces the remote check, which refuses.
    assert!(issuer.revoke_session(&login.session_id));
    let line = driver.call("consumer", "authenticateJwtLocal", json!({ "session_jwt": login.session_jwt })).await;
    assert_eq!(ok(&line)["session_id"], login.session_id.as_str());
    let line = driver
        .call("consumer", "authenticateJwt", json!({ "session_jwt": login.session_jwt, "max_token_age_seconds": 0 }))
        .await;
    assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?;
    let error = authority.authenticate(AuthorityCredential::Jwt(&login.session_jwt)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::SessionRevoked);

    // B2B the same way.
    let member = b2b_login(&issuer, "member-test-local");
    let before = remote_calls();
    let line = driver.call("b2b", "authenticateJwt", json!({ "session_jwt": member.session_jwt })).await;
    assert_eq!(ok(&line)["member_session"]["member_session_id"], member.session_id.as_str());
    assert_eq!(remote_calls(), before);
    let line = driver
        .call("b2b", "authenticateJwt", json!({ "session_jwt": member.session_jwt, "max_token_age_seconds": 0 }))
        .await;
    assert_eq!(ok(&line)["member_session"]["member_session_id"], member.session_id.as_str());
    assert_eq!(remote_calls(), before + 1);
    Ok(())
}

#[tokio::test]
async fn stytch_sdk_session_duration_outside_5_to_527040_is_stytchs_400() -> TestResult {
    let issuer = stytch_issuer().await;
    let login = issuer.create_session("user-test-duration", vec![DevFactor::password()]);
    let member = b2b_login(&issuer, "member-test-duration");
    let mut driver = Driver::start(&issuer).await;
    let message = "session_duration_minutes is invalid, should be between 5 to 527040 minutes.";

    for (client, token) in [("consumer", &login.session_token), ("b2b", &member.session_token)] {
        let session_key = if client == "b2b" { "member_session" } else { "session" };
        let line = driver.call(client, "authenticate", json!({ "session_token": token })).await;
        let expires_before = ok(&line)[session_key]["expires_at"].clone();
        // Out of range on either side (0, fractions and strings are left out: what
        // Stytch answers to them is not documented).
        for minutes in [json!(4), json!(-5), json!(527_041)] {
            let line = driver
                .call(client, "authenticate", json!({ "session_token": token, "session_duration_minutes": minutes }))
                .await;
            assert_stytch_error(&line, 400, "invalid_session_duration_minutes", message);
        }
        // Refused requests left the session alone.
        let line = driver.call(client, "authenticate", json!({ "session_token": token })).await;
        assert_eq!(ok(&line)[session_key]["expires_at"], expires_before);
        // The bounds themselves are fine: expires_at = now + minutes.
        for minutes in [5_i64, 527_040] {
            let line = driver
                .call(client, "authenticate", json!({ "session_token": token, "session_duration_minutes": minutes }))
                .await;
            let session = &ok(&line)[session_key];
            let accessed = secs(&session["last_accessed_at"]).as_i64().expect("secs");
            assert_eq!(secs(&session["expires_at"]), json!(accessed + minutes * 60), "{session}");
        }
    }
    // Our authority agrees: the same bounds are its configuration check.
    let too_short =
        StytchAuthority::new(&project_with_secret(&issuer))?.with_session_duration(Duration::from_secs(4 * 60));
    assert!(too_short.check().is_err());
    let longest = StytchAuthority::new(&project_with_secret(&issuer))?
        .with_session_duration(StytchAuthority::MAX_SESSION_DURATION);
    let confirmed = longest.authenticate(AuthorityCredential::Opaque(&login.session_token)).await?;
    let accessed = unix(confirmed.session.last_accessed_at()).as_u64().expect("secs");
    assert_eq!(unix(confirmed.session.session_expires_at()), json!(accessed + 527_040 * 60));
    Ok(())
}

#[tokio::test]
async fn stytch_sdk_custom_claims_merge_as_stytch_documents() -> TestResult {
    let issuer = stytch_issuer().await;
    let login = issuer.create_session("user-test-claims", vec![DevFactor::password()]);
    let mut driver = Driver::start(&issuer).await;
    let token = login.session_token.as_str();
    let claims_after = |line: &Value| ok(line)["session"]["custom_claims"].clone();

    // The guide's example, step by step.
    let line = driver
        .call(
            "consumer",
            "authenticate",
            json!({ "session_token": token, "session_custom_claims": { "a": 1, "b": 2, "d": 4 } }),
        )
        .await;
    assert_eq!(claims_after(&line), json!({ "a": 1, "b": 2, "d": 4 }));
    let patch = json!({ "b": null, "c": 3.5, "e": { "nested1": "val1", "nested2": "val2" } });
    let line = driver
        .call("consumer", "authenticate", json!({ "session_token": token, "session_custom_claims": patch }))
        .await;
    assert_eq!(claims_after(&line), json!({ "a": 1, "c": 3.5, "d": 4, "e": { "nested1": "val1", "nested2": "val2" } }));
    let patch = json!({ "e": { "nested1": null, "nested3": "val3" } });
    let line = driver
        .call("consumer", "authenticate", json!({ "session_token": token, "session_custom_claims": patch }))
        .await;
    let expected = json!({ "a": 1, "c": 3.5, "d": 4, "e": { "nested2": "val2", "nested3": "val3" } });
    assert_eq!(claims_after(&line), expected);

    // The JWT carries them as top-level claims: the SDK and our library read the same.
    let jwt = ok(&line)["session_jwt"].as_str().expect("session_jwt").to_owned();
    let local = driver.call("consumer", "authenticateJwtLocal", json!({ "session_jwt": jwt })).await;
    assert_eq!(ok(&local)["custom_claims"], expected);
    let ours = library_reads(&project(&issuer), &jwt).await.expect("our library reads the JWT");
    assert_eq!(ours.raw_claims(), expected);
    assert_eq!(ours.claim("e"), Some(json!({ "nested2": "val2", "nested3": "val3" })));

    // Refused: a reserved claim, Stytch's namespace, more than four kilobytes. Nothing
    // changes.
    for patch in [
        json!({ "sub": "someone-else" }),
        json!({ "https://stytch.com/session": {} }),
        json!({ "big": "x".repeat(4096) }),
    ] {
        let line = driver
            .call("consumer", "authenticate", json!({ "session_token": token, "session_custom_claims": patch }))
            .await;
        assert_eq!(failed(&line)["status_code"], 400, "{line}");
    }
    let line = driver
        .call(
            "consumer",
            "authenticate",
            json!({ "session_token": token, "session_custom_claims": { "big": "x".repeat(4096) } }),
        )
        .await;
    assert_stytch_error(
        &line,
        400,
        "custom_claims_too_large",
        "Total custom claims size cannot exceed four kilobytes.",
    );
    let line = driver.call("consumer", "authenticate", json!({ "session_token": token })).await;
    assert_eq!(claims_after(&line), expected);

    // B2B: the same merge, and the organization claim is no custom claim.
    let member = b2b_login(&issuer, "member-test-claims");
    let line = driver
        .call(
            "b2b",
            "authenticate",
            json!({ "session_token": member.session_token, "session_custom_claims": { "t": { "x": 1, "y": 2 } } }),
        )
        .await;
    assert_eq!(ok(&line)["member_session"]["custom_claims"], json!({ "t": { "x": 1, "y": 2 } }));
    let line = driver
        .call(
            "b2b",
            "authenticate",
            json!({ "session_token": member.session_token, "session_custom_claims": { "t": { "x": null } } }),
        )
        .await;
    let answer = ok(&line);
    assert_eq!(answer["member_session"]["custom_claims"], json!({ "t": { "y": 2 } }));
    let jwt = answer["session_jwt"].as_str().expect("session_jwt").to_owned();
    let local = driver.call("b2b", "authenticateJwtLocal", json!({ "session_jwt": jwt })).await;
    assert_eq!(ok(&local)["custom_claims"], json!({ "t": { "y": 2 } }));
    let ours = library_reads(&b2b_project(&issuer), &jwt).await.expect("our library reads the member JWT");
    assert_eq!(ours.raw_claims(), json!({ "t": { "y": 2 } }));
    Ok(())
}

#[tokio::test]
async fn stytch_sdk_revokes_by_every_name_of_a_session() -> TestResult {
    let issuer = stytch_issuer().await;
    let mut driver = Driver::start(&issuer).await;
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?;

    for name in ["session_id", "session_token", "session_jwt"] {
        let login = issuer.create_session("user-test-revoke", vec![DevFactor::password()]);
        let value = match name {
            "session_id" => &login.session_id,
            "session_token" => &login.session_token,
            _ => &login.session_jwt,
        };
        let line = driver.call("consumer", "revoke", json!({ name: value })).await;
        assert_stytch_ok(ok(&line));
        let line = driver.call("consumer", "authenticate", json!({ "session_token": login.session_token })).await;
        assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
        let error = authority.authenticate(AuthorityCredential::Opaque(&login.session_token)).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::SessionRevoked, "revoked by {name}");
        // Twice: gone already.
        let line = driver.call("consumer", "revoke", json!({ name: value })).await;
        assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    }

    // B2B: member_session_id, session_token, session_jwt end one session; member_id
    // ends every session of that member and no one else's.
    let b2b_authority = StytchAuthority::new(&b2b_project_with_secret(&issuer))?;
    for name in ["member_session_id", "session_token", "session_jwt"] {
        let member = b2b_login(&issuer, "member-test-revoke");
        let value = match name {
            "member_session_id" => &member.session_id,
            "session_token" => &member.session_token,
            _ => &member.session_jwt,
        };
        let line = driver.call("b2b", "revoke", json!({ name: value })).await;
        assert_stytch_ok(ok(&line));
        let error = b2b_authority.authenticate(AuthorityCredential::Opaque(&member.session_token)).await.unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::SessionRevoked, "revoked by {name}");
    }
    let first = b2b_login(&issuer, "member-test-everywhere");
    let second = b2b_login(&issuer, "member-test-everywhere");
    let bystander = b2b_login(&issuer, "member-test-bystander");
    let line = driver.call("b2b", "revoke", json!({ "member_id": "member-test-everywhere" })).await;
    assert_stytch_ok(ok(&line));
    for gone in [&first, &second] {
        let line = driver.call("b2b", "authenticate", json!({ "session_token": gone.session_token })).await;
        assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    }
    let line = driver.call("b2b", "authenticate", json!({ "session_token": bystander.session_token })).await;
    assert_eq!(ok(&line)["member_session"]["member_session_id"], bystander.session_id.as_str());
    // Our authority's revoke (logout) ends the bystander's session for the SDK too.
    b2b_authority.revoke(&bystander.session_id).await?;
    let line = driver.call("b2b", "authenticate", json!({ "session_token": bystander.session_token })).await;
    assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    Ok(())
}

#[tokio::test]
async fn stytch_sdk_sees_stytchs_error_bodies() -> TestResult {
    let issuer = stytch_issuer().await;
    let login = issuer.create_session("user-test-errors", vec![DevFactor::password()]);
    let mut driver = Driver::start(&issuer).await;

    // A wrong project secret: 401 unauthorized_credentials, on every endpoint.
    for (client, method, params) in [
        ("consumer", "authenticate", json!({ "session_token": login.session_token })),
        ("consumer", "revoke", json!({ "session_id": login.session_id })),
        ("b2b", "authenticate", json!({ "session_token": login.session_token })),
    ] {
        let line = driver
            .step(json!({ "name": method, "client": client, "method": method, "params": params, "secret": "secret-test-wrong" }))
            .await;
        assert_stytch_error(&line, 401, "unauthorized_credentials", "Unauthorized credentials.");
    }
    let wrong = StytchAuthority::new(&project_with_secret(&issuer).with_secret("secret-test-wrong"))?;
    let error = wrong.authenticate(AuthorityCredential::Opaque(&login.session_token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::BadServerCredentials);
    // The refused revoke revoked nothing.
    let line = driver.call("consumer", "authenticate", json!({ "session_token": login.session_token })).await;
    ok(&line);

    // Unknown credentials: 404 session_not_found.
    let line = driver
        .call("consumer", "authenticate", json!({ "session_token": "mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q" }))
        .await;
    assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");
    let line = driver
        .call("consumer", "revoke", json!({ "session_id": "session-test-fe6c042b-6286-479f-8a4f-b046a6c46509" }))
        .await;
    assert_stytch_error(&line, 404, "session_not_found", "Session could not be found.");

    // Both credentials at once: Stytch's too_many_session_arguments.
    let line = driver
        .call(
            "consumer",
            "authenticate",
            json!({ "session_token": login.session_token, "session_jwt": login.session_jwt }),
        )
        .await;
    assert_stytch_error(
        &line,
        400,
        "too_many_session_arguments",
        "Please include at most one of session_token, session_jwt, or intermediate_session_token in an authenticate request, not multiple.",
    );
    Ok(())
}

/// Needs `GET /v1/sessions` and `GET /v1/b2b/sessions` in the dev issuer (another
/// branch); run after the merge.
#[tokio::test]
async fn stytch_sdk_sessions_get_lists_the_live_sessions() -> TestResult {
    let issuer = stytch_issuer().await;
    let first = issuer.create_session("user-test-list", vec![DevFactor::password()]);
    let second = issuer.create_session("user-test-list", vec![DevFactor::totp()]);
    let other = issuer.create_session("user-test-other", vec![DevFactor::password()]);
    let mut driver = Driver::start(&issuer).await;

    let line = driver.call("consumer", "get", json!({ "user_id": "user-test-list" })).await;
    let answer = ok(&line);
    assert_stytch_ok(answer);
    let mut ids: Vec<&str> =
        answer["sessions"].as_array().expect("sessions").iter().filter_map(|s| s["session_id"].as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![first.session_id.as_str(), second.session_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(!ids.contains(&other.session_id.as_str()));
    // Each listed session is the session authenticate describes.
    for listed in answer["sessions"].as_array().expect("sessions") {
        let token = if listed["session_id"] == first.session_id.as_str() {
            &first.session_token
        } else {
            &second.session_token
        };
        let line = driver.call("consumer", "authenticate", json!({ "session_token": token })).await;
        let mut remote = sdk_view(&ok(&line)["session"], false);
        remote["last_accessed_at"] = Value::Null;
        let mut listed = sdk_view(listed, false);
        listed["last_accessed_at"] = Value::Null;
        assert_eq!(listed, remote);
    }
    // Revoked sessions are not listed.
    assert!(issuer.revoke_session(&first.session_id));
    let line = driver.call("consumer", "get", json!({ "user_id": "user-test-list" })).await;
    let listed: Vec<&str> =
        ok(&line)["sessions"].as_array().expect("sessions").iter().filter_map(|s| s["session_id"].as_str()).collect();
    assert_eq!(listed, vec![second.session_id.as_str()]);

    // B2B: by organization and member.
    let member = b2b_login(&issuer, "member-test-list");
    let line = driver.call("b2b", "get", json!({ "organization_id": ORG, "member_id": "member-test-list" })).await;
    let listed: Vec<&str> = ok(&line)["member_sessions"]
        .as_array()
        .expect("member_sessions")
        .iter()
        .filter_map(|s| s["member_session_id"].as_str())
        .collect();
    assert_eq!(listed, vec![member.session_id.as_str()]);
    Ok(())
}

/// Needs `authorization_check` in the dev issuer's sessions/authenticate (another
/// branch); run after the merge. Error types from Stytch's 403 error lists.
#[tokio::test]
async fn stytch_sdk_authorization_check_is_refused_like_stytch() -> TestResult {
    let issuer = stytch_issuer().await;
    let login = issuer.create_session("user-test-rbac", vec![DevFactor::password()]);
    let member = b2b_login(&issuer, "member-test-rbac");
    let mut driver = Driver::start(&issuer).await;

    // A member asking about another organization: the tenancy error, before any role.
    let check = json!({ "organization_id": "organization-test-other", "resource_id": "documents", "action": "read" });
    let line = driver
        .call("b2b", "authenticate", json!({ "session_token": member.session_token, "authorization_check": check }))
        .await;
    assert_stytch_error(
        &line,
        403,
        "session_authorization_tenancy_error",
        "OrganizationID in AuthorizationCheck request does not match session's Organization ID",
    );
    // Its own organization, a permission no role grants.
    let check = json!({ "organization_id": ORG, "resource_id": "documents", "action": "delete" });
    let line = driver
        .call("b2b", "authenticate", json!({ "session_token": member.session_token, "authorization_check": check }))
        .await;
    assert_stytch_error(
        &line,
        403,
        "session_authorization_error",
        "The Member is not authorized to perform the requested action on that resource.",
    );
    // Consumer.
    let check = json!({ "resource_id": "documents", "action": "delete" });
    let line = driver
        .call("consumer", "authenticate", json!({ "session_token": login.session_token, "authorization_check": check }))
        .await;
    assert_stytch_error(
        &line,
        403,
        "consumer_session_authorization_error",
        "The User is not authorized to perform the requested action on that resource.",
    );
    // Without a check: no verdict.
    let line = driver.call("consumer", "authenticate", json!({ "session_token": login.session_token })).await;
    assert!(ok(&line).get("verdict").is_none_or(Value::is_null), "{line}");
    Ok(())
}
