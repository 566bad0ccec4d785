//! Black-box test of `examples/resource_server.rs`: the binary `cargo test` builds,
//! configured only through its environment, driven over HTTP.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, Endpoint, Failure, DEFAULT_AUDIENCE};

fn example_binary() -> PathBuf {
    // target/<profile>/deps/it-<hash> → target/<profile>/examples/resource_server
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target profile dir");
    let binary = profile_dir.join("examples").join(format!("resource_server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the suite with `cargo test`, which builds the examples",
        binary.display()
    );
    binary
}

struct Server {
    child: Child,
    url: String,
}

/// The OIDC configuration every test starts from; `extra` adds or overrides.
fn oidc_env(issuer: &DevIssuer) -> Vec<(&'static str, String)> {
    vec![
        ("STEPUP_JWKS_URL", issuer.jwks_url()),
        ("STEPUP_ISSUER", issuer.issuer()),
        ("STEPUP_AUDIENCE", DEFAULT_AUDIENCE.to_owned()),
        ("STEPUP_TYP", "at+jwt".to_owned()),
    ]
}

/// An RFC 7662 authority at the dev issuer.
fn introspection_env(issuer: &DevIssuer) -> Vec<(&'static str, String)> {
    vec![
        ("STEPUP_INTROSPECTION_URL", issuer.introspection_url()),
        ("STEPUP_CLIENT_ID", issuer.client_id().to_owned()),
        ("STEPUP_CLIENT_SECRET", issuer.client_secret().to_owned()),
    ]
}

/// The Stytch configuration: session JWTs read with the Stytch profile, a Stytch
/// authority at the dev issuer.
fn stytch_env(issuer: &DevIssuer) -> Vec<(&'static str, String)> {
    vec![
        ("STEPUP_PROFILE", "stytch".to_owned()),
        ("STEPUP_JWKS_URL", issuer.stytch_jwks_url()),
        ("STEPUP_ISSUER", issuer.stytch_issuer()),
        ("STEPUP_AUDIENCE", issuer.project_id().to_owned()),
        ("STEPUP_TYP", "jwt".to_owned()),
        ("STEPUP_STYTCH_PROJECT_ID", issuer.project_id().to_owned()),
        ("STEPUP_STYTCH_SECRET", issuer.secret().to_owned()),
        ("STEPUP_STYTCH_BASE_URL", issuer.base_url()),
    ]
}

async fn start(issuer: &DevIssuer, extra: &[(&str, String)]) -> Server {
    start_with(oidc_env(issuer).iter().chain(extra), Stdio::inherit()).await
}

async fn start_with<'a>(vars: impl IntoIterator<Item = &'a (&'a str, String)>, stderr: Stdio) -> Server {
    let mut command = Command::new(example_binary());
    command.env_clear().env("STEPUP_LISTEN", "127.0.0.1:0").stdout(Stdio::piped()).stderr(stderr).kill_on_drop(true);
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn resource_server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("resource_server did not start within 30 s")
        .expect("read stdout")
        .expect("resource_server exited before listening");
    let url = line.rsplit(' ').next().expect("listening line").to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "unexpected first line: {line}");
    Server { child, url }
}

#[tokio::test]
async fn the_documented_contract_holds() {
    let issuer = DevIssuer::start().await.unwrap();
    let introspection = introspection_env(&issuer);
    let server = start(&issuer, &introspection).await;
    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("{}{path}", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    assert_eq!(get("/public", None).await.unwrap().status(), 200);

    let anonymous = get("/me", None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer realm=\"api\"");

    let now = SystemTime::now();
    let pwd = issuer.access_token().subject("alice").sid("sid-1").acr("pwd").amr(&["pwd"]).auth_time(now).mint();
    let me = get("/me", Some(&pwd)).await.unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["session_id"], "sid-1");
    assert_eq!(body["factors"][0]["type"], "password");

    let mfa = get("/mfa", Some(&pwd)).await.unwrap();
    assert_eq!(mfa.status(), 401);
    let challenge = mfa.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"insufficient_user_authentication\""), "{challenge}");
    assert!(challenge.contains("acr_values=\"mfa\""), "{challenge}");
    let strong = issuer.access_token().subject("alice").acr("mfa").amr(&["pwd", "otp"]).auth_time(now).mint();
    assert_eq!(get("/mfa", Some(&strong)).await.unwrap().status(), 200);

    let old = issuer.access_token().subject("alice").acr("mfa").auth_time(now - Duration::from_secs(3600)).mint();
    let recent = get("/recent", Some(&old)).await.unwrap();
    assert_eq!(recent.status(), 401);
    assert!(recent.headers()["www-authenticate"].to_str().unwrap().contains("max_age=\"300\""));
    assert_eq!(get("/recent", Some(&strong)).await.unwrap().status(), 200);

    assert_eq!(get("/admin", Some(&strong)).await.unwrap().status(), 403);
    let admin_scope = issuer.access_token().subject("alice").scope("read admin").mint();
    assert_eq!(get("/admin", Some(&admin_scope)).await.unwrap().status(), 200);
    let admin_role = issuer.access_token().subject("alice").role("admin").mint();
    assert_eq!(get("/admin", Some(&admin_role)).await.unwrap().status(), 200);

    assert_eq!(get("/sensitive", Some(&strong)).await.unwrap().status(), 200);
    assert_eq!(get("/sensitive", Some(&pwd)).await.unwrap().status(), 401);
    let garbage = get("/me", Some("not-a-token")).await.unwrap();
    assert_eq!(garbage.status(), 401);

    // `/hot`: any session, its subject as plain text.
    let hot = get("/hot", Some(&pwd)).await.unwrap();
    assert_eq!(hot.status(), 200);
    assert!(hot.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(hot.text().await.unwrap(), "alice");
    assert_eq!(get("/hot", None).await.unwrap().status(), 401);
    assert_eq!(get("/hot", Some("not-a-token")).await.unwrap().status(), 401);
}

