//! Interop with a certified OpenID provider: the `oidc-provider` npm package (the
//! version pinned in `tests/interop/package.json`), run unmodified by
//! `tests/interop/oidc-provider.mjs` on loopback, driven over HTTP as a browser
//! and an OAuth client would, in front of `SessionLayer`s built from its discovery
//! document.
//!
//! Needs Node.js and `npm ci` in `tests/interop`: without them these tests FAIL
//! (loudly, saying so); they never skip.
//!
//! Where oidc-provider differs from what an RFC says, the test that meets it says
//! so (search for "oidc-provider deviates").

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::Router;
use http::header::{COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tower_stepup::{Guard, GuardConfig, IntrospectionAuthority, Requirement, SessionControl, SessionLayer};

use crate::common::{bearer, client, info, serve};

/// The API our resource server is (`aud` of its JWT access tokens).
const JWT_API: &str = "https://api.example/jwt";
/// Same API and audience, tokens signed RS256 instead of ES256.
const JWT_API_RS256: &str = "https://api.example/jwt-rs256";
/// The API whose access tokens are opaque (checked by introspection).
const OPAQUE_API: &str = "https://api.example/opaque";
/// Someone else's API at the same provider.
const OTHER_API: &str = "https://other.example/api";
/// The OAuth client (authorization code, refresh token, client credentials).
const APP: (&str, &str) = ("app", "app-secret");
/// The resource server's own client, for introspection and revocation.
const RS: (&str, &str) = ("rs", "rs-secret");
const REDIRECT_URI: &str = "https://app.example/cb";
/// The `acr` levels, weakest first, as the provider's `acr_values_supported` lists them.
const ACR_LEVELS: [&str; 3] = ["pwd", "mfa", "phr"];
/// `max_age` of the `/recent` and `/transfer` routes.
const MAX_AGE: Duration = Duration::from_secs(300);
/// Upper bound for the provider to start (a hang guard, not an assertion on speed).
const START_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------
// The provider process
// ---------------------------------------------------------------------------------

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// The `oidc-provider` version `package.json` pins.
fn pinned_version() -> String {
    let manifest = std::fs::read_to_string(interop_dir().join("package.json")).expect("tests/interop/package.json");
    let manifest: Value = serde_json::from_str(&manifest).expect("package.json is JSON");
    manifest["dependencies"]["oidc-provider"].as_str().expect("oidc-provider is pinned").to_owned()
}

/// Fails (never skips) when Node.js or the npm packages are missing.
fn check_prerequisites() {
    let installed = interop_dir().join("node_modules").join("oidc-provider").join("package.json");
    assert!(
        installed.exists(),
        "the interop tests need the npm packages of tests/interop: run `npm ci` in tests/interop \
         (with Node.js >= 20.19 on the PATH), then run the tests again"
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|output| output.status.success()),
        "the interop tests need Node.js (>= 20.19) on the PATH as `node`: {node:?}"
    );
}

/// A temporary file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!("tower-stepup-{}-{n}-{name}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running `oidc-provider`, killed (by its PID) when dropped. It also exits by
/// itself when its stdin, held here, closes.
struct Provider {
    child: Child,
    _stdin: ChildStdin,
    issuer: String,
    port: u16,
    kids: Vec<String>,
    version: String,
    discovery: Value,
}

impl Drop for Provider {
    fn drop(&mut self) {
        // SIGKILL to the child's PID; tokio reaps it.
        let _ = self.child.start_kill();
    }
}

impl Provider {
    /// On a free port, with fresh keys.
    async fn start() -> Self {
        Self::start_with(None, None).await
    }

