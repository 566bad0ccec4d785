//! Servers and helpers for `benches/load.sh`. Everything listens on loopback only.
//!
//! ```text
//! stepup-bench-server issuer DIR COUNT [FRESH]    start a DevIssuer, write its JWKS URL, iss, aud
//!                                                 and tokens into DIR, then serve the JWKS; and
//!                                                 a second one in Stytch mode with FRESH live
//!                                                 sessions (default 1 000) and a counters route
//! stepup-bench-server serve ADDR KIND JWKS ISS AUD KIND: bare | stepup | stepup-cookie |
//!                                                 stepup-nocache
//! stepup-bench-server serve-fresh ADDR BASE_URL PROJECT_ID WINDOW_S
//!                                                 `/` any session, `/fresh` confirmed with the
//!                                                 Stytch-mode issuer at most WINDOW_S old; the
//!                                                 project secret comes from env STEPUP_BENCH_SECRET
//!                                                 (never on a command line)
//! stepup-bench-server flood COOLDOWN_MS REQUESTS  unknown-kid flood against a layer, counting
//!                                                 the issuer's JWKS fetches
//! stepup-bench-server report RESULTS              tables and ratios from load.sh's results
//! ```
//!
//! Every server with a layer prints `CACHE\tentries=N\tweighted_bytes=M` (its
//! verified-session cache) on `SIGUSR1`, so that the script can read the entry count
//! of a running server without adding a route to the measured app.

use std::io::{BufWriter, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use tower_stepup::{
    Guard, JwksConfig, KeySource, Session, SessionLayer, StytchProfile, StytchProject, DEFAULT_JWT_COOKIE,
};
use tower_stepup_dev_issuer::{DevAlg, DevFactor, DevIssuer, DevIssuerConfig, Endpoint};

mod report;

/// Upper bound on the issuer's life, whatever happens to the script.
const ISSUER_MAX_LIFETIME: Duration = Duration::from_secs(4 * 3600);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["issuer", dir, count] => {
            runtime().block_on(issuer_with(Path::new(dir), count.parse().expect("COUNT"), DEFAULT_FRESH_SESSIONS));
        }
        ["issuer", dir, count, fresh] => runtime().block_on(issuer_with(
            Path::new(dir),
            count.parse().expect("COUNT"),
            fresh.parse().expect("FRESH"),
        )),
        ["serve", addr, kind, jwks, iss, aud] => runtime().block_on(serve(addr, kind, jwks, iss, aud)),
        ["serve-fresh", addr, base_url, project_id, window_s] => runtime().block_on(serve_fresh(
            addr,
            base_url,
            project_id,
            Duration::from_secs(window_s.parse().expect("WINDOW_S")),
        )),
        ["flood", cooldown_ms, requests] => runtime().block_on(flood(
            Duration::from_millis(cooldown_ms.parse().expect("COOLDOWN_MS")),
            requests.parse().expect("REQUESTS"),
        )),
        ["report", results] => report::print(Path::new(results), None),
        ["report", results, memory] => report::print(Path::new(results), Some(Path::new(memory))),
        _ => {
            eprintln!("usage: see the top of benches/load-server/src/main.rs");
            std::process::exit(2);
        }
    }
}

/// A multi-thread runtime; env `WORKERS` sets the worker count (default: one per core).
fn runtime() -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        builder.worker_threads(workers);
    }
    builder.enable_all().build().expect("tokio runtime")
}

