//! Okta access tokens (custom authorization servers).
//!
//! Sources (Okta developer documentation):
//! - "OpenID Connect & OAuth 2.0 API", access token claims
//!   (<https://developer.okta.com/docs/api/openapi/okta-oauth/guides/overview/>): the
//!   client in `cid`, the user id in `uid`, scopes in `scp` (an array),
//!   `auth_time`, `ver` `1`; no `amr` in access tokens.
//! - "Validate access tokens" (<https://developer.okta.com/docs/guides/validate-access-tokens/>):
//!   tokens of the org authorization server (issuer `https://{org}.okta.com`, header
//!   `typ` `application/okta-internal-at+jwt`) are for Okta's own APIs and must not
//!   be validated by apps; custom authorization servers issue under
//!   `https://{org}.okta.com/oauth2/{id}` (`/oauth2/default` for the default one).
//! - "Customize tokens with a groups claim"
//!   (<https://developer.okta.com/docs/guides/customize-tokens-groups-claim/>):
//!   a `groups` claim reaches access tokens only from a custom authorization server,
//!   when configured.

use super::Preset;
use crate::guard::Dialect;
use crate::profile::OidcProfile;
use crate::verify::TypPolicy;

impl Preset {
    /// Okta access tokens of the custom authorization server at `issuer_url`
    /// (`https://acme.okta.com/oauth2/default`).
    ///
    /// Reads: client id from `cid`, roles from `groups` (a claim you add to the
    /// authorization server), scopes from `scp`, `auth_time`. Accepts header `typ`
    /// `JWT` or none; org authorization server tokens
    /// (`application/okta-internal-at+jwt`, an issuer without `/oauth2/`) are refused:
    /// Okta says only Okta may consume them, and [`build`](crate::SessionLayerBuilder::build)
    /// reports such an issuer.
    ///
    /// ```
    /// use tower_stepup::Preset;
    ///
    /// let okta = Preset::okta("https://acme.okta.com/oauth2/default");
    /// assert_eq!(okta.profile().client_id_claims()[0].segments(), ["cid"]);
    /// ```
    pub fn okta(issuer_url: impl Into<String>) -> Self {
        let issuer = issuer_url.into().trim_end_matches('/').to_owned();
        let mut preset = Self::new(
            issuer.clone(),
            OidcProfile::new().with_client_id_claims(["cid"]).with_roles_claim("groups"),
            TypPolicy::Jwt,
            Dialect::Okta,
        );
        if !issuer.contains("/oauth2/") {
            preset.invalid = Some(format!(
                "Okta issuer `{issuer}` is the org authorization server, whose access tokens only Okta may \
                 validate; use a custom authorization server (`…/oauth2/default` or `…/oauth2/{{id}}`)"
            ));
        }
        preset
    }
}