    /// On `port` (`None`: a free one), with the keys of `keys` (created when missing).
    async fn start_with(port: Option<u16>, keys: Option<&Path>) -> Self {
        check_prerequisites();
        let mut command = Command::new("node");
        command
            .current_dir(interop_dir())
            .arg("oidc-provider.mjs")
            .arg("--port")
            .arg(port.unwrap_or(0).to_string())
            .env_remove("OIDC_KEYS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(keys) = keys {
            command.arg("--keys").arg(keys);
        }
        let mut child = command.spawn().expect("spawn node tests/interop/oidc-provider.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, stdout.next_line()).await;
        let line = match ready {
            Ok(Ok(Some(line))) => line,
            other => {
                let _ = child.start_kill();
                let mut log = String::new();
                while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(5), stderr.next_line()).await {
                    log.push_str(&line);
                    log.push('\n');
                }
                panic!("oidc-provider did not start ({other:?}); its stderr:\n{log}");
            }
        };
        // Keep draining stderr (warnings) so the child never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                eprintln!("[oidc-provider] {line}");
            }
        });
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a ready line: {line}"));
        let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        let port = u16::try_from(ready["port"].as_u64().expect("port")).expect("a port");
        let kids = ready["kids"].as_array().expect("kids").iter().map(|k| k.as_str().unwrap().to_owned()).collect();
        let version = ready["version"].as_str().expect("version").to_owned();
        // Ready means discovery answers.
        let discovery = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
            .await
            .expect("discovery request")
            .error_for_status()
            .expect("discovery answers 200")
            .json()
            .await
            .expect("discovery is JSON");
        Self { child, _stdin: stdin, issuer, port, kids, version, discovery }
    }

    /// Kills the process and waits until it is gone (its port is free again).
    async fn stop(mut self) {
        self.child.kill().await.expect("kill oidc-provider");
    }

    /// An endpoint URL from the discovery document.
    fn endpoint(&self, name: &str) -> String {
        self.discovery[name].as_str().unwrap_or_else(|| panic!("discovery has no {name}")).to_owned()
    }

    /// An access token for `resource` by the client-credentials grant (no user).
    async fn client_credentials(&self, resource: &str) -> String {
        let response = client()
            .post(self.endpoint("token_endpoint"))
            .basic_auth(APP.0, Some(APP.1))
            .form(&[("grant_type", "client_credentials"), ("resource", resource), ("scope", "read")])
            .send()
            .await
            .expect("token request");
        token_from(response).await
    }

    /// Exchanges an authorization code for the access token of `resource`.
    async fn exchange(&self, code: &str, resource: &str) -> Tokens {
        let response = client()
            .post(self.endpoint("token_endpoint"))
            .basic_auth(APP.0, Some(APP.1))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("resource", resource),
            ])
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body: Value = response.json().await.expect("token response is JSON");
        assert_eq!(status, 200, "token endpoint: {body}");
        Tokens {
            access_token: body["access_token"].as_str().expect("access_token").to_owned(),
            id_token: body["id_token"].as_str().expect("id_token (scope openid)").to_owned(),
        }
    }

    /// RFC 7009 revocation by the client the token was issued to.
    async fn revoke(&self, token: &str) {
        let response = client()
            .post(self.endpoint("revocation_endpoint"))
            .basic_auth(APP.0, Some(APP.1))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("revocation request");
        assert_eq!(response.status(), 200, "revocation: {}", response.text().await.unwrap_or_default());
    }

    /// The RFC 7662 authority of the resource server, from discovery.
    fn introspection(&self) -> IntrospectionAuthority {
        IntrospectionAuthority::new(&self.endpoint("introspection_endpoint"), RS.0, RS.1)
            .expect("introspection authority")
            .with_issuer(self.issuer.clone())
    }

    /// A user's access token for `resource`: a new browser, one login.
    async fn user_token(&self, resource: &str, login: &Login<'_>) -> String {
        let mut browser = Browser::new();
        let interaction = browser.authorize(self, &AuthRequest::new(resource)).await.expect_login();
        let code = browser.log_in(self, &interaction, login).await.expect_code();
        self.exchange(&code, resource).await.access_token
    }
}

async fn token_from(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.expect("token response is JSON");
    assert_eq!(status, 200, "token endpoint: {body}");
    body["access_token"].as_str().expect("access_token").to_owned()
}

struct Tokens {
    access_token: String,
    id_token: String,
}

// ---------------------------------------------------------------------------------
// A browser: cookie store, redirects followed by hand (to stop at the client)
// ---------------------------------------------------------------------------------

/// An authorization request of the `app` client.
struct AuthRequest<'a> {
    resource: &'a str,
    acr_values: Option<&'a str>,
    max_age: Option<&'a str>,
}

impl<'a> AuthRequest<'a> {
    fn new(resource: &'a str) -> Self {
        Self { resource, acr_values: None, max_age: None }
    }
}

