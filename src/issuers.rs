//! Several issuers in one layer: [`IssuerConfig`], and the table the verifier
//! selects a token's rules from.
//!
//! The token's `iss` picks one configuration (its keys, audiences, `typ` policy and
//! claim profile) *before* any signature check, from the unverified payload; the
//! token is then verified against that configuration only, and its signed `iss`
//! must select the very same one. An `iss` no configuration names is refused
//! without touching any key set, so no made-up issuer can cause a fetch.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::jwks::{JwksConfig, KeySource, KeyStore};
use crate::profile::ClaimProfile;
use crate::session::{Names, Session};
use crate::verify::TypPolicy;

/// The placeholder of a tenant-templated issuer (Microsoft's spelling, see
/// [`IssuerConfig::tenant_template`]).
const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The tenant claim of a tenant-templated issuer, unless configured otherwise:
/// Microsoft Entra ID's `tid` ("Represents the tenant that the user is signing in
/// to", learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
const DEFAULT_TENANT_CLAIM: &str = "tid";

/// One issuer (or a family of issuer names sharing one key set) of a layer that
/// accepts tokens from several: its keys, and optionally its own audiences, `typ`
/// policy and claim profile. Add it with
/// [`SessionLayerBuilder::with_issuer_config`](crate::SessionLayerBuilder::with_issuer_config).
///
/// # How a token finds its configuration
///
/// The token's `iss` is read from its (not yet verified) payload and compared, as
/// an exact, case-sensitive string (RFC 7519 §4.1.1; a trailing slash counts), with
/// every issuer name of the layer. The one configuration naming it verifies the
/// token: the signature with *its* keys only, the `typ` with its policy, the
/// audience against its audiences, the claims with its profile. A key of another
/// issuer never verifies the token, and an `iss` no configuration names is refused
/// ([`WrongIssuer`](crate::AuthErrorKind::WrongIssuer)) without fetching any key set.
/// A payload that names `iss` twice is refused ([`Malformed`](crate::AuthErrorKind::Malformed)).
///
/// What a configuration does not set, it takes from the layer's builder: the
/// audiences ([`with_audience`](crate::SessionLayerBuilder::with_audience)), the
/// `typ` policy ([`with_typ`](crate::SessionLayerBuilder::with_typ)) and the claim
/// profile ([`with_profile`](crate::SessionLayerBuilder::with_profile)). Key set
/// limits ([`JwksConfig`]), clock leeway, maximum token age, cookies and guards are
/// the layer's, for every issuer. Each configuration keeps its own key set, refresh
/// schedule and budget of fetches for unknown `kid`s.
///
/// No issuer name may be claimed by two configurations
/// ([`build`](crate::SessionLayerBuilder::build) refuses it).
///
/// # Example
///
/// ```no_run
/// use tower_stepup::{IssuerConfig, KeySource, OidcProfile, SessionLayer, TypPolicy};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Two Keycloak realms, an Auth0 tenant under its canonical and custom domains,
/// // and an Entra ID multi-tenant app for two customer tenants.
/// let realm = |name: &str| format!("https://sso.example.com/realms/{name}");
/// let layer = SessionLayer::multi_issuer()
///     .with_audience("orders-api")
///     .with_typ(TypPolicy::Jwt)
///     .with_issuer_config(IssuerConfig::new(realm("staff"), KeySource::discovery(realm("staff"))))
///     .with_issuer_config(IssuerConfig::new(realm("partners"), KeySource::discovery(realm("partners"))))
///     .with_issuer_config(
///         IssuerConfig::new("https://example.eu.auth0.com/", KeySource::discovery("https://example.eu.auth0.com/"))
///             .with_additional_issuer("https://login.example.com/")
///             .with_audience("https://orders.example.com")
///             .with_profile(OidcProfile::new().with_roles_claim("https://example.com/roles")),
///     )
///     .with_issuer_config(
///         IssuerConfig::tenant_template(
///             "https://login.microsoftonline.com/{tenantid}/v2.0",
///             KeySource::url("https://login.microsoftonline.com/common/discovery/v2.0/keys"),
///         )
///         .with_tenants(["4a1e3c52-0d55-4c3b-a5a5-6c1a0f7d9b21", "e2d1b9a8-7c6f-4e5d-9c8b-1a2b3c4d5e6f"])
///         .with_audience("api://orders"),
///     )
///     .build()
///     .await?;
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[must_use]
pub struct IssuerConfig {
    source: KeySource,
    names: Vec<String>,
    template: Option<TenantTemplate>,
    audiences: Vec<String>,
    typ: Option<TypPolicy>,
    profile: Option<Arc<dyn ClaimProfile>>,
    /// The first misuse of the builder, reported by the layer's `build`.
    invalid: Option<ConfigError>,
}

