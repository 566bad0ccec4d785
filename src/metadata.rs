//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that tells a
//! client which authorization servers issue tokens for this API, and the
//! well-known URL it is served at.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::error::ConfigError;

/// The well-known URI suffix of RFC 9728 §3.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// How long clients may cache the document (it changes with a deployment only).
const CACHE_CONTROL_VALUE: &str = "max-age=3600";

/// An RFC 9728 protected resource metadata document, and where it is served.
///
/// Give it to [`SessionLayerBuilder::with_resource_metadata`](crate::SessionLayerBuilder::with_resource_metadata):
/// every `Bearer` challenge of the layer then names it
/// (`WWW-Authenticate: Bearer resource_metadata="…"`, RFC 9728 §5.1), as the MCP
/// authorization specification requires of protected servers. Serve it with
/// [`router`](Self::router) (or [`response`](Self::response)), mounted at the root
/// of the app.
///
/// # Where it is served
///
/// At [`url`](Self::url), made from the resource identifier as RFC 9728 §3.1
/// says: `/.well-known/oauth-protected-resource` goes between the host and the
/// path, so `https://api.example.com/mcp` has its metadata at
/// `https://api.example.com/.well-known/oauth-protected-resource/mcp`, and
/// `https://api.example.com` (or `…/`) at
/// `https://api.example.com/.well-known/oauth-protected-resource`. The document's
/// `resource` is the identifier exactly as given: a client compares it with the
/// URL it derived the metadata URL from, and must refuse a mismatch (§3.3).
///
/// # What it says
///
/// - `resource`: the identifier given to [`new`](Self::new).
/// - `authorization_servers`: those of
///   [`with_authorization_server`](Self::with_authorization_server); when none,
///   the layer fills in its issuers that are `http(s)` URLs (RFC 8414 issuer
///   identifiers; a Stytch `stytch.com/{project}` issuer is none).
/// - `bearer_methods_supported`: `["header"]`, always: the layer reads bearer
///   tokens from the `Authorization` header only (never from a form body or the
///   query, RFC 6750 §2.2/2.3).
/// - `scopes_supported`, `resource_name`, `resource_documentation` when set.
///
/// # Example
///
/// ```
/// use tower_stepup::ResourceMetadata;
///
/// let metadata = ResourceMetadata::new("https://api.example.com/mcp")?
///     .with_authorization_server("https://login.example.com")
///     .with_scopes_supported(["tools:read", "tools:call"])
///     .with_resource_name("Example MCP server");
/// assert_eq!(metadata.url(), "https://api.example.com/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(metadata.path(), "/.well-known/oauth-protected-resource/mcp");
/// let document = metadata.to_json();
/// assert_eq!(document["resource"], "https://api.example.com/mcp");
/// assert_eq!(document["bearer_methods_supported"], serde_json::json!(["header"]));
/// # Ok::<(), tower_stepup::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ResourceMetadata {
    resource: String,
    url: String,
    path: String,
    authorization_servers: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    resource_name: Option<String>,
    documentation: Option<String>,
}