/// What the test-only login page is told: who, how, when.
struct Login<'a> {
    sub: &'a str,
    acr: &'a str,
    amr: &'a str,
    auth_time: u64,
}

impl<'a> Login<'a> {
    fn now(sub: &'a str, acr: &'a str, amr: &'a str) -> Self {
        Self { sub, acr, amr, auth_time: now() }
    }
}

/// A pending interaction (the provider's login prompt), as the provider describes it.
struct Interaction {
    uid: String,
    reasons: Vec<String>,
    params: Value,
}

enum Step {
    Code(String),
    Login(Interaction),
}

impl Step {
    fn expect_code(self) -> String {
        match self {
            Step::Code(code) => code,
            Step::Login(interaction) => {
                panic!("expected a code, the provider asks to log in: {:?}", interaction.reasons)
            }
        }
    }
    fn expect_login(self) -> Interaction {
        match self {
            Step::Login(interaction) => interaction,
            Step::Code(_) => panic!("expected a login prompt, the provider issued a code"),
        }
    }
}

struct Browser {
    http: reqwest::Client,
    cookies: Vec<cookie::Cookie<'static>>,
}

impl Browser {
    fn new() -> Self {
        Self { http: client(), cookies: Vec::new() }
    }

    /// RFC 6265 §5.1.4 path match (one host only, so no domain matching).
    fn cookie_header(&self, url: &reqwest::Url) -> String {
        let path = url.path();
        self.cookies
            .iter()
            .filter(|c| {
                let prefix = c.path().unwrap_or("/");
                path == prefix
                    || (path.starts_with(prefix) && (prefix.ends_with('/') || path[prefix.len()..].starts_with('/')))
            })
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store(&mut self, headers: &http::HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let parsed = cookie::Cookie::parse(value.to_str().expect("ascii cookie").to_owned()).expect("a cookie");
            let path = parsed.path().unwrap_or("/").to_owned();
            self.cookies.retain(|c| !(c.name() == parsed.name() && c.path().unwrap_or("/") == path));
            let expired = parsed.max_age().is_some_and(|age| age.is_zero() || age.is_negative())
                || parsed.expires_datetime().is_some_and(|at| at.unix_timestamp() <= now().cast_signed());
            if !expired {
                self.cookies.push(parsed);
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = request.build().expect("request");
        let cookies = self.cookie_header(request.url());
        let mut request = request;
        if !cookies.is_empty() {
            request.headers_mut().insert(COOKIE, cookies.parse().expect("cookie header"));
        }
        let response = self.http.execute(request).await.expect("browser request");
        self.store(response.headers());
        response
    }

    /// Starts an authorization request and follows it to a code or a login prompt.
    async fn authorize(&mut self, op: &Provider, request: &AuthRequest<'_>) -> Step {
        let mut params = vec![
            ("client_id", APP.0),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid read"),
            ("resource", request.resource),
            ("state", "state-1"),
        ];
        params.extend(request.acr_values.map(|v| ("acr_values", v)));
        params.extend(request.max_age.map(|v| ("max_age", v)));
        let url = reqwest::Url::parse_with_params(&op.endpoint("authorization_endpoint"), &params).expect("auth url");
        let response = self.send(self.http.get(url)).await;
        self.follow(op, response).await
    }

    /// Answers the login prompt as the test-only login page would.
    async fn log_in(&mut self, op: &Provider, interaction: &Interaction, login: &Login<'_>) -> Step {
        let url = format!("{}/interaction/{}/login", op.issuer, interaction.uid);
        let auth_time = login.auth_time.to_string();
        let form = [("sub", login.sub), ("acr", login.acr), ("amr", login.amr), ("auth_time", &auth_time)];
        let response = self.send(self.http.post(url).form(&form)).await;
        self.follow(op, response).await
    }

    /// Follows redirects within the provider until it redirects to the client
    /// (a code) or shows the login prompt.
    async fn follow(&mut self, op: &Provider, mut response: reqwest::Response) -> Step {
        for _ in 0..10 {
            if response.status().is_redirection() {
                let location = response.headers()[LOCATION].to_str().expect("ascii location").to_owned();
                let next = response.url().join(&location).expect("a location URL");
                if next.as_str().starts_with(REDIRECT_URI) {
                    let query: HashMap<String, String> = next.query_pairs().into_owned().collect();
                    assert_eq!(query.get("state").map(String::as_str), Some("state-1"), "{next}");
                    // RFC 9207: the authorization response names its issuer.
                    assert_eq!(query.get("iss"), Some(&op.issuer), "{next}");
                    let code = query.get("code").unwrap_or_else(|| panic!("no code: {next}"));
                    return Step::Code(code.clone());
                }
                assert!(next.as_str().starts_with(&op.issuer), "redirected away from the provider: {next}");
                response = self.send(self.http.get(next)).await;
                continue;
            }
            let url = response.url().clone();
            let status = response.status();
            let body = response.text().await.expect("body");
            assert!(status == 200 && url.path().starts_with("/interaction/"), "{status} at {url}: {body}");
            let details: Value = serde_json::from_str(&body).expect("interaction details are JSON");
            assert_eq!(details["prompt"]["name"], "login", "{details}");
            let reasons = details["prompt"]["reasons"].as_array().expect("reasons");
            return Step::Login(Interaction {
                uid: details["uid"].as_str().expect("uid").to_owned(),
                reasons: reasons.iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
                params: details["params"].clone(),
            });
        }
        panic!("too many redirects");
    }
}

// ---------------------------------------------------------------------------------
// The resource server
// ---------------------------------------------------------------------------------

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn guard_config() -> GuardConfig {
    GuardConfig::default().with_acr_levels(ACR_LEVELS)
}

/// Ends the session (`204`, or `503` when the provider did not revoke it).
async fn logout(control: SessionControl) -> http::StatusCode {
    match control.revoke().await {
        Ok(()) => http::StatusCode::NO_CONTENT,
        Err(_) => http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `/me` (any session), `/mfa` (`acr` at least `mfa`), `/recent` (authenticated
/// within [`MAX_AGE`]), `/transfer` (both), `/fresh` (any session, confirmed with
/// the provider on every request), `POST /logout`.
fn api(layer: SessionLayer) -> Router {
    let mfa = Requirement::acr_at_least("mfa");
    let recent = Requirement::max_age(MAX_AGE);
    Router::new()
        .route("/me", get(info).route_layer(Guard::authenticated()))
        .route("/mfa", get(info).route_layer(Guard::new(mfa.clone())))
        .route("/recent", get(info).route_layer(Guard::new(recent.clone())))
        .route("/transfer", get(info).route_layer(Guard::new(mfa.and(recent))))
        .route("/fresh", get(info).route_layer(Guard::authenticated().fresh()))
        .route("/logout", post(logout))
        .layer(layer)
}

/// The API of [`JWT_API`], keys through the provider's discovery, served.
async fn jwt_api(op: &Provider) -> String {
    let layer = SessionLayer::oidc(op.issuer.clone(), JWT_API).with_guard_config(guard_config()).build().await;
    serve(api(layer.expect("the oidc() preset builds against oidc-provider's discovery"))).await
}

/// The API of [`OPAQUE_API`]: opaque tokens by introspection. Answers are reused
/// for an hour on routes without `fresh()`, so only `/fresh` asks the provider
/// again (deterministically).
async fn opaque_api(op: &Provider) -> String {
    let authority = op.introspection().with_revocation_url(op.endpoint("revocation_endpoint"));
    let layer = SessionLayer::oidc(op.issuer.clone(), OPAQUE_API)
        .with_guard_config(guard_config())
        .with_authority(authority)
        .with_opaque_token_ttl(Duration::from_secs(3600))
        .build()
        .await;
    serve(api(layer.expect("oidc layer with introspection"))).await
}

/// The auth-params of a `WWW-Authenticate: Bearer …` challenge.
fn challenge_params(response: &reqwest::Response) -> HashMap<String, String> {
    let header = response.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let rest = header.strip_prefix("Bearer").unwrap_or_else(|| panic!("not a Bearer challenge: {header:?}"));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() {
            return params;
        }
        assert_eq!(chars.next(), Some('='), "{header}");
        assert_eq!(chars.next(), Some('"'), "quoted value expected: {header}");
        let mut value = String::new();
        loop {
            match chars.next().unwrap_or_else(|| panic!("unterminated value: {header}")) {
                '\\' => value.push(chars.next().expect("escaped char")),
                '"' => break,
                c => value.push(c),
            }
        }
        params.insert(name.trim().to_owned(), value);
    }
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

fn decode_part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url"))
        .expect("JSON")
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// Discovery → JWKS → ES256 and RS256 access tokens verified by the `oidc()`
/// preset, claims read as RFC 9068 and oidc-provider write them.
#[tokio::test]
async fn discovery_jwks_and_access_tokens_of_both_algorithms() {
    let op = Provider::start().await;
    assert_eq!(op.version, pinned_version(), "node_modules is stale: run `npm ci` in tests/interop");
    assert_eq!(op.discovery["issuer"], op.issuer);
    let supported: Vec<&str> =
        op.discovery["acr_values_supported"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(supported, ACR_LEVELS);
    let jwks: Value = reqwest::get(op.endpoint("jwks_uri")).await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("keys");
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, op.kids);
    assert!(keys.iter().all(|k| k.get("d").is_none()), "the JWKS leaks a private key");

    let url = jwt_api(&op).await;
    let http = client();
    let es256 = op.user_token(JWT_API, &Login::now("alice", "mfa", "pwd otp")).await;
    let rs256 = op.user_token(JWT_API_RS256, &Login::now("bob", "pwd", "pwd")).await;
    assert_eq!(decode_part(&es256, 0)["alg"], "ES256");
    assert_eq!(decode_part(&es256, 0)["typ"], "at+jwt");
    assert_eq!(decode_part(&rs256, 0)["alg"], "RS256");

    let me = bearer(&http, format!("{url}/me"), &es256).await;
    assert_eq!(me.status(), 200);
    let me = json(me).await;
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["client_id"], APP.0);
    assert_eq!(me["acr"], "mfa");
    assert_eq!(me["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(me["factors"], serde_json::json!(["password", "otp"]));
    assert_eq!(me["scopes"], serde_json::json!(["read"]));
    assert_eq!(me["opaque"], false);

    let me = bearer(&http, format!("{url}/me"), &rs256).await;
    assert_eq!(me.status(), 200);
    assert_eq!(json(me).await["sub"], "bob");

    // A flipped signature byte is not the token the provider signed.
    let mut forged = rs256.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let refused = bearer(&http, format!("{url}/me"), &forged).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge_params(&refused)["error"], "invalid_token");
}

/// The whole RFC 9470 loop: `acr` too low → challenge → the client re-authorizes
/// with exactly the challenge's `acr_values` (and `max_age` when given) → the
/// provider asks the user to log in again → the new token passes.
#[tokio::test]
async fn step_up_loop_with_the_challenge_parameters() {
    let op = Provider::start().await;
    let url = jwt_api(&op).await;
    let http = client();
    let mut browser = Browser::new();

    // First login: a password.
    let first = browser.authorize(&op, &AuthRequest::new(JWT_API)).await.expect_login();
    assert!(first.reasons.contains(&"no_session".to_owned()), "{:?}", first.reasons);
    let code = browser.log_in(&op, &first, &Login::now("alice", "pwd", "pwd")).await.expect_code();
    let weak = op.exchange(&code, JWT_API).await.access_token;
    assert_eq!(bearer(&http, format!("{url}/me"), &weak).await.status(), 200);

    let refused = bearer(&http, format!("{url}/transfer"), &weak).await;
    assert_eq!(refused.status(), 401);
    let challenge = challenge_params(&refused);
    assert_eq!(challenge["error"], "insufficient_user_authentication");
    assert_eq!(challenge["acr_values"], "mfa phr");

    // Re-authorize with exactly what the challenge asks for.
    let request = AuthRequest {
        acr_values: challenge.get("acr_values").map(String::as_str),
        max_age: challenge.get("max_age").map(String::as_str),
        ..AuthRequest::new(JWT_API)
    };
    let step_up = browser.authorize(&op, &request).await.expect_login();
    // The provider has a session (no `no_session`), but not at a requested level.
    assert!(!step_up.reasons.contains(&"no_session".to_owned()), "{:?}", step_up.reasons);
    assert!(step_up.reasons.contains(&"acr_values".to_owned()), "{:?}", step_up.reasons);
    assert_eq!(step_up.params["acr_values"], challenge["acr_values"]);

    // The user only manages a password again: the provider still issues a code
    // (acr_values are voluntary, OIDC Core §3.1.2.1), and the API still refuses.
    let code = browser.log_in(&op, &step_up, &Login::now("alice", "pwd", "pwd")).await.expect_code();
    let still_weak = op.exchange(&code, JWT_API).await.access_token;
    assert_eq!(decode_part(&still_weak, 1)["acr"], "pwd");
    assert_eq!(bearer(&http, format!("{url}/transfer"), &still_weak).await.status(), 401);

    // Second try: a one-time code too.
    let step_up = browser.authorize(&op, &request).await.expect_login();
    let acr = step_up.params["acr_values"].as_str().unwrap().split(' ').next().unwrap().to_owned();
    let code = browser.log_in(&op, &step_up, &Login::now("alice", &acr, "pwd otp")).await.expect_code();
    let strong = op.exchange(&code, JWT_API).await;
    let passed = bearer(&http, format!("{url}/transfer"), &strong.access_token).await;
    assert_eq!(passed.status(), 200);
    let passed = json(passed).await;
    assert_eq!(passed["sub"], "alice");
    assert_eq!(passed["acr"], "mfa");

    // Now that the session is at `mfa`, asking again needs no new login.
    let code = browser.authorize(&op, &request).await.expect_code();
    let again = op.exchange(&code, JWT_API).await.access_token;
    assert_eq!(bearer(&http, format!("{url}/mfa"), &again).await.status(), 200);

    // The ID token is no access token, even for an API whose audience is the
    // client id: RFC 9068 tells them apart (`typ` `at+jwt`, `client_id`, `jti`;
    // RFC 8725 §3.11).
    assert!(decode_part(&strong.id_token, 0).get("typ").is_none_or(|typ| typ != "at+jwt"));
    let confused = SessionLayer::oidc(op.issuer.clone(), APP.0).with_guard_config(guard_config()).build().await;
    let confused = serve(api(confused.expect("layer"))).await;
    let refused = bearer(&http, format!("{confused}/me"), &strong.id_token).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge_params(&refused)["error"], "invalid_token");
}

/// `auth_time` too old → `max_age` challenge → re-authorization with that
/// `max_age` makes the provider log the user in again → passes.
#[tokio::test]
async fn auth_time_too_old_asks_for_max_age() {
    let op = Provider::start().await;
    let url = jwt_api(&op).await;
    let http = client();
    let mut browser = Browser::new();

    let an_hour_ago = now() - 3600;
    let first = browser.authorize(&op, &AuthRequest::new(JWT_API)).await.expect_login();
    let old = Login { auth_time: an_hour_ago, ..Login::now("alice", "mfa", "pwd otp") };
    let code = browser.log_in(&op, &first, &old).await.expect_code();
    let token = op.exchange(&code, JWT_API).await.access_token;
    assert_eq!(decode_part(&token, 1)["auth_time"], an_hour_ago);
    assert_eq!(bearer(&http, format!("{url}/mfa"), &token).await.status(), 200);

    let refused = bearer(&http, format!("{url}/recent"), &token).await;
    assert_eq!(refused.status(), 401);
    let challenge = challenge_params(&refused);
    assert_eq!(challenge["error"], "insufficient_user_authentication");
    assert_eq!(challenge["max_age"], MAX_AGE.as_secs().to_string());
    assert!(!challenge.contains_key("acr_values"), "{challenge:?}");

    let request = AuthRequest { max_age: challenge.get("max_age").map(String::as_str), ..AuthRequest::new(JWT_API) };
    let again = browser.authorize(&op, &request).await.expect_login();
    assert!(again.reasons.contains(&"max_age".to_owned()), "{:?}", again.reasons);
    let code = browser.log_in(&op, &again, &Login::now("alice", "mfa", "pwd otp")).await.expect_code();
    let recent = op.exchange(&code, JWT_API).await.access_token;
    assert_eq!(bearer(&http, format!("{url}/recent"), &recent).await.status(), 200);
    assert_eq!(bearer(&http, format!("{url}/transfer"), &recent).await.status(), 200);
}

/// Opaque token → introspection → revoked at the provider → `fresh()` refuses.
#[tokio::test]
async fn opaque_token_introspected_then_revoked() {
    let op = Provider::start().await;
    let url = opaque_api(&op).await;
    let http = client();
    let token = op.user_token(OPAQUE_API, &Login::now("alice", "mfa", "pwd otp")).await;
    assert_eq!(token.split('.').count(), 1, "an opaque token, not a JWT");

    let me = bearer(&http, format!("{url}/me"), &token).await;
    assert_eq!(me.status(), 200);
    let me = json(me).await;
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["opaque"], true);
    assert_eq!(me["acr"], "mfa");
    assert_eq!(me["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(me["client_id"], APP.0);
    assert_eq!(bearer(&http, format!("{url}/mfa"), &token).await.status(), 200);
    assert_eq!(bearer(&http, format!("{url}/fresh"), &token).await.status(), 200);

    op.revoke(&token).await;

    let refused = bearer(&http, format!("{url}/fresh"), &token).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge_params(&refused)["error"], "invalid_token");
    // The layer forgets the revoked session everywhere: routes without `fresh()`
    // would reuse the earlier answer for an hour here, but not an answer about a
    // session the provider has since called inactive.
    assert_eq!(bearer(&http, format!("{url}/me"), &token).await.status(), 401);
    // A new layer asks afresh: the provider itself says the token is inactive.
    let fresh_layer = opaque_api(&op).await;
    assert_eq!(bearer(&http, format!("{fresh_layer}/me"), &token).await.status(), 401);
}

/// A logout at the API (`SessionControl::revoke`) revokes the opaque token at the
/// provider by RFC 7009: another resource server asking the provider learns it.
#[tokio::test]
async fn logout_at_the_api_revokes_at_the_provider() {
    let op = Provider::start().await;
    let url = opaque_api(&op).await;
    let other_instance = opaque_api(&op).await;
    let http = client();
    let token = op.user_token(OPAQUE_API, &Login::now("alice", "mfa", "pwd otp")).await;
    let bystander = op.user_token(OPAQUE_API, &Login::now("bob", "mfa", "pwd otp")).await;
    assert_eq!(bearer(&http, format!("{url}/me"), &token).await.status(), 200);

    let logout = http.post(format!("{url}/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(logout.status(), 204);

    assert_eq!(bearer(&http, format!("{url}/me"), &token).await.status(), 401);
    assert_eq!(bearer(&http, format!("{other_instance}/me"), &token).await.status(), 401);
    // Only that token: another user's session lives on.
    assert_eq!(bearer(&http, format!("{other_instance}/fresh"), &bystander).await.status(), 200);
}

/// oidc-provider deviates from RFC 7662 §2.2 here: asked about a JWT access token,
/// its introspection endpoint answers `400 unsupported_token_type` instead of an
/// introspection response (`{"active": false}` at worst). A `fresh()` route of a
/// JWT API that confirms by introspection therefore cannot confirm: it fails
/// closed with `503` (an issuer fault, not the user's), never lets the token pass.
#[tokio::test]
async fn fresh_jwt_routes_fail_closed_where_the_provider_will_not_introspect_jwts() {
    let op = Provider::start().await;
    let layer = SessionLayer::oidc(op.issuer.clone(), JWT_API)
        .with_guard_config(guard_config())
        .with_authority(op.introspection())
        .build()
        .await
        .expect("layer");
    let url = serve(api(layer)).await;
    let http = client();
    let token = op.user_token(JWT_API, &Login::now("alice", "mfa", "pwd otp")).await;

    let direct = client()
        .post(op.endpoint("introspection_endpoint"))
        .basic_auth(RS.0, Some(RS.1))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 400);
    assert_eq!(json(direct).await["error"], "unsupported_token_type");

    assert_eq!(bearer(&http, format!("{url}/me"), &token).await.status(), 200);
    assert_eq!(bearer(&http, format!("{url}/fresh"), &token).await.status(), 503);
}

/// The provider restarts with a NEW key set: tokens of the new key are verified
/// after one unknown-`kid` refresh; a token of the old key nobody presented before
/// is refused.
#[tokio::test]
async fn restart_with_a_new_key_refreshes_on_the_unknown_kid() {
    let first_keys = TempFile::new("oidc-keys-1.json");
    let second_keys = TempFile::new("oidc-keys-2.json");
    let op = Provider::start_with(None, Some(&first_keys.0)).await;
    let (issuer, port, old_kids) = (op.issuer.clone(), op.port, op.kids.clone());
    let url = jwt_api(&op).await;
    let http = client();

    let seen = op.user_token(JWT_API, &Login::now("alice", "mfa", "pwd otp")).await;
    let unseen = op.client_credentials(JWT_API).await;
    assert_eq!(bearer(&http, format!("{url}/me"), &seen).await.status(), 200);

    op.stop().await;
    let op = Provider::start_with(Some(port), Some(&second_keys.0)).await;
    assert_eq!(op.issuer, issuer);
    assert!(op.kids.iter().all(|kid| !old_kids.contains(kid)), "{:?} vs {old_kids:?}", op.kids);

    let new = op.user_token(JWT_API, &Login::now("alice", "mfa", "pwd otp")).await;
    let new_kid = decode_part(&new, 0)["kid"].as_str().unwrap().to_owned();
    assert!(op.kids.contains(&new_kid));
    let me = bearer(&http, format!("{url}/me"), &new).await;
    assert_eq!(me.status(), 200);
    assert_eq!(json(me).await["sub"], "alice");

    // Signed by a key the provider no longer publishes, and never verified here.
    let refused = bearer(&http, format!("{url}/me"), &unseen).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge_params(&refused)["error"], "invalid_token");
    // A token verified before the restart stays verified until its `exp` (the
    // verified-token cache: see the cache's docs); the provider's restart did not
    // revoke it, only its memory of it.
    assert_eq!(bearer(&http, format!("{url}/me"), &seen).await.status(), 200);
}

/// Tokens the provider really issued, presented where they do not belong.
#[tokio::test]
async fn genuine_tokens_in_the_wrong_place_are_refused() {
    let op = Provider::start().await;
    let jwt_url = jwt_api(&op).await;
    let opaque_url = opaque_api(&op).await;
    let http = client();
    let alice = Login::now("alice", "phr", "hwk");

    // Another API's token (audience), from the same provider and key.
    let other = op.user_token(OTHER_API, &alice).await;
    assert_eq!(decode_part(&other, 1)["aud"], OTHER_API);
    let refused = bearer(&http, format!("{jwt_url}/me"), &other).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge_params(&refused)["error"], "invalid_token");
    assert_eq!(bearer(&http, format!("{opaque_url}/me"), &other).await.status(), 401);

    // The JWT API's token at the opaque API, and the other way round.
    let jwt = op.user_token(JWT_API, &alice).await;
    assert_eq!(bearer(&http, format!("{jwt_url}/transfer"), &jwt).await.status(), 200);
    assert_eq!(bearer(&http, format!("{opaque_url}/me"), &jwt).await.status(), 401);
    let opaque = op.user_token(OPAQUE_API, &alice).await;
    assert_eq!(bearer(&http, format!("{opaque_url}/transfer"), &opaque).await.status(), 200);
    assert_eq!(bearer(&http, format!("{jwt_url}/me"), &opaque).await.status(), 401);

    // A client-credentials token has no user: RFC 9068 §2.2 makes `sub` the client
    // id and there is no `acr` or `auth_time`. It is a valid access token (`/me`),
    // but a route that needs a user's authentication asks for one.
    let machine = op.client_credentials(JWT_API).await;
    let claims = decode_part(&machine, 1);
    assert_eq!(claims["sub"], APP.0);
    assert!(claims.get("acr").is_none() && claims.get("auth_time").is_none(), "{claims}");
    let me = bearer(&http, format!("{jwt_url}/me"), &machine).await;
    assert_eq!(me.status(), 200);
    assert_eq!(json(me).await["client_id"], APP.0);
    for route in ["/mfa", "/recent", "/transfer"] {
        let refused = bearer(&http, format!("{jwt_url}{route}"), &machine).await;
        assert_eq!(refused.status(), 401, "{route}");
        assert_eq!(challenge_params(&refused)["error"], "insufficient_user_authentication", "{route}");
    }
    let machine_opaque = op.client_credentials(OPAQUE_API).await;
    assert_eq!(bearer(&http, format!("{opaque_url}/mfa"), &machine_opaque).await.status(), 401);
}