/// A tenant-templated issuer: `prefix {tenantid} suffix`, for the tenants allowed.
#[derive(Debug, Clone)]
struct TenantTemplate {
    prefix: String,
    suffix: String,
    tenants: Vec<String>,
    claim: String,
}

impl std::fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("source", &self.source)
            .field("names", &self.names)
            .field("template", &self.template)
            .field("audiences", &self.audiences)
            .field("typ", &self.typ)
            .field("profile", &self.profile.is_some())
            .finish_non_exhaustive()
    }
}

impl IssuerConfig {
    /// Tokens whose `iss` is exactly `issuer`, verified with keys from `source`.
    pub fn new(issuer: impl Into<String>, source: KeySource) -> Self {
        Self {
            source,
            names: vec![issuer.into()],
            template: None,
            audiences: Vec::new(),
            typ: None,
            profile: None,
            invalid: None,
        }
    }

    /// Tokens of a multi-tenant issuer: `template` holds one `{tenantid}`, and
    /// only the tenants of [`with_tenants`](Self::with_tenants) are accepted (an
    /// empty allow-list is refused at build: no "any tenant" mode). Keys come from
    /// `source`, shared by every tenant (Entra ID: the `common` JWKS).
    ///
    /// A token is accepted only when its `iss` is the template filled with an
    /// allowed tenant *and* its tenant claim (`tid` unless
    /// [`with_tenant_claim`](Self::with_tenant_claim)) names that same tenant, as
    /// Microsoft asks multi-tenant apps to check ("validate the `tid` claim",
    /// learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-issuer).
    /// Tenants compare exactly, as they appear in tokens (Entra ID: lowercase GUIDs).
    ///
    /// ```
    /// use tower_stepup::{IssuerConfig, KeySource};
    ///
    /// let entra = IssuerConfig::tenant_template(
    ///     "https://login.microsoftonline.com/{tenantid}/v2.0",
    ///     KeySource::url("https://login.microsoftonline.com/common/discovery/v2.0/keys"),
    /// )
    /// .with_tenants(["4a1e3c52-0d55-4c3b-a5a5-6c1a0f7d9b21"]);
    /// # let _ = entra;
    /// ```
    pub fn tenant_template(template: impl Into<String>, source: KeySource) -> Self {
        let template = template.into();
        let mut config = Self {
            source,
            names: Vec::new(),
            template: None,
            audiences: Vec::new(),
            typ: None,
            profile: None,
            invalid: None,
        };
        match template.split_once(TENANT_PLACEHOLDER) {
            Some((prefix, suffix)) if !suffix.contains(TENANT_PLACEHOLDER) && !prefix.is_empty() => {
                config.template = Some(TenantTemplate {
                    prefix: prefix.to_owned(),
                    suffix: suffix.to_owned(),
                    tenants: Vec::new(),
                    claim: DEFAULT_TENANT_CLAIM.to_owned(),
                });
            }
            _ => {
                config.invalid = Some(ConfigError::invalid(
                    "issuer template",
                    "must hold exactly one {tenantid}, after some prefix",
                ));
            }
        }
        config
    }

