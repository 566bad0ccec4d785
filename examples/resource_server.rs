//! A protected API configured only from the environment: the black-box contract
//! tower-stepup's acceptance checks drive. Keep it stable.
//!
//! ```text
//! STEPUP_ISSUER=https://login.example.com STEPUP_AUDIENCE=api \
//! STEPUP_DISCOVERY_URL=https://login.example.com cargo run --example resource_server
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `STEPUP_LISTEN` | address to listen on | `127.0.0.1:3000` |
//! | `STEPUP_JWKS_URL` | JWKS URL (or use `STEPUP_DISCOVERY_URL`) | — |
//! | `STEPUP_DISCOVERY_URL` | issuer URL, or its `/.well-known/openid-configuration` | — |
//! | `STEPUP_ISSUER` | accepted `iss` (required) | — |
//! | `STEPUP_AUDIENCE` | accepted `aud` (required) | — |
//! | `STEPUP_TYP` | `jwt`, `at+jwt` or `any` | `any` |
//! | `STEPUP_ACR_LEVELS` | `acr` levels, weakest first, comma separated | `pwd,mfa` |
//! | `STEPUP_MAX_AGE` | seconds for `/recent` | `300` |
//! | `STEPUP_INTROSPECTION_URL`, `STEPUP_CLIENT_ID`, `STEPUP_CLIENT_SECRET` | RFC 7662 authority | — |
//! | `STEPUP_STYTCH_PROJECT_ID`, `STEPUP_STYTCH_SECRET`, `STEPUP_STYTCH_BASE_URL` | Stytch authority | — |
//! | `STEPUP_ISSUER_RATE` | issuer calls per second allowed for credentials not verified locally (opaque tokens), burst equal to it | library default ([`IssuerBudget`](tower_stepup::IssuerBudget)) |
//! | `STEPUP_PROFILE` | `oidc` (OIDC / RFC 9068 claims) or `stytch` (Stytch session JWTs: session id, factors) | `oidc` |
//! | `STEPUP_PRESET` | `generic`, `keycloak`, `auth0`, `entra` or `okta`: reads tokens as that provider sends them ([`Preset`](tower_stepup::Preset) for `STEPUP_ISSUER`: its claim profile, and its `typ` unless `STEPUP_TYP` is set); not with `STEPUP_PROFILE=stytch` | `generic` (the `oidc` profile as above) |
//! | `STEPUP_ROLES_CLAIM` | claim path of the roles ([`ClaimPath`](tower_stepup::ClaimPath) dotted form: `realm_access.roles`, `https://example.com/roles`), replacing the preset's | the preset's (`roles` for `generic`) |
//! | `STEPUP_CLIENT` | a client whose roles count too (`resource_access.{client}.roles`, Keycloak client roles) | — |
//! | `RUST_LOG` | log filter (`tracing`, to stderr): JWKS and issuer failures show at `warn`/`error` | `info` |
//!
//! Credentials: `Authorization: Bearer …`, else the `stytch_session_jwt` /
//! `stytch_session` cookies; claims read with the profile `STEPUP_PROFILE` names. With
//! `STEPUP_PROFILE=stytch` and `STEPUP_STYTCH_*` set, `STEPUP_JWKS_URL` still names the
//! JWKS.
//!
//! Routes:
//! - `GET /public` → `200` always.
//! - `GET /me` → `200` `{"sub", "session_id", "factors": [{"type", "delivery_method", "last_authenticated_at"}]}`, else `401`.
//! - `GET /mfa` → `acr` at least `mfa`.
//! - `GET /recent` → `auth_time` within `STEPUP_MAX_AGE` seconds.
//! - `GET /admin` → role or scope `admin` (roles where the preset, or
//!   `STEPUP_ROLES_CLAIM`, finds them).
//! - `GET /sensitive` → `acr` at least the top level, confirmed with the issuer
//!   (`fresh()`); needs an authority.
//! - `GET /fresh` → any session, confirmed with the issuer (`fresh()`); needs an
//!   authority.
//! - `GET /hot` → any session (the `Session` extractor), answering its subject as
//!   plain text: the layer's own cost, without `/me`'s JSON work; `401` without one.
//! - `POST /logout` → revokes the presented session (at the issuer when an authority
//!   is configured), forgets it locally, clears the cookies of a cookie client;
//!   `204` (`503` when the issuer could not revoke it; the session is refused here
//!   either way), `401` without a session.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use time::format_description::well_known::Rfc3339;
use tower_stepup::{
    ClearSessionCookies, Guard, GuardConfig, IntrospectionAuthority, IssuerBudget, KeySource, OidcProfile, Preset,
    Requirement, Session, SessionControl, SessionLayer, StytchAuthority, StytchProfile, StytchProject, TypPolicy,
    DEFAULT_JWT_COOKIE, DEFAULT_TOKEN_COOKIE,
};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> Result<String, String> {
    env(name).ok_or_else(|| format!("{name} is required"))
}