impl ResourceMetadata {
    /// The metadata of the resource `resource`: an absolute `https` URL (`http`
    /// on loopback hosts, for tests) without query or fragment (RFC 9728 §1.2
    /// and RFC 8707 §2), and without `{`, `}`, `*` or `:` in its path (it becomes
    /// a route).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for anything else.
    pub fn new(resource: impl Into<String>) -> Result<Self, ConfigError> {
        let resource = resource.into();
        let parsed = crate::http_client::check_url("resource", &resource, false)?;
        if parsed.query().is_some() || parsed.fragment().is_some() || resource.contains(['?', '#']) {
            return Err(ConfigError::invalid("resource", "a resource identifier has no query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ConfigError::invalid("resource", "a resource identifier carries no credentials"));
        }
        let Some(host) = parsed.host_str() else {
            return Err(ConfigError::invalid("resource", "no host"));
        };
        // The path as sent on the wire (percent-encoded), without the lone `/` of an
        // empty path: RFC 9728 §3.1 drops a terminating slash after the host.
        let resource_path = match parsed.path() {
            "/" => "",
            path => path,
        };
        if resource_path.contains(['{', '}', '*', ':']) {
            return Err(ConfigError::invalid("resource", "the path may not hold '{', '}', '*' or ':'"));
        }
        let path = format!("{WELL_KNOWN}{resource_path}");
        // `host_str` keeps the brackets of an IPv6 address.
        let port = parsed.port().map(|port| format!(":{port}")).unwrap_or_default();
        let url = format!("{}://{host}{port}{path}", parsed.scheme());
        Ok(Self {
            resource,
            url,
            path,
            authorization_servers: Vec::new(),
            scopes_supported: None,
            resource_name: None,
            documentation: None,
        })
    }

    /// An authorization server (its RFC 8414 issuer identifier) that issues tokens
    /// for this resource (repeatable).
    pub fn with_authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// `scopes_supported`: the scopes clients may request for this resource.
    pub fn with_scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported.get_or_insert_with(Vec::new).extend(scopes.into_iter().map(Into::into));
        self
    }

    /// `resource_name`: a human-readable name for end users.
    pub fn with_resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `resource_documentation`: a page (URL) for developers.
    pub fn with_documentation(mut self, url: impl Into<String>) -> Self {
        self.documentation = Some(url.into());
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The URL of the document (RFC 9728 §3.1), as challenges name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path of [`url`](Self::url), where [`router`](Self::router) serves it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The document, as JSON.
    pub fn to_json(&self) -> Value {
        let mut document = Map::new();
        document.insert("resource".to_owned(), json!(self.resource));
        if !self.authorization_servers.is_empty() {
            document.insert("authorization_servers".to_owned(), json!(self.authorization_servers));
        }
        document.insert("bearer_methods_supported".to_owned(), json!(["header"]));
        if let Some(scopes) = &self.scopes_supported {
            document.insert("scopes_supported".to_owned(), json!(scopes));
        }
        if let Some(name) = &self.resource_name {
            document.insert("resource_name".to_owned(), json!(name));
        }
        if let Some(documentation) = &self.documentation {
            document.insert("resource_documentation".to_owned(), json!(documentation));
        }
        Value::Object(document)
    }

    /// The `200` answer with the document (`application/json`, RFC 9728 §3.2),
    /// cacheable for an hour.
    pub fn response(&self) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(self.to_json().to_string()));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE));
        response
    }

    /// A router answering `GET` (and `HEAD`) at [`path`](Self::path) with the
    /// document. Merge it into the app at the root, outside any prefix (the
    /// well-known path is at the host's root, whatever the resource's path).
    ///
    /// ```
    /// use axum::Router;
    /// use tower_stepup::ResourceMetadata;
    ///
    /// let metadata = ResourceMetadata::new("https://api.example.com/mcp")?;
    /// let app: Router = Router::new().merge(metadata.router());
    /// # let _ = app;
    /// # Ok::<(), tower_stepup::ConfigError>(())
    /// ```
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let document = self.clone();
        axum::Router::new().route(
            &self.path,
            axum::routing::get(move || {
                let response = document.response();
                async move { response.map(axum::body::Body::from) }
            }),
        )
    }

    /// Checks what [`new`](Self::new) could not: the URLs given since.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        for server in &self.authorization_servers {
            crate::http_client::check_url("authorization server", server, false)?;
        }
        if let Some(documentation) = &self.documentation {
            crate::http_client::check_url("resource documentation", documentation, false)?;
        }
        Ok(())
    }

    /// The document as the layer serves it: without authorization servers of
    /// its own, those of `issuers` that are `http(s)` URLs.
    pub(crate) fn completed<'a>(mut self, issuers: impl Iterator<Item = &'a str>) -> Self {
        if self.authorization_servers.is_empty() {
            self.authorization_servers = issuers
                .filter(|issuer| crate::http_client::check_url("issuer", issuer, false).is_ok())
                .map(str::to_owned)
                .collect();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9728_path_insertion() {
        let url = |resource: &str| ResourceMetadata::new(resource).map(|m| m.url().to_owned());
        assert_eq!(
            url("https://resource.example.com").unwrap(),
            "https://resource.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            url("https://resource.example.com/").unwrap(),
            "https://resource.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            url("https://resource.example.com/resource1").unwrap(),
            "https://resource.example.com/.well-known/oauth-protected-resource/resource1"
        );
        assert_eq!(
            url("https://resource.example.com:8443/a/b/").unwrap(),
            "https://resource.example.com:8443/.well-known/oauth-protected-resource/a/b/"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/mcp").unwrap(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(url("http://[::1]:8080/mcp").unwrap(), "http://[::1]:8080/.well-known/oauth-protected-resource/mcp");
    }

    #[test]
    fn unusable_identifiers_are_refused() {
        for bad in [
            "resource.example.com",
            "http://resource.example.com/",
            "https://resource.example.com/?a=b",
            "https://resource.example.com/#x",
            "https://user:pw@resource.example.com/",
            "https://resource.example.com/a*b",
            "https://resource.example.com/:id",
            "ftp://resource.example.com/",
        ] {
            assert!(ResourceMetadata::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issuers_fill_in_missing_authorization_servers() {
        let metadata = ResourceMetadata::new("https://api.example.com").unwrap();
        let completed =
            metadata.clone().completed(["https://login.example.com", "stytch.com/project-test-x"].into_iter());
        assert_eq!(completed.to_json()["authorization_servers"], json!(["https://login.example.com"]));
        let own =
            metadata.with_authorization_server("https://as.example.com").completed(["https://x.example"].into_iter());
        assert_eq!(own.to_json()["authorization_servers"], json!(["https://as.example.com"]));
    }
}