    /// The tenants a [tenant template](Self::tenant_template) accepts (adds to
    /// the list). Each is non-empty and made of ASCII letters, digits, `-`, `_`
    /// and `.`. On a configuration without a template, an error at build.
    pub fn with_tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tenants: Vec<String> = tenants.into_iter().map(Into::into).collect();
        match &mut self.template {
            Some(template) => template.tenants.extend(tenants),
            None => self.refuse(ConfigError::invalid("tenants", "only an IssuerConfig::tenant_template has tenants")),
        }
        self
    }

    /// The claim that must name the tenant of `iss` (default `tid`). Only for a
    /// [tenant template](Self::tenant_template).
    pub fn with_tenant_claim(mut self, claim: impl Into<String>) -> Self {
        match &mut self.template {
            Some(template) => template.claim = claim.into(),
            None => self.refuse(ConfigError::invalid("tenant claim", "only an IssuerConfig::tenant_template has one")),
        }
        self
    }

    /// Another `iss` for the same issuer, verified with the same keys and rules:
    /// e.g. an Auth0 tenant's custom domain next to its canonical domain (tokens
    /// carry the domain the client used, "Configure Features to Use Custom
    /// Domains", auth0.com/docs/customize/custom-domains/configure-features-to-use-custom-domains).
    pub fn with_additional_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.names.push(issuer.into());
        self
    }

    /// An accepted audience of this issuer's tokens (repeatable). Without any,
    /// the layer's audiences apply.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The `typ` header policy for this issuer's tokens (default: the layer's).
    pub fn with_typ(mut self, typ: TypPolicy) -> Self {
        self.typ = Some(typ);
        self
    }

    /// How this issuer's claims become a session (default: the layer's profile).
    pub fn with_profile(mut self, profile: impl ClaimProfile) -> Self {
        self.profile = Some(Arc::new(profile));
        self
    }

    pub(crate) fn refuse(&mut self, error: ConfigError) {
        self.invalid.get_or_insert(error);
    }

    /// Checks the configuration and makes its key store (which starts nothing).
    pub(crate) fn compile(self, defaults: &Defaults<'_>) -> Result<IssuerRules, ConfigError> {
        if let Some(error) = self.invalid {
            return Err(error);
        }
        let audiences = if self.audiences.is_empty() { defaults.audiences.to_vec() } else { self.audiences };
        let mut names: Vec<IssuerName> =
            self.names.into_iter().map(|issuer| IssuerName::new(issuer, None, &audiences)).collect();
        if let Some(template) = self.template {
            if template.tenants.is_empty() {
                return Err(ConfigError::invalid("tenants", "a tenant template needs an allow-list of tenants"));
            }
            if template.claim.is_empty() {
                return Err(ConfigError::invalid("tenant claim", "empty"));
            }
            for tenant in template.tenants {
                if tenant.is_empty() || !tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                    return Err(ConfigError::invalid("tenants", "a tenant is ASCII letters, digits, '-', '_' or '.'"));
                }
                let issuer = format!("{}{tenant}{}", template.prefix, template.suffix);
                let tenant = Some(Tenant { claim: template.claim.clone(), id: tenant });
                names.push(IssuerName::new(issuer, tenant, &audiences));
            }
        }
        if names.iter().any(|name| name.issuer.is_empty()) {
            return Err(ConfigError::invalid("issuer", "empty"));
        }
        if audiences.is_empty() {
            return Err(ConfigError::Missing("audience"));
        }
        Ok(IssuerRules {
            names,
            remote: Vec::new(),
            role_lists: RoleLists::default(),
            audiences,
            typ: self.typ.unwrap_or(defaults.typ),
            profile: self.profile.unwrap_or_else(|| Arc::clone(defaults.profile)),
            keys: KeyStore::new(self.source, defaults.jwks.clone())?,
        })
    }
}

/// What an [`IssuerConfig`] takes from the layer's builder.
pub(crate) struct Defaults<'a> {
    pub(crate) audiences: &'a [String],
    pub(crate) typ: TypPolicy,
    pub(crate) profile: &'a Arc<dyn ClaimProfile>,
    pub(crate) jwks: &'a JwksConfig,
}

/// The rules of one issuer configuration, ready to verify with.
pub(crate) struct IssuerRules {
    pub(crate) names: Vec<IssuerName>,
    /// Issuers the layer's authority vouches for but this layer does not accept
    /// locally: their tokens are confirmed with the authority (a lapse).
    pub(crate) remote: Vec<String>,
    pub(crate) audiences: Vec<String>,
    /// Role lists shared between this issuer's sessions.
    pub(crate) role_lists: RoleLists,
    pub(crate) typ: TypPolicy,
    pub(crate) profile: Arc<dyn ClaimProfile>,
    pub(crate) keys: Arc<KeyStore>,
}

/// Role lists shared between the sessions of one issuer: most users hold one of a
/// few combinations of roles, and a shared list costs a cached session nothing.
/// At most [`RoleLists::MAX`] lists are kept (a few kilobytes); past that, sessions
/// keep their own.
#[derive(Default)]
pub(crate) struct RoleLists(RwLock<HashSet<Arc<[String]>>>);

