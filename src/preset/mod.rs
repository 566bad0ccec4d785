//! Provider presets: a configured [`OidcProfile`], `typ` policy, issuer form and
//! [`Dialect`] for the providers people run, one file per provider. A preset is
//! configuration of the generic OIDC path, never a fork of it.

mod auth0;
mod entra;
mod keycloak;
mod okta;

use crate::error::ConfigError;
use crate::guard::Dialect;
use crate::jwks::KeySource;
use crate::layer::{SessionLayer, SessionLayerBuilder};
use crate::profile::{ClaimPath, OidcProfile};
use crate::verify::TypPolicy;

/// How one identity provider's access tokens look: the issuer, the accepted `typ`
/// header, where the client id, roles, scopes, `acr`, `amr` and `auth_time` are, and
/// the [`Dialect`] requirements are checked against at startup.
///
/// | preset | issuer | `typ` | client id | roles | scopes |
/// |---|---|---|---|---|---|
/// | [`keycloak`](Self::keycloak) | the realm URL | `JWT` (and payload `typ` `Bearer`) | `azp` (`client_id` must agree) | `realm_access.roles`, plus `resource_access.{client}.roles` with [`with_client`](Self::with_client) | `scope` |
/// | [`auth0`](Self::auth0) | `https://{domain}/` | `JWT` or `at+jwt` | `azp` or `client_id` | none unless [`with_roles_claim`](Self::with_roles_claim) (a namespaced claim an Action adds) | `scope` and `permissions` |
/// | [`entra`](Self::entra) | `https://login.microsoftonline.com/{tenant}/v2.0` | `JWT` | `azp` (`appid` must agree) | `roles` | `scp` |
/// | [`okta`](Self::okta) | the custom authorization server's URL | `JWT` or none | `cid` | `groups` | `scp` |
/// | [`generic`](Self::generic) | set with [`with_issuer`](Self::with_issuer) | `at+jwt` | `client_id` | `roles` | `scope`, `scp` |
///
/// Put one on a layer with [`SessionLayer::from_preset`]; change what it reads with
/// [`with_roles_claim`](Self::with_roles_claim),
/// [`with_allowed_clients`](Self::with_allowed_clients) or
/// [`map_profile`](Self::map_profile).
///
/// # Example
///
/// ```no_run
/// use tower_stepup::{Preset, SessionLayer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Keycloak: realm roles and the roles of the `orders-api` client count.
/// let keycloak = Preset::keycloak("https://sso.example.com/realms/acme").with_client("orders-api");
/// let layer = SessionLayer::from_preset(&keycloak, "orders-api").build().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Preset {
    issuer: String,
    profile: OidcProfile,
    typ: TypPolicy,
    dialect: Dialect,
    /// A problem with the preset's own settings, reported by the layer's `build`.
    invalid: Option<String>,
}

impl Preset {
    /// RFC 9068 access tokens of any provider: what [`SessionLayer::oidc`] sets
    /// (`typ` `at+jwt`, [`OidcProfile::rfc9068`], [`Dialect::Oidc`]). Name the
    /// issuer with [`with_issuer`](Self::with_issuer).
    pub fn generic() -> Self {
        Self::new(String::new(), OidcProfile::rfc9068(), TypPolicy::AccessToken, Dialect::Oidc)
    }

    fn new(issuer: String, profile: OidcProfile, typ: TypPolicy, dialect: Dialect) -> Self {
        Self { issuer, profile, typ, dialect, invalid: None }
    }

    /// Sets the issuer (`iss`, compared exactly; keys are discovered there).
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Reads roles from this claim path only, replacing the preset's (see
    /// [`ClaimPath`] for the dotted form).
    #[must_use]
    pub fn with_roles_claim(mut self, path: impl Into<ClaimPath>) -> Self {
        self.profile = self.profile.with_roles_claim(path);
        self
    }

    /// Also counts the roles of this client: `resource_access.{client}.roles`, as
    /// Keycloak sends client roles. The client id is one segment, dots included.
    #[must_use]
    pub fn with_client(mut self, client_id: impl Into<String>) -> Self {
        let path = ClaimPath::new(["resource_access".to_owned(), client_id.into(), "roles".to_owned()]);
        self.profile = self.profile.with_additional_roles_claim(path);
        self
    }

