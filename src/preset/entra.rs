//! Microsoft Entra ID v2.0 access tokens.
//!
//! Sources (Microsoft identity platform documentation):
//! - "Access token claims reference"
//!   (<https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference>):
//!   header `typ` always `JWT`; `azp` is the client in v2.0 tokens (`appid` in
//!   v1.0 only); `scp` is a space-separated string; `roles` an array; `acr`, `amr`
//!   are "only present in v1.0 tokens", and no `auth_time` is listed; `acrs`
//!   carries auth context ids; `iss` ends in `/v2.0` for v2.0 tokens.
//! - "National clouds" (<https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud>):
//!   other authority hosts (`login.microsoftonline.us`, `login.partner.microsoftonline.cn`).

use super::Preset;
use crate::guard::Dialect;
use crate::profile::OidcProfile;
use crate::verify::TypPolicy;

/// The public cloud's authority host.
const PUBLIC_CLOUD: &str = "https://login.microsoftonline.com";

impl Preset {
    /// Microsoft Entra ID v2.0 access tokens of the tenant `tenant_id` (a GUID):
    /// issuer `https://login.microsoftonline.com/{tenant_id}/v2.0` (change the host
    /// with [`with_authority_host`](Self::with_authority_host)). Set your app's
    /// `accessTokenAcceptedVersion` to 2 so tokens come in this form.
    ///
    /// Reads: client id from `azp` (`appid` must agree if present), roles from
    /// `roles`, scopes from `scp`. v2.0 access tokens carry no `acr`, `amr` or
    /// `auth_time`: [`Requirement::max_age`](crate::Requirement::max_age),
    /// [`multi_factor`](crate::Requirement::multi_factor) and factor rules can never
    /// pass, which the startup findings say ([`Dialect::Entra`]).
    ///
    /// ```
    /// use tower_stepup::Preset;
    ///
    /// let entra = Preset::entra("9188040d-6c67-4c5b-b112-36a304b66dad");
    /// assert_eq!(entra.issuer(), "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0");
    /// ```
    pub fn entra(tenant_id: impl Into<String>) -> Self {
        let tenant = tenant_id.into();
        let mut preset = Self::new(
            format!("{PUBLIC_CLOUD}/{tenant}/v2.0"),
            OidcProfile::new().with_client_id_claims(["azp", "appid"]).with_roles_claim("roles"),
            TypPolicy::Jwt,
            Dialect::Entra,
        );
        if tenant.is_empty()
            || tenant.contains('/')
            || matches!(tenant.as_str(), "common" | "organizations" | "consumers")
        {
            // Tokens always name the user's own tenant; a multi-tenant alias never
            // appears in `iss`.
            preset.invalid = Some(format!(
                "Entra tenant `{tenant}`: name the tenant id (a GUID); `common`, `organizations` and `consumers` never appear in a token's issuer"
            ));
        }
        preset
    }

    /// The authority host of an Entra preset, for national clouds
    /// (`https://login.microsoftonline.us`): the issuer becomes
    /// `{host}/{tenant_id}/v2.0`. Only for presets made with
    /// [`entra`](Self::entra); others are left unchanged.
    #[must_use]
    pub fn with_authority_host(mut self, host: impl Into<String>) -> Self {
        if self.dialect == Dialect::Entra {
            if let Some(rest) = self.issuer.strip_prefix(PUBLIC_CLOUD).map(str::to_owned).or_else(|| {
                // Already moved once: keep the `/{tenant}/v2.0` tail.
                self.issuer
                    .rfind("/v2.0")
                    .and_then(|end| self.issuer[..end].rfind('/'))
                    .map(|at| self.issuer[at..].to_owned())
            }) {
                self.issuer = format!("{}{rest}", super::url_of(&host.into()).trim_end_matches('/'));
            }
        }
        self
    }
}