#[tokio::main]
async fn main() {
    // Logs go to stderr: the first line on stdout is the listening address.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run().await {
        eprintln!("resource_server: {error}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let listen = env("STEPUP_LISTEN").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let issuer = required("STEPUP_ISSUER")?;
    let audience = required("STEPUP_AUDIENCE")?;
    let source = match (env("STEPUP_JWKS_URL"), env("STEPUP_DISCOVERY_URL")) {
        (Some(url), _) => KeySource::url(url),
        (None, Some(url)) => {
            let url = url.trim_end_matches("/.well-known/openid-configuration");
            // The document must name the issuer exactly: when the URL is the issuer's,
            // take the issuer as written (Auth0's end in `/`).
            if url.trim_end_matches('/') == issuer.trim_end_matches('/') {
                KeySource::discovery(issuer.clone())
            } else {
                KeySource::discovery(url.trim_end_matches('/'))
            }
        }
        (None, None) => return Err("set STEPUP_JWKS_URL or STEPUP_DISCOVERY_URL".into()),
    };
    let preset = preset_for(&issuer)?;
    let typ = match env("STEPUP_TYP").as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => preset.as_ref().map_or(TypPolicy::Any, Preset::typ),
        Some("any") => TypPolicy::Any,
        Some("jwt") => TypPolicy::Jwt,
        Some("at+jwt") => TypPolicy::AccessToken,
        Some(other) => return Err(format!("STEPUP_TYP must be jwt, at+jwt or any, not {other:?}").into()),
    };
    let levels: Vec<String> = env("STEPUP_ACR_LEVELS")
        .unwrap_or_else(|| "pwd,mfa".to_owned())
        .split(',')
        .map(|level| level.trim().to_owned())
        .filter(|level| !level.is_empty())
        .collect();
    let top_level = levels.last().cloned().ok_or("STEPUP_ACR_LEVELS is empty")?;
    let max_age: u64 =
        env("STEPUP_MAX_AGE").map_or(Ok(300), |v| v.parse()).map_err(|_| "STEPUP_MAX_AGE must be seconds")?;

    let builder = SessionLayer::builder(source)
        .with_issuer(issuer)
        .with_audience(audience)
        .with_typ(typ)
        // Browsers: the Stytch SDK's cookies, read when no bearer token is sent.
        .with_jwt_cookie(Some(DEFAULT_JWT_COOKIE))
        .with_token_cookie(Some(DEFAULT_TOKEN_COOKIE))
        .with_guard_config(GuardConfig::default().with_acr_levels(levels));
    let mut builder = match (env("STEPUP_PROFILE").as_deref().map(str::to_ascii_lowercase).as_deref(), preset) {
        (None | Some("oidc"), None) => builder.with_profile(oidc_profile(OidcProfile::new())),
        (None | Some("oidc"), Some(preset)) => {
            builder.with_profile(oidc_profile(preset.profile())).with_dialect(preset.dialect())
        }
        (Some("stytch"), None) => builder.with_profile(StytchProfile::new()),
        (Some("stytch"), Some(_)) => {
            return Err("STEPUP_PRESET applies to OIDC tokens, not STEPUP_PROFILE=stytch".into())
        }
        (Some(other), _) => return Err(format!("STEPUP_PROFILE must be oidc or stytch, not {other:?}").into()),
    };
    if let Some(url) = env("STEPUP_INTROSPECTION_URL") {
        let authority =
            IntrospectionAuthority::new(&url, required("STEPUP_CLIENT_ID")?, required("STEPUP_CLIENT_SECRET")?)?;
        builder = builder.with_authority(authority);
    } else if let Some(project_id) = env("STEPUP_STYTCH_PROJECT_ID") {
        let mut project = StytchProject::consumer(project_id)?.with_secret(required("STEPUP_STYTCH_SECRET")?);
        if let Some(base) = env("STEPUP_STYTCH_BASE_URL") {
            project = project.with_base_url(base);
        }
        builder = builder.with_authority(StytchAuthority::new(&project)?);
    }
    if let Some(rate) = env("STEPUP_ISSUER_RATE") {
        let rate: u32 = rate.parse().map_err(|_| "STEPUP_ISSUER_RATE must be a whole number of calls per second")?;
        builder = builder.with_issuer_budget(IssuerBudget::per_second(rate));
    }
    let sessions = builder.build().await?;

    let admin = Requirement::role("admin").or(Requirement::scope("admin"));
    let app = Router::new()
        .route("/public", get(|| async { "public\n" }))
        .route("/me", get(me))
        .route("/mfa", get(me).route_layer(Guard::new(Requirement::acr_at_least("mfa"))))
        .route("/recent", get(me).route_layer(Guard::new(Requirement::max_age(Duration::from_secs(max_age)))))
        .route("/admin", get(me).route_layer(Guard::new(admin)))
        .route("/sensitive", get(me).route_layer(Guard::new(Requirement::acr_at_least(top_level)).fresh()))
        .route("/fresh", get(me).route_layer(Guard::authenticated().fresh()))
        .route("/hot", get(|session: Session| async move { session.subject().to_owned() }))
        .route("/logout", post(logout))
        .layer(sessions);

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("resource_server listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The provider preset `STEPUP_PRESET` names, for `issuer`; `None` for `generic`.
fn preset_for(issuer: &str) -> Result<Option<Preset>, String> {
    Ok(Some(match env("STEPUP_PRESET").as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("generic") => return Ok(None),
        Some("keycloak") => Preset::keycloak(issuer),
        Some("auth0") => Preset::auth0(issuer),
        Some("okta") => Preset::okta(issuer),
        Some("entra") => {
            // `{authority host}/{tenant}/v2.0`
            let base = issuer.trim_end_matches('/').strip_suffix("/v2.0").ok_or("an Entra issuer ends in /v2.0")?;
            let (host, tenant) = base.rsplit_once('/').ok_or("an Entra issuer is {host}/{tenant}/v2.0")?;
            Preset::entra(tenant).with_authority_host(host)
        }
        Some(other) => {
            return Err(format!("STEPUP_PRESET must be generic, keycloak, auth0, entra or okta, not {other:?}"))
        }
    }))
}

/// `profile` with `STEPUP_ROLES_CLAIM` and `STEPUP_CLIENT` applied.
fn oidc_profile(mut profile: OidcProfile) -> OidcProfile {
    if let Some(path) = env("STEPUP_ROLES_CLAIM") {
        profile = profile.with_roles_claim(path.trim());
    }
    if let Some(client) = env("STEPUP_CLIENT") {
        profile = profile.with_additional_roles_claim(tower_stepup::ClaimPath::new([
            "resource_access".to_owned(),
            client.trim().to_owned(),
            "roles".to_owned(),
        ]));
    }
    profile
}

async fn logout(control: SessionControl) -> (ClearSessionCookies, StatusCode) {
    let status = match control.revoke().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(error) => {
            tracing::warn!(%error, "logout: the session was not revoked at the issuer");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    (control.cleared_cookies(), status)
}

async fn me(session: Session) -> Json<serde_json::Value> {
    let factors: Vec<_> = session
        .factors()
        .iter()
        .map(|factor| {
            serde_json::json!({
                "type": factor.kind().as_str(),
                "delivery_method": factor.delivery_method(),
                "last_authenticated_at": factor
                    .last_authenticated_at()
                    .and_then(|at| time::OffsetDateTime::from(at).format(&Rfc3339).ok()),
            })
        })
        .collect();
    Json(serde_json::json!({
        "sub": session.subject(),
        "session_id": session.session_id(),
        "factors": factors,
    }))
}