#[tokio::test]
async fn misconfiguration_is_a_clear_error_not_a_panic() {
    let output = Command::new(example_binary()).env_clear().output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STEPUP_ISSUER is required"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn fresh_route_confirms_with_the_issuer() {
    let issuer = DevIssuer::start().await.unwrap();
    let introspection = introspection_env(&issuer);
    let server = start(&issuer, &introspection).await;
    let client = reqwest::Client::new();
    let token = issuer.access_token().subject("alice").mint();
    let before = issuer.request_count(Endpoint::Introspect);
    let fresh = client.get(format!("{}/fresh", server.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::Introspect), before + 1, "/fresh asks the issuer");
    let anonymous = client.get(format!("{}/fresh", server.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn stytch_profile_reads_session_jwts_and_fresh_sees_revocation() {
    let issuer = DevIssuer::start().await.unwrap();
    let vars = stytch_env(&issuer);
    let server = start_with(&vars, Stdio::inherit()).await;
    let client = reqwest::Client::new();
    let session = issuer.create_session("user-1", vec![DevFactor::email_otp(), DevFactor::totp()]);
    let me = client.get(format!("{}/me", server.url)).bearer_auth(&session.session_jwt).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["sub"], "user-1");
    assert_eq!(body["session_id"], session.session_id.as_str());
    let kinds: Vec<&str> = body["factors"].as_array().unwrap().iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(kinds.len(), 2, "{body}");

    let fresh = |jwt: String| client.get(format!("{}/fresh", server.url)).bearer_auth(jwt).send();
    assert_eq!(fresh(session.session_jwt.clone()).await.unwrap().status(), 200);
    assert!(issuer.revoke_session(&session.session_id));
    assert_eq!(fresh(session.session_jwt.clone()).await.unwrap().status(), 401);
    // Learned on the fresh route: refused on local routes from now on.
    let me = client.get(format!("{}/me", server.url)).bearer_auth(&session.session_jwt).send().await.unwrap();
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn logout_revokes_then_me_is_401() {
    let issuer = DevIssuer::start().await.unwrap();
    let vars = stytch_env(&issuer);
    let server = start_with(&vars, Stdio::inherit()).await;
    let client = reqwest::Client::new();
    let session = issuer.create_session("user-logout", vec![DevFactor::password()]);
    let cookie = format!("stytch_session_jwt={}; stytch_session={}", session.session_jwt, session.session_token);
    let me = || client.get(format!("{}/me", server.url)).header(http::header::COOKIE, &cookie).send();
    assert_eq!(me().await.unwrap().status(), 200);

    let out = client.post(format!("{}/logout", server.url)).header(http::header::COOKIE, &cookie).send().await.unwrap();
    assert_eq!(out.status(), 204);
    let cleared: Vec<_> = out.headers().get_all(http::header::SET_COOKIE).iter().collect();
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(cleared.iter().all(|c| c.to_str().unwrap().contains("Max-Age=0")), "{cleared:?}");
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 1);
    assert_eq!(me().await.unwrap().status(), 401);
    assert!(!issuer.revoke_session(&session.session_id), "revoked at the issuer");
    let none = client.post(format!("{}/logout", server.url)).send().await.unwrap();
    assert_eq!(none.status(), 401);
}

#[tokio::test]
async fn issuer_failures_are_logged() {
    let issuer = DevIssuer::start().await.unwrap();
    let mut introspection = introspection_env(&issuer);
    introspection.push(("RUST_LOG", "info".to_owned()));
    let vars: Vec<_> = oidc_env(&issuer).into_iter().chain(introspection).collect();
    let mut server = start_with(&vars, Stdio::piped()).await;
    let client = reqwest::Client::new();
    issuer.set_endpoint_failure(Endpoint::Introspect, Failure::Status500);
    let token = issuer.access_token().subject("alice").mint();
    let fresh = client.get(format!("{}/fresh", server.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(fresh.status(), 503);
    issuer.set_endpoint_failure(Endpoint::Jwks, Failure::Unavailable);
    let unknown_key = issuer.access_token().kid("not-published").mint();
    let status = client.get(format!("{}/me", server.url)).bearer_auth(&unknown_key).send().await.unwrap().status();
    assert_eq!(status, 503);
    server.child.start_kill().unwrap();
    let output = server.child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WARN") || stderr.contains("ERROR"), "no warning logged: {stderr}");
    assert!(stderr.contains("introspection"), "the issuer failure is not named: {stderr}");
    assert!(stderr.contains("key set"), "the JWKS failure is not named: {stderr}");
    assert!(!stderr.contains(&token) && !stderr.contains(&unknown_key), "a token reached the log");
}

#[tokio::test]
async fn issuer_rate_bounds_calls_for_unverified_credentials() {
    let issuer = DevIssuer::start().await.unwrap();
    let mut introspection = introspection_env(&issuer);
    introspection.push(("STEPUP_ISSUER_RATE", "3".to_owned()));
    let server = start(&issuer, &introspection).await;
    let client = reqwest::Client::new();
    let valid = issuer.access_token().subject("alice").mint();
    let mut busy = 0;
    for i in 0..20 {
        let response = client.get(format!("{}/me", server.url)).bearer_auth(format!("junk-{i}")).send().await.unwrap();
        match response.status().as_u16() {
            401 => {}
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                busy += 1;
            }
            other => panic!("garbage answered {other}"),
        }
        // A locally verified JWT is never starved by the garbage.
        let me = client.get(format!("{}/me", server.url)).bearer_auth(&valid).send().await.unwrap();
        assert_eq!(me.status(), 200);
    }
    let calls = issuer.request_count(Endpoint::Introspect);
    // A burst of 3 plus what refills at 3/s while the loop runs: far below 20.
    assert!(calls < 20 && busy > 0, "{calls} introspection calls, {busy} refused as busy");
    assert_eq!(calls + busy, 20, "every garbage token was either asked about or refused as busy");
}

#[tokio::test]
async fn bad_issuer_rate_is_a_clear_error() {
    let issuer = DevIssuer::start().await.unwrap();
    let vars: Vec<_> = oidc_env(&issuer).into_iter().chain([("STEPUP_ISSUER_RATE", "fast".to_owned())]).collect();
    let mut command = Command::new(example_binary());
    command.env_clear();
    for (name, value) in &vars {
        command.env(name, value);
    }
    let output = command.output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STEPUP_ISSUER_RATE"), "{stderr}");
}

#[tokio::test]
async fn stytch_profile_mfa_route_passes_two_distinct_factor_kinds() {
    let issuer = DevIssuer::start().await.unwrap();
    let vars = [
        ("STEPUP_PROFILE", "stytch".to_owned()),
        ("STEPUP_JWKS_URL", issuer.stytch_jwks_url()),
        ("STEPUP_ISSUER", issuer.stytch_issuer()),
        ("STEPUP_AUDIENCE", issuer.project_id().to_owned()),
        ("STEPUP_TYP", "jwt".to_owned()),
    ];
    let server = start_with(&vars, Stdio::inherit()).await;
    let client = reqwest::Client::new();
    let mfa = |jwt: String| client.get(format!("{}/mfa", server.url)).bearer_auth(jwt).send();

    let two_kinds = issuer.create_session("user-1", vec![DevFactor::email_otp(), DevFactor::totp()]);
    let response = mfa(two_kinds.session_jwt.clone()).await.unwrap();
    let status = response.status();
    let challenge = response.headers().get("www-authenticate").cloned();
    assert_eq!(status, 200, "{challenge:?} {}", response.text().await.unwrap_or_default());

    // One factor kind (even used twice) is the single-factor level: the RFC 9470 challenge.
    for factors in [vec![DevFactor::email_otp()], vec![DevFactor::totp(), DevFactor::totp()]] {
        let one_kind = issuer.create_session("user-2", factors);
        let response = mfa(one_kind.session_jwt.clone()).await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers().get("www-authenticate").unwrap().to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(challenge.contains(r#"error="insufficient_user_authentication""#), "{challenge}");
        assert!(challenge.contains(r#"acr_values="mfa""#), "{challenge}");
    }
}

#[tokio::test]
async fn logout_without_an_authority_is_remembered_by_the_server() {
    let issuer = DevIssuer::start().await.unwrap();
    let server = start(&issuer, &[]).await;
    let client = reqwest::Client::new();
    let token = issuer.access_token().subject("alice").sid("sid-logout").mint();
    let me = || client.get(format!("{}/me", server.url)).bearer_auth(&token).send();
    assert_eq!(me().await.unwrap().status(), 200);
    let out = client.post(format!("{}/logout", server.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(me().await.unwrap().status(), 401);
}

/// Environment variables of one server.
type Vars = Vec<(&'static str, String)>;

/// `STEPUP_PRESET`: each provider's tokens, roles where the provider puts them;
/// `STEPUP_ROLES_CLAIM` and `STEPUP_CLIENT` move them.
#[tokio::test]
async fn presets_find_roles_where_the_provider_puts_them() {
    use tower_stepup_dev_issuer::{DevShape, DEV_AUTH0_ROLES_CLAIM};

    let issuer = DevIssuer::start().await.unwrap();
    let client = reqwest::Client::new();
    let status = |url: String, token: String| {
        let request = client.get(url).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let cases: Vec<(DevShape, &str, Vars)> = vec![
        (DevShape::Keycloak, "keycloak", vec![]),
        (DevShape::Auth0, "auth0", vec![("STEPUP_ROLES_CLAIM", DEV_AUTH0_ROLES_CLAIM.to_owned())]),
        (DevShape::Entra, "entra", vec![]),
        (DevShape::Okta, "okta", vec![]),
    ];
    for (shape, name, extra) in cases {
        let mut vars = vec![
            ("STEPUP_DISCOVERY_URL", issuer.shape_issuer(shape)),
            ("STEPUP_ISSUER", issuer.shape_issuer(shape)),
            ("STEPUP_AUDIENCE", DEFAULT_AUDIENCE.to_owned()),
            ("STEPUP_PRESET", name.to_owned()),
        ];
        vars.extend(extra);
        let server = start_with(vars.iter(), Stdio::inherit()).await;
        let admin = issuer.shaped_token(shape).role("admin").mint();
        let user = issuer.shaped_token(shape).role("user").mint();
        assert_eq!(status(format!("{}/me", server.url), admin.clone()).await, 200, "{name}");
        assert_eq!(status(format!("{}/admin", server.url), admin).await, 200, "{name}");
        assert_eq!(status(format!("{}/admin", server.url), user).await, 403, "{name}");
        // The preset's `typ` holds: an RFC 9068 token of the same issuer is not this provider's.
        if shape != DevShape::Auth0 {
            let typed = issuer.shaped_token(shape).role("admin").typ(Some("at+jwt")).mint();
            assert_eq!(status(format!("{}/me", server.url), typed).await, 401, "{name}");
        }
    }

    // Keycloak client roles with STEPUP_CLIENT.
    let keycloak = |extra: Vec<(&'static str, String)>| {
        let mut vars = vec![
            ("STEPUP_DISCOVERY_URL", issuer.shape_issuer(DevShape::Keycloak)),
            ("STEPUP_ISSUER", issuer.shape_issuer(DevShape::Keycloak)),
            ("STEPUP_AUDIENCE", DEFAULT_AUDIENCE.to_owned()),
            ("STEPUP_PRESET", "keycloak".to_owned()),
        ];
        vars.extend(extra);
        vars
    };
    let client_admin = issuer.shaped_token(DevShape::Keycloak).client_roles("orders-api", ["admin"]).mint();
    let without = start_with(keycloak(vec![]).iter(), Stdio::inherit()).await;
    assert_eq!(status(format!("{}/admin", without.url), client_admin.clone()).await, 403);
    let with = start_with(keycloak(vec![("STEPUP_CLIENT", "orders-api".to_owned())]).iter(), Stdio::inherit()).await;
    assert_eq!(status(format!("{}/admin", with.url), client_admin).await, 200);

    // Generic (the default) with a nested roles claim.
    let nested = start(&issuer, &[("STEPUP_ROLES_CLAIM", "app.roles".to_owned())]).await;
    let token = issuer.access_token().custom_claim("app", serde_json::json!({"roles": ["admin"]})).mint();
    assert_eq!(status(format!("{}/admin", nested.url), token).await, 200);
    let flat = issuer.access_token().role("admin").mint();
    assert_eq!(status(format!("{}/admin", nested.url), flat).await, 403, "STEPUP_ROLES_CLAIM replaces `roles`");

    // A bad preset name stops the server at start.
    let output = std::process::Command::new(example_binary())
        .env_clear()
        .envs(keycloak(vec![("STEPUP_PRESET", "cognito".to_owned())]))
        .env("STEPUP_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("STEPUP_PRESET"));
}