fn write(path: PathBuf, text: &str) {
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Default number of live sessions on the Stytch-mode issuer (the freshness run).
const DEFAULT_FRESH_SESSIONS: usize = 1_000;

/// Starts the issuer, writes `jwks_url`, `iss`, `aud`, `rs256.token`, `es256.token` and
/// `sessions.txt` (COUNT distinct ES256 session JWTs, one per line), `small-sessions.txt`
/// (up to 100 000 minimal ones); starts the Stytch-mode issuer of the freshness run
/// (see [`fresh_issuer`]); then writes `ready` and
/// serves until killed (at most [`ISSUER_MAX_LIFETIME`]).
async fn issuer_with(dir: &Path, count: usize, fresh: usize) {
    let config = DevIssuerConfig::new()
        .with_algs(&[DevAlg::RS256, DevAlg::ES256, DevAlg::EdDSA])
        // Long enough for the whole run: the cache and the peer must not see expiry.
        .with_jwt_lifetime(Duration::from_secs(3 * 3600));
    let issuer = DevIssuer::start_with(config).await.expect("dev issuer");
    std::fs::create_dir_all(dir).expect("DIR");
    write(dir.join("jwks_url"), &issuer.stytch_jwks_url());
    write(dir.join("iss"), &issuer.stytch_issuer());
    write(dir.join("aud"), issuer.project_id());
    // Typical sessions as issue 13 defines them: two factors (email OTP + TOTP), two roles.
    let typical = || issuer.stytch_session().factor(DevFactor::email_otp()).factor(DevFactor::totp()).roles(["stytch_member", "editor"]);
    write(dir.join("rs256.token"), &typical().alg(DevAlg::RS256).mint());
    write(dir.join("es256.token"), &typical().alg(DevAlg::ES256).mint());

    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let per_thread = count.div_ceil(threads);
    let parts: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let typical = &typical;
                scope.spawn(move || {
                    let range = (t * per_thread)..((t + 1) * per_thread).min(count);
                    range
                        .map(|i| {
                            typical()
                                .alg(DevAlg::ES256)
                                .subject(format!("user-test-{i:08}-0000-4000-8000-000000000000"))
                                .mint()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("minting thread")).collect()
    });
    let mut out = BufWriter::new(std::fs::File::create(dir.join("sessions.txt")).expect("sessions.txt"));
    for token in parts.iter().flatten() {
        writeln!(out, "{token}").expect("write sessions.txt");
    }
    out.flush().expect("flush sessions.txt");
    let average = parts.iter().flatten().map(String::len).sum::<usize>() / count.max(1);
    eprintln!("minted {count} ES256 session JWTs (average {average} bytes) in {:.1?}", started.elapsed());
    // The smallest plausible session JWTs (no factor, no role): the cache's size
    // estimate must hold for them too.
    let small: Vec<String> = (0..count.min(100_000))
        .map(|i| {
            issuer
                .stytch_session()
                .alg(DevAlg::ES256)
                .subject(format!("user-test-{i:08}-0000-4000-8000-000000000000"))
                .without_factors()
                .roles(Vec::<String>::new())
                .mint()
        })
        .collect();
    write(dir.join("small-sessions.txt"), &(small.join("\n") + "\n"));
    eprintln!("minted {} small ES256 session JWTs ({} bytes)", small.len(), small.first().map_or(0, String::len));
    let fresh_issuer = fresh_issuer(dir, fresh).await;
    write(dir.join("ready"), "");
    tokio::time::sleep(ISSUER_MAX_LIFETIME).await;
    drop(fresh_issuer);
}

/// The issuer of the freshness run: a `DevIssuer` in Stytch mode (RS256 session JWTs,
/// sessions API with project credentials) holding `sessions` live sessions, each
/// logged in with two factors (email OTP, TOTP) as the typical session of the other
/// runs, so that `sessions/authenticate` answers 200 for every JWT. Writes
/// `fresh.base_url`, `fresh.project_id`, `fresh.secret` (read by the script, passed to
/// the server in its environment), `fresh-sessions.txt` (one session JWT per session)
/// and `counts_url`: `GET` on it answers this issuer's own request counters,
/// `sessions_authenticate=N\tjwks=N`, read before and after a run.
async fn fresh_issuer(dir: &Path, sessions: usize) -> DevIssuer {
    let config = DevIssuerConfig::new()
        .with_stytch_mode()
        // Outlive the whole script: no JWT or session may lapse during the run (a lapsed
        // JWT would take the remote-fallback path, not the one measured).
        .with_jwt_lifetime(Duration::from_secs(3 * 3600))
        .with_session_lifetime(Duration::from_secs(4 * 3600));
    let issuer = DevIssuer::start_with(config).await.expect("dev issuer (Stytch mode)");
    write(dir.join("fresh.base_url"), &issuer.base_url());
    write(dir.join("fresh.project_id"), issuer.project_id());
    write(dir.join("fresh.secret"), issuer.secret());
    let started = Instant::now();
    let mut out = BufWriter::new(std::fs::File::create(dir.join("fresh-sessions.txt")).expect("fresh-sessions.txt"));
    for i in 0..sessions {
        let user = format!("user-test-{i:08}-0000-4000-8000-00000000f5e5");
        let session = issuer.create_session(&user, vec![DevFactor::email_otp(), DevFactor::totp()]);
        writeln!(out, "{}", session.session_jwt).expect("write fresh-sessions.txt");
    }
    out.flush().expect("flush fresh-sessions.txt");
    eprintln!("created {sessions} live sessions on the Stytch-mode issuer in {:.1?}", started.elapsed());

    let counters = issuer.clone();
    let app = Router::new().route(
        "/counts",
        get(move || {
            let issuer = counters.clone();
            async move {
                format!(
                    "sessions_authenticate={}\tjwks={}\n",
                    issuer.request_count(Endpoint::SessionsAuthenticate),
                    issuer.request_count(Endpoint::Jwks)
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind counters");
    write(dir.join("counts_url"), &format!("http://{}/counts", listener.local_addr().expect("addr")));
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

async fn hello(_session: Session) -> &'static str {
    "Hello, World!"
}

async fn serve(addr: &str, kind: &str, jwks: &str, iss: &str, aud: &str) {
    let addr: SocketAddr = addr.parse().expect("ADDR");
    assert!(addr.ip().is_loopback(), "benchmarks listen on loopback only");
    // Stytch session JWTs: read with the Stytch profile, as before the generic builder stopped defaulting to it.
    let builder = || {
        SessionLayer::builder(KeySource::url(jwks))
            .with_issuer(iss)
            .with_audience(aud)
            .with_profile(StytchProfile::new())
    };
    let layer = match kind {
        "bare" => None,
        "stepup" => Some(builder().build().await.expect("layer")),
        // The session JWT from the `stytch_session_jwt` cookie, as a browser sends it.
        "stepup-cookie" => Some(builder().with_jwt_cookie(Some(DEFAULT_JWT_COOKIE)).build().await.expect("layer")),
        "stepup-nocache" => Some(builder().with_session_cache_bytes(0).build().await.expect("layer")),
        other => panic!("unknown server kind {other:?}"),
    };
    let app = match &layer {
        // The bare app gets the same requests (bearer or cookie) and ignores them.
        None => Router::new().route("/", get(|| async { "Hello, World!" })),
        Some(layer) => Router::new().route("/", get(hello)).layer(layer.clone()),
    };
    if let Some(layer) = layer {
        report_cache_on_signal(layer);
    }
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on {addr} ({kind})");
    axum::serve(listener, app).await.expect("serve");
}

/// The freshness server: a Stytch layer for the Stytch-mode issuer at `base_url` (its
/// JWKS, issuer, audience and `sessions/authenticate`, as `SessionLayer::stytch`
/// configures them), with `/` taking any session (local verification only) and
/// `/fresh` guarded by `Guard::authenticated().fresh_within(window)`, so that both
/// routes see the same sessions in the same process.
async fn serve_fresh(addr: &str, base_url: &str, project_id: &str, window: Duration) {
    let addr: SocketAddr = addr.parse().expect("ADDR");
    assert!(addr.ip().is_loopback(), "benchmarks listen on loopback only");
    // From the environment, so that the secret shows in no process list.
    let secret = std::env::var("STEPUP_BENCH_SECRET").expect("STEPUP_BENCH_SECRET");
    let project = StytchProject::consumer(project_id).expect("project id").with_base_url(base_url).with_secret(secret);
    let layer = SessionLayer::stytch(&project).build().await.expect("layer");
    let app = Router::new()
        .route("/", get(hello))
        .route("/fresh", get(hello).route_layer(Guard::authenticated().fresh_within(window)))
        .layer(layer.clone());
    report_cache_on_signal(layer);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on {addr} (stepup-fresh, window {window:?})");
    axum::serve(listener, app).await.expect("serve");
}

/// On every `SIGUSR1`, prints the layer's verified-session cache (entries, weighted
/// size). The task sleeps in the signal driver otherwise: nothing on the request path.
fn report_cache_on_signal(layer: SessionLayer) {
    let mut signals = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).expect("SIGUSR1");
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            let (entries, weighted) = tower_stepup::__bench::cache_stats(&layer).unwrap_or((0, 0));
            println!("CACHE\tentries={entries}\tweighted_bytes={weighted}");
        }
    });
}

/// `REQUESTS` requests, 64 at a time, each with a different `kid` the issuer does not
/// serve, against a layer whose unknown-kid cooldown is `cooldown`. Prints the JWKS
/// fetches the issuer counted.
async fn flood(cooldown: Duration, requests: usize) {
    const CONCURRENCY: usize = 64;
    let issuer = DevIssuer::start().await.expect("dev issuer");
    // 50 keys in the set: the lookup of an unknown kid misses in a realistic JWKS.
    issuer.add_keys(DevAlg::EdDSA, 47);
    let layer = SessionLayer::builder(KeySource::url(issuer.stytch_jwks_url()))
        .with_issuer(issuer.stytch_issuer())
        .with_audience(issuer.project_id())
        .with_profile(StytchProfile::new())
        .with_jwks_config(JwksConfig::default().with_unknown_kid_cooldown(cooldown))
        .build()
        .await
        .expect("layer");
    let app = Router::new().route("/", get(hello)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tokens: Arc<Vec<String>> = Arc::new(
        (0..requests)
            .map(|i| issuer.stytch_session().alg(DevAlg::EdDSA).kid(format!("unknown-kid-{i:06}")).mint())
            .collect(),
    );
    let good = issuer.stytch_session().alg(DevAlg::EdDSA).mint();
    let client = reqwest::Client::new();
    issuer.reset_counts();
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    // Every status seen, so that a flood answered otherwise than 401 shows what it got.
    let statuses: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, usize>>> = Arc::default();
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, base, tokens, next, refused, statuses) =
                (client.clone(), base.clone(), tokens.clone(), next.clone(), refused.clone(), statuses.clone());
            tokio::spawn(async move {
                // Each worker takes the next index until all REQUESTS are sent.
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let response = client.get(&base).bearer_auth(token).send().await.expect("request");
                    if response.status() == 401 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    *statuses
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(response.status().as_u16())
                        .or_default() += 1;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    let fetches = issuer.request_count(Endpoint::Jwks);
    // A valid token still works right after the flood.
    let status = client.get(&base).bearer_auth(&good).send().await.expect("request").status();
    let windows = elapsed.as_secs_f64() / cooldown.as_secs_f64();
    let statuses: Vec<String> = statuses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(status, n)| format!("{status}:{n}"))
        .collect();
    println!(
        "FLOOD\tcooldown_ms={}\trequests={requests}\trefused_401={}\telapsed_s={:.2}\tjwks_fetches={fetches}\tcooldown_windows={:.1}\tvalid_token_after={}\tstatuses={}",
        cooldown.as_millis(),
        refused.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        windows,
        status.as_u16(),
        statuses.join(","),
    );
}
