//! The tower-stepup demo: just-in-time step-up authentication in a browser.
//!
//! ```text
//! cargo run --example demo            # serve http://127.0.0.1:3000 until Ctrl-C
//! cargo run --example demo -- --once  # play the flow over HTTP, check it, and exit (CI)
//! ```
//!
//! `STEPUP_DEMO_LISTEN` changes the address (`127.0.0.1:0`: any free port). The
//! Stytch-like dev issuer runs embedded; the app talks to it as a real app talks to
//! Stytch's API (`otps/email/login_or_create`, `otps/authenticate`,
//! `totps/authenticate`), and shows the codes it would have mailed (dev mode).
//!
//! Pages (plain HTML forms with inline CSS: no JavaScript, no external assets):
//! - `/sign-in`: an email address, then the one-time code: the session starts
//!   with an email OTP factor; its cookies are written by the library
//!   ([`SignIn`]).
//! - `/dashboard`: any session. Its factors and how long ago each was used, the
//!   JWT's remaining lifetime, when the issuer last saw the session, and the
//!   user's other sessions ([`SessionControl::sessions`]).
//! - `/settings`: a second factor (TOTP or WebAuthn) within 5 minutes; else the
//!   guard sends the browser to `/step-up`, which asks for a TOTP code and comes
//!   back (`return_to`), now allowed ([`SessionControl::complete_step_up`]).
//! - `/send-money`: the same, confirmed with the issuer on every request
//!   (`fresh()`), and only from the network and browser the session began in
//!   (`same_context()`): a session revoked elsewhere, or a cookie replayed from
//!   another machine, is refused at once.
//! - "Sign out other devices" and "Sign out": revoked at the issuer; every route
//!   refuses those sessions from the next request on.
//!
//! Cookies are `HttpOnly` and `SameSite=Lax`; `Secure` is off only because the
//! demo serves plain `http://127.0.0.1` (keep it on anywhere else). Forms are
//! protected against cross-site request forgery by tower-http's `CsrfLayer`
//! (`Sec-Fetch-Site` / `Origin` checks, no tokens to thread through the forms).

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::csrf::CsrfLayer;
use tower_stepup::{
    safe_return_to, CookieAttributes, FactorKind, Guard, GuardConfig, RenewedTokens, Requirement, Session,
    SessionControl, SessionLayer, SignIn, StytchProject, DEFAULT_TOKEN_COOKIE,
};
use tower_stepup_dev_issuer::{DevIssuer, DEV_TOTP_CODE};

