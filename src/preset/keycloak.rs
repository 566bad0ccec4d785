//! Keycloak access tokens.
//!
//! Sources (Keycloak documentation):
//! - Server Administration Guide, "OpenID Connect / Access tokens" and the
//!   `org.keycloak.representations.AccessToken` API docs
//!   (<https://www.keycloak.org/docs-api/latest/javadocs/org/keycloak/representations/AccessToken.html>):
//!   realm roles in `realm_access.roles`, client roles in
//!   `resource_access.{client}.roles`, the requesting client in `azp`, the header
//!   `typ` `JWT`, and the payload `typ` `Bearer` (`ID` for ID tokens, `Refresh` for
//!   refresh tokens).
//! - Server Administration Guide, "Creating an acr to LoA mapping" / step-up
//!   authentication: `acr` is `1` for a fresh login, `0` for one from an SSO cookie,
//!   or the names mapped to levels of assurance.
//! - `AmrProtocolMapper` (Keycloak 23+): `amr` only when the "Authentication Method
//!   Reference (AMR)" mapper is added, with the values configured per authenticator.
//! - "Upgrading Keycloak", 25.0.0, "new basic client scope": `sub` and `auth_time`
//!   in access tokens come from the `basic` scope.
//! - Issuer: `{server}/realms/{realm}` ("Endpoints" in the Securing Applications guide).

use super::Preset;
use crate::guard::Dialect;
use crate::profile::{ClaimPath, OidcProfile};
use crate::verify::TypPolicy;

impl Preset {
    /// Keycloak access tokens of the realm at `realm_url`
    /// (`https://sso.example.com/realms/acme`, the token's `iss`).
    ///
    /// Reads: client id from `azp` (a `client_id` claim, which service-account
    /// tokens carry, must agree), realm roles from `realm_access.roles` (add the
    /// client's roles with [`with_client`](Self::with_client)), scopes from `scope`,
    /// `acr` (`1`, `0`, or your acr-to-LoA names), `amr` when the AMR mapper is
    /// configured, `auth_time`, `sid`. Requires the payload `typ` `Bearer`, so a
    /// Keycloak ID token (`typ` `ID`) is refused even when its audience matches.
    ///
    /// ```
    /// use tower_stepup::{Dialect, Preset};
    ///
    /// let keycloak = Preset::keycloak("https://sso.example.com/realms/acme/").with_client("orders-api");
    /// assert_eq!(keycloak.issuer(), "https://sso.example.com/realms/acme");
    /// assert_eq!(keycloak.dialect(), Dialect::Keycloak);
    /// ```
    pub fn keycloak(realm_url: impl Into<String>) -> Self {
        let issuer = realm_url.into().trim_end_matches('/').to_owned();
        let profile = OidcProfile::new()
            // `azp` is who asked; Keycloak's "Client ID" mapper adds `client_id`.
            .with_client_id_claims(["azp", "client_id"])
            .with_roles_claim(ClaimPath::new(["realm_access", "roles"]))
            .with_required_claim(ClaimPath::claim("typ"), "Bearer");
        Self::new(issuer, profile, TypPolicy::Jwt, Dialect::Keycloak)
    }
}
