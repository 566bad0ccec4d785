//! RFC 9728 protected resource metadata (issue 12): the document over HTTP at its
//! path-inserted well-known URL, and the `resource_metadata` challenge parameter a
//! client (an MCP client, say) follows to find it.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;
use serde_json::{json, Value};
use tower_stepup::{
    ConfigError, Guard, IssuerConfig, KeySource, Requirement, ResourceMetadata, SessionLayer, SessionLayerBuilder,
};
use tower_stepup_dev_issuer::{DevIssuer, DEFAULT_AUDIENCE};

use crate::common::{bearer, challenge, client, project, quick_issuer, TestResult};

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Serves, at a free loopback port, `/mcp` (a session), `/mcp/admin` (scope
/// `admin`) and `/mcp/recent` (authenticated within a minute) behind the layer
/// that `configure` builds for the resource `{base}{resource_path}`, and the
/// layer's metadata document at the root. Returns the base URL.
async fn serve_resource<F>(resource_path: &str, configure: F) -> TestResultOf<String>
where
    F: FnOnce(Option<ResourceMetadata>) -> SessionLayerBuilder,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let metadata = ResourceMetadata::new(format!("{base}{resource_path}"))?.with_scopes_supported(["admin", "read"]);
    let layer = configure(Some(metadata)).build().await?;
    let document = layer.resource_metadata().map(ResourceMetadata::router).unwrap_or_default();
    let app = Router::new()
        .route("/mcp", get(|| async { "ok" }).route_layer(Guard::authenticated()))
        .route("/mcp/admin", get(|| async { "ok" }).route_layer(Guard::new(Requirement::scope("admin"))))
        .route(
            "/mcp/recent",
            get(|| async { "ok" }).route_layer(Guard::new(Requirement::max_age(Duration::from_secs(60)))),
        )
        .layer(layer)
        .merge(document);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    Ok(base)
}

type TestResultOf<T> = crate::common::TestResultOf<T>;

/// The OIDC layer of `issuer` with `metadata`.
fn oidc(issuer: &DevIssuer, metadata: Option<ResourceMetadata>) -> SessionLayerBuilder {
    let builder = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE);
    match metadata {
        Some(metadata) => builder.with_resource_metadata(metadata),
        None => builder,
    }
}

/// The `resource_metadata` parameter of a challenge, as a client reads it.
fn resource_metadata_param(header: &str) -> Option<String> {
    let start = header.find("resource_metadata=\"")? + "resource_metadata=\"".len();
    let end = header[start..].find('"')?;
    Some(header[start..start + end].to_owned())
}

/// The document over HTTP, at the URL RFC 9728 §3.1 makes of a resource with a
/// path, and what a client checks of it (§3.3: `resource` is the identifier).
#[tokio::test]
async fn the_document_is_served_at_the_path_inserted_url() -> TestResult {
    let issuer = quick_issuer().await;
    let base = serve_resource("/mcp", |metadata| oidc(&issuer, metadata)).await?;
    let http = client();
    let response = http.get(format!("{base}{WELL_KNOWN}/mcp")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert!(response.headers().contains_key(CACHE_CONTROL));
    let document: Value = response.json().await?;
    assert_eq!(
        document,
        json!({
            "resource": format!("{base}/mcp"),
            "authorization_servers": [issuer.issuer()],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["admin", "read"],
        })
    );
    // Not at the host's own well-known URL (that names the resource `{base}`), and
    // not under the resource's path.
    assert_eq!(http.get(format!("{base}{WELL_KNOWN}")).send().await?.status(), StatusCode::NOT_FOUND);
    assert_eq!(http.get(format!("{base}/mcp{WELL_KNOWN}")).send().await?.status(), StatusCode::NOT_FOUND);
    // HEAD works too; POST does not.
    assert_eq!(http.head(format!("{base}{WELL_KNOWN}/mcp")).send().await?.status(), StatusCode::OK);
    assert_eq!(http.post(format!("{base}{WELL_KNOWN}/mcp")).send().await?.status(), StatusCode::METHOD_NOT_ALLOWED);
    Ok(())
}

/// A resource at the host's root has its metadata at the plain well-known URL.
#[tokio::test]
async fn a_root_resource_uses_the_plain_well_known_url() -> TestResult {
    let issuer = quick_issuer().await;
    let base = serve_resource("", |metadata| oidc(&issuer, metadata)).await?;
    let http = client();
    let document: Value = http.get(format!("{base}{WELL_KNOWN}")).send().await?.json().await?;
    assert_eq!(document["resource"], json!(base));
    let refused = bearer(&http, format!("{base}/mcp"), "not-a-jwt").await;
    assert_eq!(resource_metadata_param(&challenge(&refused)), Some(format!("{base}{WELL_KNOWN}")));
    Ok(())
}

/// Every challenge names the document (RFC 9728 §5.1): no token, a bad token, a
/// missing scope, a step-up; a client that follows it finds the document of the
/// resource it asked for.
#[tokio::test]
async fn every_challenge_names_the_metadata() -> TestResult {
    let issuer = quick_issuer().await;
    let base = serve_resource("/mcp", |metadata| oidc(&issuer, metadata)).await?;
    let http = client();
    let expected = format!("{base}{WELL_KNOWN}/mcp");

    let anonymous = http.get(format!("{base}/mcp")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let header = challenge(&anonymous);
    assert!(header.starts_with("Bearer realm="), "{header}");
    assert_eq!(resource_metadata_param(&header), Some(expected.clone()));

    let invalid = bearer(&http, format!("{base}/mcp"), &issuer.access_token().audience("someone-else").mint()).await;
    assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&invalid).contains("error=\"invalid_token\""));
    assert_eq!(resource_metadata_param(&challenge(&invalid)), Some(expected.clone()));

    let forbidden = bearer(&http, format!("{base}/mcp/admin"), &issuer.access_token().scope("read").mint()).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&forbidden).contains("error=\"insufficient_scope\""));
    assert_eq!(resource_metadata_param(&challenge(&forbidden)), Some(expected.clone()));

    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let step_up = bearer(&http, format!("{base}/mcp/recent"), &issuer.access_token().auth_time(old).mint()).await;
    assert_eq!(step_up.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&step_up).contains("insufficient_user_authentication"));
    assert_eq!(resource_metadata_param(&challenge(&step_up)), Some(expected.clone()));

    // A good token passes: the parameter is on refusals only.
    let ok = bearer(&http, format!("{base}/mcp"), &issuer.access_token().mint()).await;
    assert_eq!(ok.status(), StatusCode::OK);

    // The client follows the challenge, and the document names the resource it asked for.
    let document: Value = http.get(&expected).send().await?.json().await?;
    assert_eq!(document["resource"], json!(format!("{base}/mcp")));
    Ok(())
}

