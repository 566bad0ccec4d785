//! Runs the dev issuer standalone, so that frontends and tests in other languages can
//! use it as a local Stytch / OpenID Connect stand-in.
//!
//! ```text
//! cargo run -p tower-stepup-dev-issuer -- --listen 127.0.0.1:4000 \
//!     --project-id project-test-00000000-0000-0000-0000-000000000000 --secret dev-secret
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use tower_stepup_dev_issuer::{DevIssuer, DevIssuerConfig};

const USAGE: &str = "\
usage: tower-stepup-dev-issuer [--listen ADDR] [--project-id ID] [--secret SECRET]
                               [--client-id ID] [--client-secret SECRET]

  --listen ADDR           loopback address to bind (default 127.0.0.1:4000; port 0 = any free port)
  --project-id ID         Stytch project id (default: the crate's DEFAULT_PROJECT_ID)
  --secret SECRET         Stytch project secret (default: random, printed at start)
  --client-id ID          OAuth client id for introspection (default: DEFAULT_CLIENT_ID)
  --client-secret SECRET  OAuth client secret (default: random, printed at start)
";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tower-stepup-dev-issuer: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let mut config = DevIssuerConfig::new().with_addr(SocketAddr::from(([127, 0, 0, 1], 4000)));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            print!("{USAGE}");
            return Ok(());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        config = match flag.as_str() {
            "--listen" => {
                let addr: SocketAddr = value.parse().map_err(|_| format!("--listen: not an address: {value}"))?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--listen: {addr} is not a loopback address; the dev issuer authenticates nobody"
                    ));
                }
                config.with_addr(addr)
            }
            "--project-id" => config.with_project_id(value),
            "--secret" => config.with_secret(value),
            "--client-id" => config.with_client_id(value),
            "--client-secret" => config.with_client_secret(value),
            other => return Err(format!("unknown option {other}")),
        };
    }
    let issuer = DevIssuer::start_with(config).await.map_err(|error| format!("could not start: {error}"))?;
    let base = issuer.base_url();
    println!("tower-stepup dev issuer listening on {base}");
    println!("project id:    {}", issuer.project_id());
    println!("secret:        {}", issuer.secret());
    println!("client id:     {}", issuer.client_id());
    println!("client secret: {}", issuer.client_secret());
    println!("OIDC issuer:   {}", issuer.issuer());
    println!("Stytch issuer: {}", issuer.stytch_issuer());
    println!("routes:");
    for (method, path) in tower_stepup_dev_issuer::ROUTES {
        println!("  {method:<4} {base}{}", path.replace("{project_id}", issuer.project_id()));
    }
    tokio::signal::ctrl_c().await.map_err(|error| format!("waiting for Ctrl-C: {error}"))?;
    issuer.shutdown();
    Ok(())
}