    /// Only tokens issued to these clients pass (see
    /// [`OidcProfile::with_allowed_clients`]).
    #[must_use]
    pub fn with_allowed_clients<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.profile = self.profile.with_allowed_clients(clients);
        self
    }

    /// Changes the preset's claim profile.
    ///
    /// ```
    /// use tower_stepup::Preset;
    ///
    /// let okta = Preset::okta("https://acme.okta.com/oauth2/default")
    ///     .map_profile(|profile| profile.with_ip_address_claim("login_ip"));
    /// # let _ = okta;
    /// ```
    #[must_use]
    pub fn map_profile(mut self, change: impl FnOnce(OidcProfile) -> OidcProfile) -> Self {
        self.profile = change(self.profile);
        self
    }

    /// The issuer (`iss`) the preset's tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The claim profile.
    pub fn profile(&self) -> OidcProfile {
        self.profile.clone()
    }
    /// The accepted `typ` header.
    pub fn typ(&self) -> TypPolicy {
        self.typ
    }
    /// The dialect requirements are checked against ([`Requirement::findings`](crate::Requirement::findings)).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

impl crate::IssuerConfig {
    /// One issuer of a [multi-issuer](SessionLayer::multi_issuer) layer shaped like
    /// `preset`'s provider: its issuer, keys through discovery there, its `typ` policy
    /// and claim profile. Audiences come from the layer unless
    /// [`with_audience`](crate::IssuerConfig::with_audience) names them.
    ///
    /// ```no_run
    /// use tower_stepup::{IssuerConfig, Preset, SessionLayer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // Two Keycloak realms behind one API.
    /// let staff = Preset::keycloak("https://sso.example.com/realms/staff").with_client("orders-api");
    /// let partners = Preset::keycloak("https://sso.example.com/realms/partners").with_client("orders-api");
    /// let layer = SessionLayer::multi_issuer()
    ///     .with_audience("orders-api")
    ///     .with_issuer_config(IssuerConfig::from_preset(&staff))
    ///     .with_issuer_config(IssuerConfig::from_preset(&partners))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn from_preset(preset: &Preset) -> Self {
        let mut config = Self::new(preset.issuer.clone(), KeySource::discovery(preset.issuer.clone()))
            .with_typ(preset.typ)
            .with_profile(preset.profile.clone());
        match &preset.invalid {
            Some(reason) => config.refuse(ConfigError::invalid("preset", reason.clone())),
            None if preset.issuer.is_empty() => config.refuse(ConfigError::invalid("preset", "no issuer")),
            None => {}
        }
        config
    }
}

impl SessionLayer {
    /// A layer for the access tokens of `preset`'s provider, for the API `audience`:
    /// keys through discovery at the preset's issuer, its `typ` policy, claim
    /// profile and dialect, bearer tokens only (no cookies). Add settings to the
    /// builder as usual.
    ///
    /// [`build`](SessionLayerBuilder::build) reports a preset without an issuer and
    /// a preset's own problems (e.g. an Okta org authorization server).
    ///
    /// ```no_run
    /// use tower_stepup::{Preset, SessionLayer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // Auth0: roles from a claim an Action adds, permissions as scopes.
    /// let auth0 = Preset::auth0("acme.eu.auth0.com").with_roles_claim("https://acme.example/roles");
    /// let layer = SessionLayer::from_preset(&auth0, "https://api.acme.example").build().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_preset(preset: &Preset, audience: impl Into<String>) -> SessionLayerBuilder {
        let issuer = preset.issuer.clone();
        let mut builder = Self::builder(KeySource::discovery(issuer.clone()))
            .with_audience(audience)
            .with_typ(preset.typ)
            .with_profile(preset.profile.clone())
            .with_dialect(preset.dialect);
        // No issuer: `build` says `missing setting: issuer`.
        if !issuer.is_empty() {
            builder = builder.with_issuer(issuer);
        }
        if let Some(reason) = &preset.invalid {
            builder = builder.refuse(ConfigError::invalid("preset", reason.clone()));
        }
        builder
    }
}

/// `https://{host}` for a bare host name; a URL stays as given.
fn url_of(host_or_url: &str) -> String {
    if host_or_url.starts_with("https://") || host_or_url.starts_with("http://") {
        host_or_url.to_owned()
    } else {
        format!("https://{host_or_url}")
    }
}
