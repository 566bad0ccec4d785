//! Auth0 access tokens.
//!
//! Sources (Auth0 documentation):
//! - "Access Token Profiles" (<https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles>):
//!   the Auth0 profile (default) has header `typ` `JWT` and the client in `azp`; the
//!   RFC 9068 profile has `typ` `at+jwt`, `client_id` and `jti`. Both carry `scope`
//!   (space separated) and, with RBAC's "Add Permissions in the Access Token",
//!   `permissions` (an array).
//! - "Create Custom Claims" (<https://auth0.com/docs/secure/tokens/json-web-tokens/create-custom-claims>):
//!   roles reach a token only through a custom claim an Action sets, namespaced by
//!   a URL (`https://example.com/roles`).
//! - "Get Issuer" / tenant domains: `iss` is `https://{domain}/`, trailing slash
//!   included; a custom domain issues under its own name.
//! - Access tokens carry no `auth_time` unless an Action adds one; `amr` is
//!   `["mfa"]` after multi-factor authentication ("Step-up Authentication for APIs").

use super::{url_of, Preset};
use crate::guard::Dialect;
use crate::profile::OidcProfile;
use crate::verify::TypPolicy;

impl Preset {
    /// Auth0 access tokens of the tenant `domain` (`acme.eu.auth0.com`, or a custom
    /// domain; a full `https://…` URL is taken as given). The issuer is
    /// `https://{domain}/`, with Auth0's trailing slash.
    ///
    /// Reads: client id from `azp` (Auth0 profile) or `client_id` (RFC 9068
    /// profile), scopes from `scope` and `permissions`, `amr` (`mfa`), `acr` and
    /// `auth_time` when an Action adds them. Roles come only from the namespaced
    /// claim you name with [`with_roles_claim`](Self::with_roles_claim). Accepts
    /// `typ` `JWT` and `at+jwt` (one per token profile).
    ///
    /// ```
    /// use tower_stepup::Preset;
    ///
    /// let auth0 = Preset::auth0("acme.eu.auth0.com").with_roles_claim("https://acme.example/roles");
    /// assert_eq!(auth0.issuer(), "https://acme.eu.auth0.com/");
    /// assert_eq!(auth0.profile().roles_claims()[0].segments(), ["https://acme.example/roles"]);
    /// ```
    pub fn auth0(domain: impl Into<String>) -> Self {
        let domain = domain.into();
        let issuer = format!("{}/", url_of(&domain).trim_end_matches('/'));
        let profile = OidcProfile::new()
            .with_client_id_claims(["azp", "client_id"])
            .with_roles_claims(Vec::<String>::new())
            .with_scopes_claim("permissions");
        Self::new(issuer, profile, TypPolicy::JwtOrAccessToken, Dialect::Auth0)
    }
}
