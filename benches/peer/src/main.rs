//! The peer for `benches/load.sh`: a hello-world axum 0.7 app behind jwt-authorizer 0.15,
//! verifying the same tokens as tower-stepup from the same JWKS.
//!
//! Usage: `stepup-bench-peer ADDR JWKS_URL ISSUER AUDIENCE` (ADDR must be a loopback
//! address). Worker threads: env `WORKERS` (default: tokio's default).

use axum::routing::get;
use axum::Router;
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, JwtClaims, RegisteredClaims, Validation};

async fn hello(JwtClaims(_claims): JwtClaims<RegisteredClaims>) -> &'static str {
    "Hello, World!"
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, jwks_url, issuer, audience] = args.as_slice() else {
        eprintln!("usage: stepup-bench-peer ADDR JWKS_URL ISSUER AUDIENCE");
        std::process::exit(2);
    };
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR");
    assert!(addr.ip().is_loopback(), "benchmarks listen on loopback only");
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        runtime.worker_threads(workers);
    }
    runtime.enable_all().build().expect("runtime").block_on(async move {
        let validation = Validation::new().iss(&[issuer.as_str()]).aud(&[audience.as_str()]);
        let auth: Authorizer<RegisteredClaims> =
            JwtAuthorizer::from_jwks_url(jwks_url).validation(validation).build().await.expect("jwt-authorizer");
        let app = Router::new().route("/", get(hello)).layer(auth.into_layer());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        println!("listening on {addr}");
        axum::serve(listener, app).await.expect("serve");
    });
}