/// Without metadata, challenges stay as they were.
#[tokio::test]
async fn no_metadata_no_parameter() -> TestResult {
    let issuer = quick_issuer().await;
    let base = serve_resource("/mcp", |_| oidc(&issuer, None)).await?;
    let http = client();
    let anonymous = http.get(format!("{base}/mcp")).send().await?;
    assert_eq!(challenge(&anonymous), "Bearer realm=\"api\"");
    assert_eq!(http.get(format!("{base}{WELL_KNOWN}/mcp")).send().await?.status(), StatusCode::NOT_FOUND);
    Ok(())
}

/// `authorization_servers`: the configured ones; else the layer's issuers that are
/// URLs (every issuer of a multi-issuer layer; of a Stytch project, its API
/// domain but not `stytch.com/{project}`).
#[tokio::test]
async fn authorization_servers_come_from_the_layer_unless_given() -> TestResult {
    let (a, b) = (quick_issuer().await, quick_issuer().await);
    let document = |layer: SessionLayer| layer.resource_metadata().expect("metadata").to_json();
    let metadata = || ResourceMetadata::new("https://api.example.com/mcp").expect("resource");

    let multi = SessionLayer::multi_issuer()
        .with_audience(DEFAULT_AUDIENCE)
        .with_issuer_config(IssuerConfig::new(a.issuer(), KeySource::discovery(a.issuer())))
        .with_issuer_config(IssuerConfig::new(b.issuer(), KeySource::discovery(b.issuer())))
        .with_resource_metadata(metadata())
        .build()
        .await?;
    assert_eq!(document(multi)["authorization_servers"], json!([a.issuer(), b.issuer()]));

    let given = oidc(&a, Some(metadata().with_authorization_server("https://as.example.com"))).build().await?;
    assert_eq!(document(given)["authorization_servers"], json!(["https://as.example.com"]));

    let stytch = SessionLayer::stytch(&project(&a)).with_resource_metadata(metadata()).build().await?;
    let stytch = document(stytch);
    // `stytch.com/{project}` is no URL, so no authorization server; the project's
    // API domain, an issuer of its JWTs too, is.
    let listed = stytch["authorization_servers"].as_array().expect("listed").clone();
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|s| s.as_str().is_some_and(|s| s.starts_with("https://"))), "{stytch}");
    assert_eq!(stytch["resource"], "https://api.example.com/mcp");
    Ok(())
}

/// Unusable metadata surfaces at construction or build, like any setting.
#[tokio::test]
async fn unusable_metadata_is_refused() -> TestResult {
    let issuer = quick_issuer().await;
    assert!(ResourceMetadata::new("https://api.example.com/mcp?tenant=1").is_err());
    assert!(ResourceMetadata::new("https://api.example.com/mcp#top").is_err());
    assert!(ResourceMetadata::new("http://api.example.com/mcp").is_err(), "plain http off loopback");
    let documentation = ResourceMetadata::new("https://api.example.com/mcp")?.with_documentation("not a URL");
    let error = oidc(&issuer, Some(documentation)).build().await.unwrap_err();
    assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");
    let server = ResourceMetadata::new("https://api.example.com/mcp")?.with_authorization_server("ftp://as.example");
    assert!(oidc(&issuer, Some(server)).build().await.is_err());
    Ok(())
}