impl RoleLists {
    const MAX: usize = 256;

    /// The shared list equal to `roles`, now kept if there is room; `None` when full.
    pub(crate) fn share(&self, roles: &Arc<[String]>) -> Option<Arc<[String]>> {
        if let Some(shared) = self.0.read().unwrap_or_else(PoisonError::into_inner).get(&**roles) {
            return Some(Arc::clone(shared));
        }
        let mut lists = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = lists.get(&**roles) {
            return Some(Arc::clone(shared));
        }
        if lists.len() >= Self::MAX {
            return None;
        }
        lists.insert(Arc::clone(roles));
        Some(Arc::clone(roles))
    }
}

/// An accepted `iss`, with the tenant it stands for under a tenant template.
pub(crate) struct IssuerName {
    pub(crate) issuer: String,
    pub(crate) tenant: Option<Tenant>,
    /// The name and the configured audiences once more, shared with every session
    /// of this issuer with exactly that audience (cached sessions do not each hold
    /// a copy).
    shared: Arc<Names>,
}

impl IssuerName {
    fn new(issuer: String, tenant: Option<Tenant>, audiences: &[String]) -> Self {
        Self { shared: Names::new(&issuer, audiences.to_vec()), issuer, tenant }
    }
}

/// The tenant a templated `iss` names, and the claim that must agree.
pub(crate) struct Tenant {
    pub(crate) claim: String,
    pub(crate) id: String,
}

/// Every issuer configuration of a layer; never empty.
pub(crate) struct IssuerTable {
    entries: Vec<IssuerRules>,
}

/// The configuration an `iss` selected.
#[derive(Clone, Copy)]
pub(crate) struct Selected<'a> {
    pub(crate) rules: &'a IssuerRules,
    /// `None`: an issuer only the authority vouches for.
    name: Option<&'a IssuerName>,
}

impl IssuerTable {
    /// Checks that no issuer name is claimed twice. `entries` is not empty.
    pub(crate) fn new(entries: Vec<IssuerRules>) -> Result<Self, ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for rules in &entries {
            for issuer in rules.names.iter().map(|name| &name.issuer).chain(&rules.remote) {
                if !seen.insert(issuer.as_str()) {
                    return Err(ConfigError::invalid("issuer", format!("{issuer:?} is named by two configurations")));
                }
            }
        }
        if entries.is_empty() {
            return Err(ConfigError::Missing("issuer"));
        }
        Ok(Self { entries })
    }

    /// Whether one configuration serves every token: then the signed `iss` is
    /// checked after the signature, as a single-issuer layer always did, and the
    /// payload is not read before the signature check.
    pub(crate) fn single(&self) -> Option<&IssuerRules> {
        match self.entries.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The configuration naming `issuer`: exactly, else as an issuer the authority
    /// vouches for.
    pub(crate) fn select(&self, issuer: &str) -> Option<Selected<'_>> {
        let exact = self.entries.iter().find_map(|rules| {
            rules.names.iter().find(|name| name.issuer == issuer).map(|name| Selected { rules, name: Some(name) })
        });
        exact.or_else(|| {
            self.entries
                .iter()
                .find(|rules| rules.remote.iter().any(|remote| remote == issuer))
                .map(|rules| Selected { rules, name: None })
        })
    }

    /// Whether some configuration has issuers only the authority vouches for.
    pub(crate) fn has_remote(&self) -> bool {
        self.entries.iter().any(|rules| !rules.remote.is_empty())
    }

    /// Every issuer name accepted locally (not those only the authority vouches for).
    pub(crate) fn issuer_names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().flat_map(|rules| rules.names.iter().map(|name| name.issuer.as_str()))
    }

    /// Every configuration.
    pub(crate) fn entries(&self) -> &[IssuerRules] {
        &self.entries
    }
}

