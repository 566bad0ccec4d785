//! Black-box test of `examples/resource_server.rs`: the binary `cargo test` builds,
//! configured only through its environment, driven over HTTP.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tower_stepup::testing::{DevIssuer, DEFAULT_AUDIENCE};

fn example_binary() -> PathBuf {
    // target/<profile>/deps/resource_server-<hash> → target/<profile>/examples/resource_server
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
    _child: Child,
    url: String,
}

async fn start(issuer: &DevIssuer, extra: &[(&str, String)]) -> Server {
    let mut command = Command::new(example_binary());
    command
        .env_clear()
        .env("STEPUP_LISTEN", "127.0.0.1:0")
        .env("STEPUP_JWKS_URL", issuer.jwks_url())
        .env("STEPUP_ISSUER", issuer.issuer())
        .env("STEPUP_AUDIENCE", DEFAULT_AUDIENCE)
        .env("STEPUP_TYP", "at+jwt")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (name, value) in extra {
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
    Server { _child: child, url }
}

#[tokio::test]
async fn the_documented_contract_holds() {
    let issuer = DevIssuer::start().await.unwrap();
    let introspection = [
        ("STEPUP_INTROSPECTION_URL", issuer.introspection_url()),
        ("STEPUP_CLIENT_ID", issuer.client_id().to_owned()),
        ("STEPUP_CLIENT_SECRET", issuer.client_secret().to_owned()),
    ];
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
}

#[tokio::test]
async fn misconfiguration_is_a_clear_error_not_a_panic() {
    let output = Command::new(example_binary()).env_clear().output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STEPUP_ISSUER is required"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
