//! A Stytch project: where its keys and session API live, and what its tokens say.

use crate::error::ConfigError;
use crate::secret::Secret;

/// A Stytch project (consumer or B2B).
///
/// The constructors check the project id at once. The `with_*` methods never fail:
/// an unusable URL given to [`with_base_url`](Self::with_base_url) or
/// [`with_custom_domain`](Self::with_custom_domain) is kept aside (the project keeps
/// its previous base URL) and reported as [`ConfigError::Invalid`] by
/// [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build) for a layer
/// from [`SessionLayer::stytch`](crate::SessionLayer::stytch), and by
/// [`StytchAuthority::new`](crate::StytchAuthority::new).
///
/// The API base URL follows the project id: `https://test.stytch.com` for
/// `project-test-…`, `https://api.stytch.com` for `project-live-…`, unless a custom
/// domain or another base URL is set.
///
/// # Example
///
/// ```
/// use tower_stepup::StytchProject;
///
/// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?;
/// assert_eq!(
///     project.jwks_url(),
///     "https://test.stytch.com/v1/sessions/jwks/project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62"
/// );
///
/// let b2b = StytchProject::b2b("project-live-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
///     .with_custom_domain("https://login.example.com/");
/// assert_eq!(
///     b2b.jwks_url(),
///     "https://login.example.com/v1/b2b/sessions/jwks/project-live-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62"
/// );
/// assert!(b2b.issuers().contains(&"https://login.example.com".to_owned()));
///
/// // Plain http is refused (except for loopback hosts), when the project is used.
/// let insecure = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?
///     .with_base_url("http://stytch.example.com")
///     .with_secret("secret-test-…");
/// assert!(tower_stepup::StytchAuthority::new(&insecure).is_err());
/// # Ok::<(), tower_stepup::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StytchProject {
    project_id: String,
    base_url: String,
    b2b: bool,
    issuers: Vec<String>,
    secret: Option<Secret>,
    /// The first unusable URL given to a `with_*` method: `(setting, reason)`,
    /// reported by whatever consumes the project (see the type's docs).
    invalid: Option<(&'static str, String)>,
}

impl StytchProject {
    /// A consumer project.
    pub fn consumer(project_id: impl Into<String>) -> Result<Self, ConfigError> {
        Self::new(project_id.into(), false)
    }

    /// A B2B project (`/v1/b2b/…` endpoints, member sessions, organizations).
    pub fn b2b(project_id: impl Into<String>) -> Result<Self, ConfigError> {
        Self::new(project_id.into(), true)
    }