const FIVE_MINUTES: Duration = Duration::from_secs(300);
/// How long a session started by the sign-in lasts at the issuer.
const SESSION_MINUTES: u64 = 60;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let once = std::env::args().any(|arg| arg == "--once");
    let listen = std::env::var("STEPUP_DEMO_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let issuer = DevIssuer::start().await?;
    let app = app(&issuer).await?;
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {listen} ({error}); using a free port instead");
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    let url = format!("http://{}", listener.local_addr()?);
    // The peer address is what `same_context()` compares with the session's.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    if once {
        return self_check(&issuer, &url).await;
    }
    println!("tower-stepup demo: open {url}/ in a browser (Ctrl-C to stop)");
    println!("dev issuer (Stytch-like API) at {}", issuer.base_url());
    tokio::select! {
        result = server => { result??; }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// The demo app, talking to `issuer`: what `main` serves, and what the browser
/// test serves on a port of its own. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: `same_context()` needs
/// the client's address.
pub(crate) async fn app(issuer: &DevIssuer) -> Result<Router, Box<dyn Error>> {
    let project =
        StytchProject::consumer(issuer.project_id())?.with_base_url(issuer.base_url()).with_secret(issuer.secret());
    let guards = GuardConfig::default()
        .with_factor_acr(FactorKind::TOTP, "mfa")
        .with_factor_acr(FactorKind::WEBAUTHN, "mfa")
        .with_login_url("/sign-in")
        .with_step_up_url("/step-up")
        .with_realm("demo");
    let sessions = SessionLayer::stytch(&project)
        .with_guard_config(guards)
        // Plain http://127.0.0.1 only: real deployments keep `Secure` (the default).
        .with_cookie_attributes(CookieAttributes::default().with_secure(false))
        .build()
        .await?;

    let second_factor = || Requirement::any_factor([FactorKind::TOTP, FactorKind::WEBAUTHN], Some(FIVE_MINUTES));
    let money = second_factor().and(Requirement::same_context());
    let state = Demo { issuer: issuer.clone(), stytch: Stytch::new(issuer) };
    let csrf = CsrfLayer::new().with_rejection_response(|_| {
        let body = page(
            "Refused",
            r#"<p id="csrf-refused">This form was sent from another site: refused (CSRF protection).</p>"#,
        );
        (StatusCode::FORBIDDEN, body).into_response()
    });
    Ok(Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/sign-in", get(sign_in_page).post(send_code))
        .route("/sign-in/code", get(code_page).post(check_code))
        .route("/dashboard", get(dashboard).route_layer(Guard::authenticated()))
        .route("/settings", get(settings).route_layer(Guard::new(second_factor())))
        .route("/step-up", get(step_up_page).post(step_up).route_layer(Guard::authenticated()))
        .route("/send-money", get(send_money_page).post(send_money).route_layer(Guard::new(money).fresh()))
        .route("/sign-out-others", post(sign_out_others).route_layer(Guard::authenticated().fresh()))
        .route("/sign-out", post(sign_out).route_layer(Guard::authenticated()))
        .with_state(state)
        .layer(sessions)
        .layer(csrf))
}

#[derive(Clone)]
struct Demo {
    /// Only for dev mode: the codes a real issuer would have sent.
    issuer: DevIssuer,
    stytch: Stytch,
}

/// The few calls to Stytch's API the pages make (the dev issuer answers them).
#[derive(Clone)]
struct Stytch {
    client: reqwest::Client,
    base_url: String,
    project_id: String,
    secret: String,
}

impl Stytch {
    fn new(issuer: &DevIssuer) -> Self {
        Self {
            client: reqwest::Client::new(),
            base_url: issuer.base_url(),
            project_id: issuer.project_id().to_owned(),
            secret: issuer.secret().to_owned(),
        }
    }

    /// `POST {path}` with the project's credentials; Stytch's `error_message` on failure.
    async fn call(&self, path: &str, body: Value) -> Result<Value, String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .basic_auth(&self.project_id, Some(&self.secret))
            .json(&body)
            .send()
            .await
            .map_err(|error| format!("the issuer did not answer ({error})"))?;
        let ok = response.status().is_success();
        let answer: Value = response.json().await.map_err(|_| "the issuer answered garbage".to_owned())?;
        if ok {
            Ok(answer)
        } else {
            Err(answer["error_message"].as_str().unwrap_or("the issuer refused").to_owned())
        }
    }
}

/// The session tokens of a Stytch answer.
fn tokens_of(answer: &Value) -> RenewedTokens {
    RenewedTokens::new()
        .with_session_jwt(answer["session_jwt"].as_str().unwrap_or_default())
        .with_session_token(answer["session_token"].as_str().unwrap_or_default())
}

/// Where to go after a form: a same-site path only (never an open redirect).
fn back_to(return_to: Option<&str>) -> String {
    return_to.and_then(safe_return_to).unwrap_or("/dashboard").to_owned()
}

// ---- Sign-in: email, then the one-time code ------------------------------------

#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

async fn sign_in_page(Query(query): Query<ReturnTo>) -> Html<String> {
    sign_in_form(query.return_to.as_deref(), None)
}

