//! The tower-stepup demo: an embedded dev issuer and a small app with routes that
//! need step-up authentication.
//!
//! ```text
//! cargo run --example demo            # walk through the flow, then keep serving
//! cargo run --example demo -- --once  # walk through the flow and exit
//! ```
//!
//! Routes:
//! - `GET /public`: anyone.
//! - `GET /me`: any valid session.
//! - `GET /settings`: any MFA factor (TOTP, WebAuthn, SMS OTP) within 5 minutes.
//! - `GET /transfer`: WebAuthn or TOTP within 5 minutes, confirmed with the issuer
//!   on every request (`fresh()`): a revoked session is refused at once.
//! - `POST /logout`: revokes the session at the issuer.

use std::time::Duration;

use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_stepup::{
    CookieAttributes, FactorKind, Guard, GuardConfig, Requirement, Session, SessionLayer, StytchAuthority,
    StytchProject,
};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, DevSession};

const FIVE_MINUTES: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|arg| arg == "--once");
    let listen = std::env::var("STEPUP_DEMO_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let issuer = DevIssuer::start().await?;
    let project =
        StytchProject::consumer(issuer.project_id())?.with_base_url(issuer.base_url()).with_secret(issuer.secret());
    let authority = StytchAuthority::new(&project)?;

    let guards = GuardConfig::default()
        .with_acr_levels(["pwd", "mfa", "phr"])
        .with_factor_acr(FactorKind::TOTP, "mfa")
        .with_factor_acr(FactorKind::WEBAUTHN, "phr")
        .with_realm("demo");
    let sessions = SessionLayer::stytch(&project)
        .with_guard_config(guards)
        // The demo runs on plain http://127.0.0.1; real deployments keep `Secure`.
        .with_cookie_attributes(CookieAttributes::default().with_secure(false))
        .build()
        .await?;

    let any_mfa = Requirement::any_factor([FactorKind::TOTP, FactorKind::WEBAUTHN], Some(FIVE_MINUTES))
        .or(Requirement::factor(FactorKind::OTP).delivered_by("sms").within(FIVE_MINUTES));
    let strong = Requirement::any_factor([FactorKind::WEBAUTHN, FactorKind::TOTP], Some(FIVE_MINUTES));
    let app = Router::new()
        .route("/public", get(|| async { "public: no session needed\n" }))
        .route("/me", get(me))
        .route(
            "/settings",
            get(|| async { "settings: you recently used an MFA factor\n" }).route_layer(Guard::new(any_mfa)),
        )
        .route("/transfer", get(|| async { "transfer: sent\n" }).route_layer(Guard::new(strong).fresh()))
        .route(
            "/logout",
            post(move |session: Session| async move {
                match session.session_id() {
                    Some(id) => match authority.revoke(id).await {
                        Ok(()) => "logged out: session revoked at the issuer\n".into_response(),
                        Err(error) => (http::StatusCode::BAD_GATEWAY, format!("{error}\n")).into_response(),
                    },
                    None => (http::StatusCode::BAD_REQUEST, "no session id\n").into_response(),
                }
            }),
        )
        .layer(sessions);

    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {listen} ({error}); using a free port instead");
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    let app_url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    walkthrough(&issuer, &app_url).await?;
    if once {
        return Ok(());
    }
    println!("\nServing {app_url} (dev issuer {}); Ctrl-C to stop.", issuer.base_url());
    tokio::select! {
        result = server => { result??; }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

async fn me(session: Session) -> impl IntoResponse {
    Json(serde_json::json!({
        "sub": session.subject(),
        "session_id": session.session_id(),
        "factors": session.factors().iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(),
        "roles": session.roles(),
    }))
}

/// Plays the flow a newcomer would type with curl, and prints the commands.
async fn walkthrough(issuer: &DevIssuer, app: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let login = issuer.create_session("user-demo", vec![DevFactor::password()]);
    println!("tower-stepup demo\n=================\ndev issuer: {}\napp:        {app}\n", issuer.base_url());
    println!("Logged in with a password only. Try:\n");
    println!("  export JWT='{}'", login.session_jwt);
    println!("  export TOKEN='{}'\n", login.session_token);

    let steps: [(&str, &str, Option<&DevSession>); 3] =
        [("GET", "/public", None), ("GET", "/me", Some(&login)), ("GET", "/settings", Some(&login))];
    for (method, path, session) in steps {
        show(&client, method, app, path, session).await?;
    }

    println!("\nStep up with TOTP at the issuer (the dev issuer's login page stand-in):\n");
    println!(
        "  curl -s -X POST {}/dev/step-up -H 'content-type: application/json' -d '{{\"session_token\":\"'$TOKEN'\",\"factor\":\"totp\"}}'\n",
        issuer.base_url()
    );
    let stepped = issuer.add_factor(&login.session_token, DevFactor::totp()).ok_or("step-up failed")?;
    println!("  export JWT='{}'   # the new session JWT\n", stepped.session_jwt);
    show(&client, "GET", app, "/settings", Some(&stepped)).await?;
    show(&client, "GET", app, "/transfer", Some(&stepped)).await?;

    println!("\nLog out (revokes the session at the issuer):\n");
    show(&client, "POST", app, "/logout", Some(&stepped)).await?;
    println!("\nThe JWT is still valid locally for up to 5 minutes, so /me (local check) still works:\n");
    show(&client, "GET", app, "/me", Some(&stepped)).await?;
    println!("\n...but /transfer is fresh(): it asks the issuer, which says the session is gone:\n");
    show(&client, "GET", app, "/transfer", Some(&stepped)).await?;
    println!("\n...and once the revocation is known, every route refuses the session:\n");
    show(&client, "GET", app, "/me", Some(&stepped)).await?;
    Ok(())
}

async fn show(
    client: &reqwest::Client,
    method: &str,
    app: &str,
    path: &str,
    session: Option<&DevSession>,
) -> Result<(), Box<dyn std::error::Error>> {
    let auth = if session.is_some() { " -H \"Authorization: Bearer $JWT\"" } else { "" };
    let flag = if method == "GET" { String::new() } else { format!(" -X {method}") };
    println!("  $ curl -i{flag}{auth} {app}{path}");
    let mut request = client.request(method.parse()?, format!("{app}{path}"));
    if let Some(session) = session {
        request = request.bearer_auth(&session.session_jwt);
    }
    let response = request.send().await?;
    let status = response.status();
    let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.text().await?;
    println!("    {} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    if let Some(challenge) = challenge {
        println!("    WWW-Authenticate: {challenge}");
    }
    if !body.trim().is_empty() {
        println!("    {}", body.trim());
    }
    Ok(())
}