    fn new(project_id: String, b2b: bool) -> Result<Self, ConfigError> {
        let base_url = if project_id.starts_with("project-test-") {
            "https://test.stytch.com"
        } else if project_id.starts_with("project-live-") {
            "https://api.stytch.com"
        } else {
            return Err(ConfigError::invalid("Stytch project id", "expected project-test-… or project-live-…"));
        };
        if !project_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ConfigError::invalid("Stytch project id", "unexpected characters"));
        }
        Ok(Self {
            // As stytch-node: the original `stytch.com/{project_id}` form, and the
            // API base URL (the OIDC form, used under a custom domain).
            issuers: vec![format!("stytch.com/{project_id}"), base_url.to_owned()],
            project_id,
            base_url: base_url.to_owned(),
            b2b,
            secret: None,
            invalid: None,
        })
    }

    /// Uses another API base URL (a proxy, or a local test issuer). The accepted
    /// issuers do not change ([`issuers`](Self::issuers)): a proxy's or a test
    /// server's URL is not a name Stytch issues tokens under. A JWT that names this
    /// URL as its issuer is instead confirmed with the project's
    /// [`StytchAuthority`](crate::StytchAuthority) (when the project carries its
    /// secret), as the remote fallback of
    /// [`with_authority`](crate::SessionLayerBuilder::with_authority) describes;
    /// without an authority it is refused. (stytch-node accepts its
    /// `custom_base_url` as an issuer outright.)
    ///
    /// The URL must be absolute `https` (plain `http` only for loopback hosts); an
    /// unusable one is reported when the project is used (see the type's docs).
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.set_base("Stytch base URL", &base_url.into());
        self
    }

    /// Uses a custom API domain: the base URL becomes the domain, and tokens issued
    /// under it (`iss` = the domain's base URL) are accepted too.
    ///
    /// The URL must be absolute `https` (plain `http` only for loopback hosts); an
    /// unusable one is reported when the project is used (see the type's docs).
    #[must_use]
    pub fn with_custom_domain(mut self, base_url: impl Into<String>) -> Self {
        if self.set_base("Stytch custom domain", &base_url.into()) {
            // The second issuer is always the API domain's (see `new`).
            self.issuers.truncate(1);
            self.issuers.push(self.base_url.clone());
        }
        self
    }

    /// Takes `url` as the base URL when it is usable, else keeps the first error;
    /// `true` when taken.
    fn set_base(&mut self, name: &'static str, url: &str) -> bool {
        let trimmed = url.trim_end_matches('/');
        match crate::http_client::check_url(name, trimmed, false) {
            Ok(_) => {
                trimmed.clone_into(&mut self.base_url);
                true
            }
            Err(error) => {
                let reason = match error {
                    ConfigError::Invalid { reason, .. } => reason,
                    other => other.to_string(),
                };
                self.invalid.get_or_insert((name, reason));
                false
            }
        }
    }

    /// The first unusable setting given to a `with_*` method.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        match &self.invalid {
            Some((name, reason)) => Err(ConfigError::invalid(name, reason.clone())),
            None => Ok(()),
        }
    }

    /// The project secret, for calls to the session API (`fresh()` guards, opaque
    /// session tokens).
    #[must_use]
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(Secret::new(secret));
        self
    }

    /// The project id.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }
    /// The API base URL, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    /// Whether this is a B2B project.
    pub fn is_b2b(&self) -> bool {
        self.b2b
    }
    /// The accepted `iss` values, the two stytch-node accepts:
    /// `stytch.com/{project_id}`, and the API domain without trailing slash
    /// (`https://test.stytch.com` for `project-test-…`, `https://api.stytch.com`
    /// for `project-live-…`, or the [custom domain](Self::with_custom_domain)). A
    /// [base URL](Self::with_base_url) is not among them.
    ///
    /// ```
    /// use tower_stepup::StytchProject;
    ///
    /// let id = "project-live-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62";
    /// let project = StytchProject::consumer(id)?;
    /// assert_eq!(project.issuers(), [format!("stytch.com/{id}"), "https://api.stytch.com".to_owned()]);
    /// let custom = project.with_custom_domain("https://login.example.com/");
    /// assert_eq!(custom.issuers(), [format!("stytch.com/{id}"), "https://login.example.com".to_owned()]);
    /// # Ok::<(), tower_stepup::ConfigError>(())
    /// ```
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }
    /// The issuers a Stytch authority of this project vouches for: the accepted
    /// ones, and the API base URL when it is not one of them (a proxy or test
    /// server set with `with_base_url`).
    pub(crate) fn vouched_issuers(&self) -> Vec<String> {
        let mut issuers = self.issuers.clone();
        if !issuers.contains(&self.base_url) {
            issuers.push(self.base_url.clone());
        }
        issuers
    }
    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/v1/{}sessions/jwks/{}", self.base_url, self.b2b_prefix(), self.project_id)
    }
    /// The `sessions/authenticate` URL.
    pub fn authenticate_url(&self) -> String {
        format!("{}/v1/{}sessions/authenticate", self.base_url, self.b2b_prefix())
    }
    /// The `sessions/revoke` URL.
    pub fn revoke_url(&self) -> String {
        format!("{}/v1/{}sessions/revoke", self.base_url, self.b2b_prefix())
    }
    pub(crate) fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }
    fn b2b_prefix(&self) -> &'static str {
        if self.b2b {
            "b2b/"
        } else {
            ""
        }
    }
}