impl Selected<'_> {
    /// Whether the `iss` is one only the authority vouches for.
    pub(crate) fn is_remote(&self) -> bool {
        self.name.is_none()
    }

    /// Whether this selection is of the configuration `rules`.
    pub(crate) fn is_of(&self, rules: &IssuerRules) -> bool {
        std::ptr::eq(self.rules, rules)
    }

    /// `session` (fresh from the profile) sharing this issuer's name, audience and
    /// role lists.
    pub(crate) fn share_names(&self, session: Session) -> Session {
        session.share_names(self.name.map(|name| &name.shared), |roles| self.rules.role_lists.share(roles))
    }

    /// At least one audience of the token is one of this issuer's.
    pub(crate) fn check_audience(&self, audience: &[String]) -> Result<(), AuthError> {
        if audience.iter().any(|a| self.rules.audiences.contains(a)) {
            Ok(())
        } else {
            Err(AuthErrorKind::WrongAudience.into())
        }
    }

    /// Under a tenant template, the tenant claim (`tenant_claim(name)`) must name
    /// the tenant of `iss`.
    pub(crate) fn check_tenant<'v>(
        &self,
        tenant_claim: impl FnOnce(&str) -> Option<&'v Value>,
    ) -> Result<(), AuthError> {
        let Some(tenant) = self.name.and_then(|name| name.tenant.as_ref()) else {
            return Ok(());
        };
        match tenant_claim(&tenant.claim) {
            None | Some(Value::Null) => Err(AuthError::with_detail(AuthErrorKind::MissingClaim, tenant.claim.clone())),
            Some(Value::String(id)) if *id == tenant.id => Ok(()),
            Some(_) => Err(AuthError::with_detail(
                AuthErrorKind::InvalidClaim,
                format!("{} does not name the tenant of iss", tenant.claim),
            )),
        }
    }

    /// The issuer's rules for an answer of the authority about `session`: its
    /// audiences (an empty audience is the caller's to judge) and its tenant.
    pub(crate) fn check_session(&self, session: &Session) -> Result<(), AuthError> {
        let claims = session.raw_claims();
        self.check_tenant(|claim| claims.get(claim))?;
        if session.audience().is_empty() {
            return Ok(());
        }
        self.check_audience(session.audience())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::OidcProfile;

    fn compile(config: IssuerConfig) -> Result<IssuerRules, ConfigError> {
        let profile: Arc<dyn ClaimProfile> = Arc::new(OidcProfile::new());
        let audiences = vec!["api".to_owned()];
        let jwks = JwksConfig::default();
        config.compile(&Defaults { audiences: &audiences, typ: TypPolicy::Jwt, profile: &profile, jwks: &jwks })
    }

    fn keys() -> KeySource {
        KeySource::from_json(r#"{"keys": []}"#).unwrap()
    }

    #[test]
    fn templates_expand_to_the_allowed_tenants_only() {
        let rules = compile(
            IssuerConfig::tenant_template("https://login.microsoftonline.com/{tenantid}/v2.0", keys())
                .with_tenants(["t1", "t2"]),
        )
        .unwrap();
        let names: Vec<&str> = rules.names.iter().map(|n| n.issuer.as_str()).collect();
        assert_eq!(names, ["https://login.microsoftonline.com/t1/v2.0", "https://login.microsoftonline.com/t2/v2.0"]);
        assert_eq!(rules.audiences, ["api"], "the layer's audiences by default");
    }

    #[test]
    fn misconfigurations_are_refused() {
        let template = |t: &str| IssuerConfig::tenant_template(t, keys());
        assert!(compile(template("https://x/{tenantid}/{tenantid}").with_tenants(["a"])).is_err());
        assert!(compile(template("https://x/v2.0").with_tenants(["a"])).is_err());
        assert!(compile(template("https://x/{tenantid}/v2.0")).is_err(), "no allow-list");
        assert!(compile(template("https://x/{tenantid}/v2.0").with_tenants(["a/b"])).is_err());
        assert!(compile(template("https://x/{tenantid}/v2.0").with_tenants([""])).is_err());
        assert!(compile(IssuerConfig::new("https://x", keys()).with_tenants(["a"])).is_err());
        assert!(compile(IssuerConfig::new("", keys())).is_err());
        let a = compile(IssuerConfig::new("https://a", keys())).unwrap();
        let b = compile(IssuerConfig::new("https://b", keys()).with_additional_issuer("https://a")).unwrap();
        assert!(IssuerTable::new(vec![a, b]).is_err(), "one name, two configurations");
    }

    #[test]
    fn selection_is_exact() {
        let a = compile(IssuerConfig::new("https://a.example/", keys())).unwrap();
        let table = IssuerTable::new(vec![a]).unwrap();
        assert!(table.select("https://a.example/").is_some());
        assert!(table.select("https://a.example").is_none(), "a trailing slash counts");
        assert!(table.select("https://A.example/").is_none(), "case counts");
    }
}