fn sign_in_form(return_to: Option<&str>, error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!(r#"<p class="error" id="error">{}</p>"#, esc(e))).unwrap_or_default();
    page(
        "Sign in",
        &format!(
            r#"{error}<p>Sign in with your email address: we send you a one-time code.</p>
<form method="post" action="/sign-in">
  <input type="hidden" name="return_to" value="{}">
  <label>Email <input type="email" name="email" id="email" required autofocus></label>
  <button type="submit" id="send-code">Send me a code</button>
</form>"#,
            esc(&back_to(return_to))
        ),
    )
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
    return_to: Option<String>,
}

async fn send_code(State(demo): State<Demo>, Form(form): Form<EmailForm>) -> Response {
    let body = json!({ "email": form.email, "expiration_minutes": 10 });
    match demo.stytch.call("/v1/otps/email/login_or_create", body).await {
        Ok(answer) => {
            let query = [
                ("email", form.email.as_str()),
                ("email_id", answer["email_id"].as_str().unwrap_or_default()),
                ("return_to", &back_to(form.return_to.as_deref())),
            ];
            Redirect::to(&format!("/sign-in/code?{}", encode_query(&query))).into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, sign_in_form(form.return_to.as_deref(), Some(&error))).into_response(),
    }
}

#[derive(Deserialize)]
struct CodeQuery {
    email: String,
    email_id: String,
    return_to: Option<String>,
}

async fn code_page(State(demo): State<Demo>, Query(query): Query<CodeQuery>) -> Html<String> {
    code_form(&demo, &query, None)
}

fn code_form(demo: &Demo, query: &CodeQuery, error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!(r#"<p class="error" id="error">{}</p>"#, esc(e))).unwrap_or_default();
    let sent = demo.issuer.sent_email_otp(&query.email).map_or_else(
        || "<p class=\"dev\">Dev mode: no live code for this address; go back and ask for one.</p>".to_owned(),
        |code| format!(r#"<p class="dev">Dev mode: the code mailed to you is <code id="dev-code">{code}</code></p>"#),
    );
    page(
        "Enter your code",
        &format!(
            r#"{error}<p>We sent a one-time code to <b>{email}</b>.</p>{sent}
<form method="post" action="/sign-in/code">
  <input type="hidden" name="email" value="{email}">
  <input type="hidden" name="email_id" value="{email_id}">
  <input type="hidden" name="return_to" value="{return_to}">
  <label>Code <input name="code" id="code" inputmode="numeric" autocomplete="one-time-code" required autofocus></label>
  <button type="submit" id="sign-in">Sign in</button>
</form>"#,
            email = esc(&query.email),
            email_id = esc(&query.email_id),
            return_to = esc(&back_to(query.return_to.as_deref())),
        ),
    )
}

#[derive(Deserialize)]
struct CodeForm {
    email: String,
    email_id: String,
    code: String,
    return_to: Option<String>,
}

async fn check_code(
    State(demo): State<Demo>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    sign_in: SignIn,
    Form(form): Form<CodeForm>,
) -> Response {
    let query = CodeQuery { email: form.email, email_id: form.email_id, return_to: form.return_to };
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let body = json!({
        "method_id": query.email_id,
        "code": form.code.trim(),
        "session_duration_minutes": SESSION_MINUTES,
        // Where the session begins: what `same_context()` compares requests with.
        "attributes": { "ip_address": peer.ip().to_string(), "user_agent": user_agent },
    });
    let refused = |error: &str| (StatusCode::UNAUTHORIZED, code_form(&demo, &query, Some(error))).into_response();
    let answer = match demo.stytch.call("/v1/otps/authenticate", body).await {
        Ok(answer) => answer,
        Err(error) => return refused(&error),
    };
    // The library checks the new tokens and writes them as the session cookies.
    match sign_in.complete(tokens_of(&answer)).await {
        Ok(signed_in) => (signed_in, Redirect::to(&back_to(query.return_to.as_deref()))).into_response(),
        Err(error) => refused(&format!("The new session did not verify: {error}")),
    }
}

// ---- The dashboard ----------------------------------------------------------------

#[derive(Deserialize)]
struct Notice {
    ended: Option<usize>,
}

async fn dashboard(control: SessionControl, Query(notice): Query<Notice>) -> Html<String> {
    let session = control.session();
    let now = SystemTime::now();
    let mut body = String::new();
    if let Some(ended) = notice.ended {
        let _ = write!(body, r#"<p class="notice" id="notice">Signed out {ended} other session(s).</p>"#);
    }
    let _ = write!(
        body,
        r#"<p>Signed in as <code id="user">{}</code>, session <code id="session-id">{}</code>.</p>
<h2>How you signed in</h2><table id="factors"><tr><th>Factor</th><th>Delivered by</th><th>Used</th></tr>"#,
        esc(session.subject()),
        esc(session.session_id().unwrap_or("?")),
    );
    for factor in session.factors() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(factor.kind().as_str()),
            esc(factor.delivery_method().unwrap_or("")),
            factor.last_authenticated_at().map_or_else(|| "?".to_owned(), |at| ago(at, now)),
        );
    }
    let _ = write!(
        body,
        r#"</table>
<h2>This session</h2><table>
<tr><th>Session JWT expires</th><td id="jwt-expires">{}</td></tr>
<tr><th>Issuer last confirmed it</th><td>{}</td></tr>
<tr><th>Session ends</th><td>{}</td></tr></table>"#,
        session.expires_at().map_or_else(|| "?".to_owned(), |at| until(at, now)),
        session.last_accessed_at().or(session.issued_at()).map_or_else(|| "?".to_owned(), |at| ago(at, now)),
        session.session_expires_at().map_or_else(|| "?".to_owned(), |at| until(at, now)),
    );
    body.push_str("<h2>Your sessions</h2>");
    match control.sessions().await {
        Ok(sessions) => {
            body.push_str(r#"<table id="sessions"><tr><th>Session</th><th>Started</th><th>Factors</th></tr>"#);
            for other in &sessions {
                let this = other.session_id() == session.session_id();
                let factors: Vec<&str> = other.factors().iter().map(|f| f.kind().as_str()).collect();
                let _ = write!(
                    body,
                    "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(other.session_id().unwrap_or("?")),
                    if this { " (this browser)" } else { "" },
                    other.started_at().map_or_else(|| "?".to_owned(), |at| ago(at, now)),
                    esc(&factors.join(", ")),
                );
            }
            body.push_str("</table>");
        }
        Err(error) => {
            let _ = write!(
                body,
                r#"<p class="error">The issuer did not list your sessions: {}</p>"#,
                esc(&error.to_string())
            );
        }
    }
    body.push_str(
        r#"<h2>Try step-up</h2>
<p><a href="/settings" id="settings">Security settings</a> needs a second factor used within 5 minutes.</p>
<p><a href="/send-money" id="send-money">Send money</a> needs one too, confirmed with the issuer on every request.</p>
<h2>Sign out</h2>
<form method="post" action="/sign-out-others"><button id="sign-out-others">Sign out other devices</button></form>
<form method="post" action="/sign-out"><button id="sign-out">Sign out</button></form>"#,
    );
    page("Dashboard", &body)
}

// ---- Step-up ----------------------------------------------------------------------

async fn settings(session: Session) -> Html<String> {
    let now = SystemTime::now();
    let totp = session.factor_authenticated_at(&FactorKind::TOTP).map_or_else(|| "never".to_owned(), |at| ago(at, now));
    page(
        "Security settings",
        &format!(
            r#"<p id="allowed">Allowed: you used a second factor recently (TOTP {totp}).</p>
<p>Come back in 5 minutes and you will be asked again.</p><p><a href="/dashboard">Dashboard</a></p>"#
        ),
    )
}

#[derive(Deserialize)]
struct StepUpQuery {
    return_to: Option<String>,
    max_age: Option<String>,
}

async fn step_up_page(Query(query): Query<StepUpQuery>) -> Html<String> {
    if query.max_age.as_deref() == Some("0") {
        // `same_context()` failed: only a sign-in from here records the new context.
        let sign_in = format!("/sign-in?return_to={}", percent(&back_to(query.return_to.as_deref())));
        return page(
            "Sign in again",
            &format!(
                r#"<p id="new-context">You are not on the network or in the browser this session began in.
To do this from here, sign in again.</p><p><a href="{}" id="sign-in-again">Sign in again</a></p>"#,
                esc(&sign_in)
            ),
        );
    }
    step_up_form(query.return_to.as_deref(), None)
}

fn step_up_form(return_to: Option<&str>, error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!(r#"<p class="error" id="error">{}</p>"#, esc(e))).unwrap_or_default();
    page(
        "Confirm it's you",
        &format!(
            r#"{error}<p>This page needs a second factor used within the last 5 minutes.
Enter the code of your authenticator app.</p>
<p class="dev">Dev mode: the dev issuer accepts <code id="dev-totp">{DEV_TOTP_CODE}</code></p>
<form method="post" action="/step-up">
  <input type="hidden" name="return_to" value="{}">
  <label>Code <input name="code" id="code" inputmode="numeric" autocomplete="one-time-code" required autofocus></label>
  <button type="submit" id="verify">Verify</button>
</form>"#,
            esc(&back_to(return_to))
        ),
    )
}

#[derive(Deserialize)]
struct StepUpForm {
    code: String,
    return_to: Option<String>,
}

async fn step_up(
    State(demo): State<Demo>,
    control: SessionControl,
    headers: HeaderMap,
    Form(form): Form<StepUpForm>,
) -> Response {
    let refused =
        |error: &str| (StatusCode::UNAUTHORIZED, step_up_form(form.return_to.as_deref(), Some(error))).into_response();
    // The app's own session cookie names the session to step up at the issuer.
    let Some(session_token) = cookie(&headers, DEFAULT_TOKEN_COOKIE) else {
        return refused("No session token cookie to step up.");
    };
    let body = json!({
        "user_id": control.session().subject(),
        "totp_code": form.code.trim(),
        "session_token": session_token,
    });
    let answer = match demo.stytch.call("/v1/totps/authenticate", body).await {
        Ok(answer) => answer,
        Err(error) => return refused(&error),
    };
    // The library checks the new tokens belong to this session, learns the
    // stepped-up session and writes its cookies.
    match control.complete_step_up(tokens_of(&answer)).await {
        Ok(stepped_up) => (stepped_up, Redirect::to(&back_to(form.return_to.as_deref()))).into_response(),
        Err(error) => refused(&format!("The stepped-up session did not verify: {error}")),
    }
}

/// A cookie of the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

// ---- Send money -------------------------------------------------------------------

async fn send_money_page() -> Html<String> {
    page(
        "Send money",
        r#"<form method="post" action="/send-money">
  <label>To <input name="to" id="to" value="Alice" required></label>
  <label>Amount (EUR) <input name="amount" id="amount" value="25" inputmode="decimal" required></label>
  <button type="submit" id="send">Send</button>
</form><p><a href="/dashboard">Dashboard</a></p>"#,
    )
}

#[derive(Deserialize)]
struct Transfer {
    to: String,
    amount: String,
}

async fn send_money(Form(transfer): Form<Transfer>) -> Html<String> {
    page(
        "Sent",
        &format!(
            r#"<p id="sent">Sent EUR {} to {} (the issuer confirmed your session just now).</p><p><a href="/dashboard">Dashboard</a></p>"#,
            esc(&transfer.amount),
            esc(&transfer.to)
        ),
    )
}

// ---- Sign out ---------------------------------------------------------------------

async fn sign_out_others(control: SessionControl) -> Response {
    match control.revoke_other_sessions().await {
        Ok(ended) => Redirect::to(&format!("/dashboard?ended={ended}")).into_response(),
        Err(error) => {
            (StatusCode::BAD_GATEWAY, page("Sign out other devices", &esc(&error.to_string()))).into_response()
        }
    }
}

async fn sign_out(control: SessionControl) -> Response {
    // Refused here from the next request on, whatever the issuer answered.
    let note = match control.revoke().await {
        Ok(()) => "You are signed out.",
        Err(_) => "You are signed out here; the issuer did not answer, so it may still list the session.",
    };
    let body = format!(r#"<p id="signed-out">{note}</p><p><a href="/sign-in">Sign in again</a></p>"#);
    (control.cleared_cookies(), page("Signed out", &body)).into_response()
}

// ---- HTML -------------------------------------------------------------------------

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2330}\
h1{font-size:1.6rem}h2{font-size:1.1rem;margin-top:1.6rem}header{border-bottom:1px solid #dde;margin-bottom:1rem}\
header a{margin-right:1rem}table{border-collapse:collapse}td,th{padding:.2rem .8rem .2rem 0;text-align:left}\
label{display:block;margin:.5rem 0}input{font:inherit;padding:.3rem}button{font:inherit;padding:.3rem .9rem;margin:.3rem 0}\
.error{color:#a01818}.notice{color:#17603a}.dev{background:#fff6d6;padding:.4rem .6rem;border-radius:4px}\
code{background:#eef;padding:0 .2rem}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · tower-stepup demo</title>
<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>
<body><header><b>tower-stepup demo</b> · <a href="/dashboard">Dashboard</a><a href="/settings">Security settings</a><a href="/send-money">Send money</a></header>
<h1>{title}</h1>
{body}
</body></html>"#,
        title = esc(title)
    ))
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(name, value)| format!("{}={}", percent(name), percent(value))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
fn percent(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn ago(at: SystemTime, now: SystemTime) -> String {
    match now.duration_since(at) {
        Ok(age) => format!("{} ago", human(age)),
        Err(_) => "just now".to_owned(),
    }
}

fn until(at: SystemTime, now: SystemTime) -> String {
    match at.duration_since(now) {
        Ok(left) => format!("in {}", human(left)),
        Err(past) => format!("{} ago (expired)", human(past.duration())),
    }
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

// ---- --once: the flow over plain HTTP ------------------------------------------------

/// Plays the browser flow with an HTTP client that keeps cookies by hand, and
/// fails on the first surprise: what CI runs.
async fn self_check(issuer: &DevIssuer, url: &str) -> Result<(), Box<dyn Error>> {
    let mut browser = Visitor::new(url)?;
    let email = "newcomer@example.com";
    println!("tower-stepup demo self-check against {url}");

    let to_sign_in = browser.get("/dashboard").await?;
    check(to_sign_in.location.starts_with("/sign-in?"), "signed out, the dashboard sends to sign-in", &to_sign_in)?;
    let sent = browser.post("/sign-in", &[("email", email), ("return_to", "/dashboard")]).await?;
    check(sent.location.starts_with("/sign-in/code?"), "the sign-in sends a code", &sent)?;
    let form = browser.get(&sent.location).await?;
    let code = issuer.sent_email_otp(email).ok_or("no code was sent")?;
    check(form.body.contains(&code), "the code page shows the code (dev mode)", &form)?;
    let email_id = form.body.split(r#"name="email_id" value=""#).nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
    let signed_in = browser
        .post(
            "/sign-in/code",
            &[("email", email), ("email_id", email_id), ("code", &code), ("return_to", "/dashboard")],
        )
        .await?;
    check(signed_in.location == "/dashboard", "the code signs in", &signed_in)?;
    let dashboard = browser.get("/dashboard").await?;
    check(
        dashboard.status == 200 && dashboard.body.contains("email"),
        "the dashboard lists the email factor",
        &dashboard,
    )?;

    let to_step_up = browser.get("/settings").await?;
    check(
        to_step_up.location.starts_with("/step-up?return_to=%2Fsettings"),
        "settings ask for a step-up",
        &to_step_up,
    )?;
    let stepped = browser.post("/step-up", &[("code", DEV_TOTP_CODE), ("return_to", "/settings")]).await?;
    check(stepped.location == "/settings", "the TOTP code steps up and returns", &stepped)?;
    let settings = browser.get("/settings").await?;
    check(settings.status == 200 && settings.body.contains("Allowed"), "settings are now allowed", &settings)?;
    let sent_money = browser.post("/send-money", &[("to", "Alice"), ("amount", "25")]).await?;
    check(sent_money.status == 200 && sent_money.body.contains("Sent EUR 25"), "send money works", &sent_money)?;
    browser.user_agent = "Another browser/1.0";
    let elsewhere = browser.post("/send-money", &[("to", "Mallory"), ("amount", "999")]).await?;
    check(
        elsewhere.location.contains("max_age=0"),
        "the cookies replayed from another browser cannot send money",
        &elsewhere,
    )?;
    browser.user_agent = USER_AGENT;

    let cookies = browser.cookies.clone();
    let signed_out = browser.post("/sign-out", &[]).await?;
    check(signed_out.status == 200 && browser.cookies.is_empty(), "sign out clears the cookies", &signed_out)?;
    browser.cookies = cookies;
    let replayed = browser.get("/dashboard").await?;
    check(replayed.location.starts_with("/sign-in?"), "the revoked session's cookies are refused", &replayed)?;
    println!("all good");
    Ok(())
}

fn check(ok: bool, what: &str, response: &Visited) -> Result<(), Box<dyn Error>> {
    if ok {
        println!("  ok  {what}");
        Ok(())
    } else {
        Err(format!("FAILED: {what} (got {} {:?})", response.status, response.location).into())
    }
}

/// The self-check's browser name, recorded by the session it starts.
const USER_AGENT: &str = "tower-stepup demo self-check";

/// A cookie-keeping HTTP client that does not follow redirects.
struct Visitor {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    user_agent: &'static str,
}

struct Visited {
    status: u16,
    location: String,
    body: String,
}

impl Visitor {
    fn new(base: &str) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { client, base: base.to_owned(), cookies: BTreeMap::new(), user_agent: USER_AGENT })
    }

    async fn get(&mut self, path: &str) -> Result<Visited, reqwest::Error> {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Visited, reqwest::Error> {
        self.send(self.client.post(format!("{}{path}", self.base)).form(form)).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<Visited, reqwest::Error> {
        let jar: Vec<String> = self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let mut request = request.header(header::ACCEPT, "text/html").header(header::USER_AGENT, self.user_agent);
        if !jar.is_empty() {
            request = request.header(header::COOKIE, jar.join("; "));
        }
        let response = request.send().await?;
        for value in response.headers().get_all(header::SET_COOKIE) {
            if let Some(cookie) = value.to_str().ok().and_then(|v| cookie::Cookie::parse(v.to_owned()).ok()) {
                if cookie.max_age() == Some(cookie::time::Duration::ZERO) {
                    self.cookies.remove(cookie.name());
                } else {
                    self.cookies.insert(cookie.name().to_owned(), cookie.value().to_owned());
                }
            }
        }
        let status = response.status().as_u16();
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = response.text().await?;
        Ok(Visited { status, location, body })
    }
}
