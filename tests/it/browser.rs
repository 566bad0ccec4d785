//! The demo (`examples/demo.rs`, served in-process) in a real browser: Debian's
//! `chromium`, headless, driven through `chromedriver` with WebDriver.
//!
//! A missing browser or driver fails the test (install `chromium` and
//! `chromium-driver`); it never skips. `STEPUP_CHROMEDRIVER` names another
//! driver binary. One screenshot per step lands in
//! `target/tmp/demo-screenshots/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use fantoccini::cookies::Cookie;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, DEV_TOTP_CODE};

#[allow(dead_code)]
#[path = "../../examples/demo.rs"]
mod demo;

/// The flags the issue asks for, plus `--headless` and a fresh profile per run.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// A chromedriver process on a free port, killed on drop.
struct ChromeDriver {
    _child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> Self {
        let binary = std::env::var("STEPUP_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = free_port().await;
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start `{binary}` ({error}): install Debian's chromium and chromium-driver")
            });
        // Ready when it accepts connections; a driver that never does fails the test.
        let address = format!("127.0.0.1:{port}");
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return Self { _child: child, url: format!("http://{address}") };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{binary}` did not listen on {address} within 30 s");
    }

    /// A new headless Chromium session with a fresh user-data dir.
    async fn browser(&self, profile: &tempfile::TempDir) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), json!({ "args": args }));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("chromedriver could not start chromium: {error}"));
        client.set_window_size(900, 1000).await.expect("window size");
        client
    }
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Serves `router` on a free loopback port, with the peer address `same_context()` reads.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    url
}

/// Saves one screenshot per step.
struct Screenshots {
    dir: PathBuf,
    step: u32,
}

impl Screenshots {
    fn new() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        Self { dir, step: 0 }
    }

    async fn take(&mut self, browser: &Client, name: &str) {
        self.step += 1;
        let png = browser.screenshot().await.expect("screenshot");
        let path = self.dir.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, png).expect("write screenshot");
    }
}

/// The path and query of the page the browser shows.
async fn location(browser: &Client) -> String {
    let url = browser.current_url().await.expect("current url");
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn text(browser: &Client, id: &str) -> String {
    browser.wait().for_element(Locator::Id(id)).await.unwrap_or_else(|_| panic!("no #{id}")).text().await.expect("text")
}

async fn fill(browser: &Client, id: &str, value: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap_or_else(|_| panic!("no #{id}"));
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

async fn click(browser: &Client, id: &str) {
    browser.find(Locator::Id(id)).await.unwrap_or_else(|_| panic!("no #{id}")).click().await.expect("click");
}

async fn open(browser: &Client, url: &str) {
    browser.goto(url).await.unwrap_or_else(|error| panic!("goto {url}: {error}"));
}

/// Signs in through the pages with `email`; returns the session id the dashboard shows.
async fn sign_in(browser: &Client, app: &str, email: &str, shots: Option<&mut Screenshots>) -> String {
    open(browser, &format!("{app}/dashboard")).await;
    assert_eq!(
        location(browser).await,
        "/sign-in?return_to=%2Fdashboard",
        "signed out: the dashboard sends to sign-in"
    );
    fill(browser, "email", email).await;
    let mut shots = shots;
    if let Some(shots) = &mut shots {
        shots.take(browser, "sign-in").await;
    }
    click(browser, "send-code").await;
    let code = text(browser, "dev-code").await;
    assert_eq!(code.len(), 6, "the page shows the six-digit code: {code:?}");
    fill(browser, "code", &code).await;
    if let Some(shots) = &mut shots {
        shots.take(browser, "code").await;
    }
    click(browser, "sign-in").await;
    let session_id = text(browser, "session-id").await;
    assert_eq!(location(browser).await, "/dashboard");
    session_id
}

async fn session_cookie(browser: &Client, name: &str) -> Cookie<'static> {
    browser.get_named_cookie(name).await.unwrap_or_else(|_| panic!("no {name} cookie"))
}

/// A second sign-in of the same address, elsewhere: through the issuer's API, as
/// another device's app would. Returns Stytch's answer (`session_jwt`,
/// `session_token`, `session`).
async fn sign_in_elsewhere(issuer: &DevIssuer, email: &str) -> Value {
    let client = reqwest::Client::new();
    let call = |path: &str, body: Value| {
        client
            .post(format!("{}{path}", issuer.base_url()))
            .basic_auth(issuer.project_id(), Some(issuer.secret()))
            .json(&body)
            .send()
    };
    let sent: Value =
        call("/v1/otps/email/login_or_create", json!({ "email": email })).await.unwrap().json().await.unwrap();
    let code = issuer.sent_email_otp(email).expect("a code was sent");
    let body = json!({ "method_id": sent["email_id"], "code": code, "session_duration_minutes": 60 });
    let answer: Value = call("/v1/otps/authenticate", body).await.unwrap().json().await.unwrap();
    assert!(answer["session_jwt"].is_string(), "{answer}");
    answer
}

/// A correctly signed session JWT of `session` that expired five minutes ago.
fn expired_jwt(issuer: &DevIssuer, user: &str, session: &str) -> String {
    issuer
        .stytch_session()
        .subject(user)
        .session_id(session)
        .issued_at(SystemTime::now() - Duration::from_secs(600))
        .lifetime(Duration::from_secs(300))
        .factor(DevFactor::email_otp())
        .mint()
}

/// A session cookie as the app writes it, for `add_cookie`.
fn app_cookie(name: &str, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(name.to_owned(), value);
    // Host-only on the app's host, as the app writes it.
    cookie.set_domain("127.0.0.1");
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_same_site(cookie::SameSite::Lax);
    cookie
}

/// A page on another origin whose form posts to the app's sign-out.
fn attacker_site(app: &str) -> Router {
    let page = format!(
        r#"<!doctype html><form method="post" action="{app}/sign-out"><button id="attack">Win a prize</button></form>"#
    );
    Router::new().route("/", get(move || async move { Html(page) }))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_in_chromium() {
    let issuer = DevIssuer::start().await.expect("dev issuer");
    let app = serve(demo::app(&issuer).await.expect("demo app")).await;
    let attacker = serve(attacker_site(&app)).await;
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = driver.browser(&profile).await;
    let mut shots = Screenshots::new();
    let email = "ada@example.com";

    // Sign in with an email code: the dashboard shows the email OTP factor.
    let session_id = sign_in(&browser, &app, email, Some(&mut shots)).await;
    let factors = text(&browser, "factors").await;
    assert!(factors.contains("otp") && factors.contains("email"), "{factors}");
    assert!(text(&browser, "jwt-expires").await.starts_with("in "), "the JWT is live");
    shots.take(&browser, "dashboard").await;
    // The cookies were written by the library: HttpOnly, SameSite=Lax, not Secure
    // (plain http on loopback only).
    for name in ["stytch_session_jwt", "stytch_session"] {
        let cookie = session_cookie(&browser, name).await;
        assert_eq!(cookie.http_only(), Some(true), "{name}");
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{name}");
        assert_ne!(cookie.secure(), Some(true), "{name}");
    }

    // Security settings: a step-up to TOTP, then back where the user was.
    click(&browser, "settings").await;
    let step_up = location(&browser).await;
    assert!(step_up.starts_with("/step-up?return_to=%2Fsettings"), "{step_up}");
    assert_eq!(text(&browser, "dev-totp").await, DEV_TOTP_CODE);
    fill(&browser, "code", DEV_TOTP_CODE).await;
    shots.take(&browser, "step-up").await;
    fill(&browser, "code", "123456").await;
    click(&browser, "verify").await;
    assert!(text(&browser, "error").await.contains("could not be found"), "a wrong code is refused");
    fill(&browser, "code", DEV_TOTP_CODE).await;
    click(&browser, "verify").await;
    assert!(text(&browser, "allowed").await.starts_with("Allowed"));
    assert_eq!(location(&browser).await, "/settings");
    shots.take(&browser, "settings").await;

    // Send money: the second factor is recent, the issuer confirms the session.
    open(&browser, &format!("{app}/send-money")).await;
    click(&browser, "send").await;
    assert_eq!(text(&browser, "sent").await, "Sent EUR 25 to Alice (the issuer confirmed your session just now).");
    shots.take(&browser, "sent").await;

    // Another device of the same user: listed, then signed out from here.
    let other = sign_in_elsewhere(&issuer, email).await;
    open(&browser, &format!("{app}/dashboard")).await;
    let sessions = text(&browser, "sessions").await;
    assert_eq!(sessions.lines().count(), 3, "a header and two sessions: {sessions}");
    assert!(sessions.contains(&format!("{session_id} (this browser)")), "{sessions}");
    click(&browser, "sign-out-others").await;
    assert_eq!(text(&browser, "notice").await, "Signed out 1 other session(s).");
    let sessions = text(&browser, "sessions").await;
    assert_eq!(sessions.lines().count(), 2, "only this browser's session is left: {sessions}");
    let other = reqwest::Client::new()
        .get(format!("{app}/dashboard"))
        .bearer_auth(other["session_jwt"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401, "the other device's session is refused");

    // A form on another site cannot sign the user out (CSRF protection).
    open(&browser, &attacker).await;
    click(&browser, "attack").await;
    let refused = text(&browser, "csrf-refused").await;
    assert!(refused.ends_with("refused (CSRF protection)."), "{refused}");
    open(&browser, &format!("{app}/dashboard")).await;
    assert_eq!(text(&browser, "session-id").await, session_id, "still signed in");

    // Sign out: the session ends at the issuer and here.
    let before =
        [session_cookie(&browser, "stytch_session_jwt").await, session_cookie(&browser, "stytch_session").await];
    click(&browser, "sign-out").await;
    assert_eq!(text(&browser, "signed-out").await, "You are signed out.");
    shots.take(&browser, "signed-out").await;
    for path in ["/send-money", "/dashboard"] {
        open(&browser, &format!("{app}{path}")).await;
        assert!(location(&browser).await.starts_with("/sign-in?"), "{path} after sign-out");
    }
    // Even with the old cookies put back, every route refuses the revoked session.
    for cookie in before {
        browser.add_cookie(cookie).await.expect("put the old cookie back");
    }
    for path in ["/send-money", "/dashboard", "/settings"] {
        open(&browser, &format!("{app}{path}")).await;
        assert!(location(&browser).await.starts_with("/sign-in?"), "{path} with the revoked session's cookies");
    }

    stale_cookies_are_signed_out(&browser, &app, &issuer, email).await;
    browser.close().await.expect("close the browser");
}

/// Cookies that no longer name a live session, in the browser: a tampered JWT, a
/// lapsed JWT of a session that expired, a returning browser's expired session.
async fn stale_cookies_are_signed_out(browser: &Client, app: &str, issuer: &DevIssuer, email: &str) {
    // A tampered JWT cookie (next to a good session token) is treated as signed out.
    browser.delete_all_cookies().await.expect("clear cookies");
    sign_in(browser, app, email, None).await;
    let mut jwt = session_cookie(browser, "stytch_session_jwt").await;
    let value = jwt.value().to_owned();
    let flipped = if value.ends_with('A') { 'B' } else { 'A' };
    jwt.set_value(format!("{}{flipped}", &value[..value.len() - 1]));
    browser.add_cookie(jwt).await.expect("tampered cookie");
    open(browser, &format!("{app}/dashboard")).await;
    assert!(location(browser).await.starts_with("/sign-in?"), "a tampered cookie is signed out");

    // A lapsed JWT cookie is renewed by the issuer while its session lives
    // (Stytch's rule): once the session expired there, it is signed out.
    browser.delete_all_cookies().await.expect("clear cookies");
    let session_id = sign_in(browser, app, email, None).await;
    let user = text(browser, "user").await;
    assert!(issuer.expire_session(&session_id));
    browser.delete_all_cookies().await.expect("drop the session cookies");
    browser.add_cookie(app_cookie("stytch_session_jwt", expired_jwt(issuer, &user, &session_id))).await.unwrap();
    open(browser, &format!("{app}/dashboard")).await;
    assert!(location(browser).await.starts_with("/sign-in?"), "an expired JWT of an expired session is signed out");

    // A browser back with the cookies of a session that expired at the issuer
    // (the JWT lapsed; the session token asks the issuer, which says it is gone).
    browser.delete_all_cookies().await.expect("clear cookies");
    open(browser, &format!("{app}/sign-in")).await;
    let lapsed = sign_in_elsewhere(issuer, "grace@example.com").await;
    let (user, lapsed_id) = (lapsed["user_id"].as_str().unwrap(), lapsed["session"]["session_id"].as_str().unwrap());
    assert!(issuer.expire_session(lapsed_id));
    browser.add_cookie(app_cookie("stytch_session_jwt", expired_jwt(issuer, user, lapsed_id))).await.unwrap();
    browser
        .add_cookie(app_cookie("stytch_session", lapsed["session_token"].as_str().unwrap().to_owned()))
        .await
        .unwrap();
    open(browser, &format!("{app}/dashboard")).await;
    assert!(location(browser).await.starts_with("/sign-in?"), "an expired session is signed out");
    assert!(browser.get_named_cookie("stytch_session").await.is_err(), "and its cookies are cleared");
}
