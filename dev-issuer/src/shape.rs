//! Provider-shaped access tokens: what Keycloak, Auth0, Microsoft Entra ID and Okta
//! put into their access tokens, so apps test against what production sends.
//!
//! Each shape follows the provider's documentation (the same pages tower-stepup's
//! presets name): Keycloak's `AccessToken` representation, Auth0's "Access Token
//! Profiles", Microsoft's "Access token claims reference" (v2.0), Okta's OIDC & OAuth
//! 2.0 API reference.

use std::fmt;

use serde_json::{json, Map, Value};

/// The realm of the Keycloak shape: its issuer is `{base_url}/realms/dev`.
pub const DEV_KEYCLOAK_REALM: &str = "dev";
/// The tenant of the Entra shape: its issuer is `{base_url}/{tenant}/v2.0`.
pub const DEV_ENTRA_TENANT: &str = "11111111-2222-4333-8444-555555555555";
/// The authorization server of the Okta shape: its issuer is `{base_url}/oauth2/default`.
pub const DEV_OKTA_SERVER: &str = "default";
/// Where the Auth0 shape puts roles unless told otherwise: a namespaced claim, as
/// Auth0's "Add user roles to tokens" Action writes one.
pub const DEV_AUTH0_ROLES_CLAIM: &str = "https://my-app.example.com/roles";

/// Which provider an access token imitates; see [`AccessTokenBuilder::shape`](crate::AccessTokenBuilder::shape).
///
/// | shape | `iss` | header `typ` | client | roles | scopes | `acr` / `amr` / `auth_time` |
/// |---|---|---|---|---|---|---|
/// | `rfc9068` | `{base}` | `at+jwt` | `client_id` | `roles` | `scope` | as set |
/// | `keycloak` | `{base}/realms/dev` | `JWT` (payload `typ` `Bearer`) | `azp` | `realm_access.roles`, `resource_access.{client}.roles` | `scope` | `acr` (default `1`), `amr`, `auth_time` as set |
/// | `auth0` | `{base}/auth0/` | `JWT` | `azp` | [`DEV_AUTH0_ROLES_CLAIM`] | `scope`, `permissions` | `amr` `["mfa"]` after two kinds of method; no `acr`, no `auth_time` |
/// | `entra` | `{base}/{DEV_ENTRA_TENANT}/v2.0` | `JWT` | `azp` | `roles` | `scp` (string) | none (v2.0 tokens carry none) |
/// | `okta` | `{base}/oauth2/default` | none | `cid` | `groups` | `scp` (array) | `auth_time`; no `amr`, no `acr` |
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevShape {
    /// RFC 9068 (the default).
    #[default]
    Rfc9068,
    /// Keycloak.
    Keycloak,
    /// Auth0 (its default "Auth0" token profile).
    Auth0,
    /// Microsoft Entra ID, v2.0 access tokens.
    Entra,
    /// Okta, custom authorization server.
    Okta,
}

impl DevShape {
    /// Every shape.
    pub const ALL: [DevShape; 5] = [Self::Rfc9068, Self::Keycloak, Self::Auth0, Self::Entra, Self::Okta];

    /// The shape named `name` (`rfc9068`, `keycloak`, `auth0`, `entra`, `okta`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|shape| shape.as_str().eq_ignore_ascii_case(name))
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc9068 => "rfc9068",
            Self::Keycloak => "keycloak",
            Self::Auth0 => "auth0",
            Self::Entra => "entra",
            Self::Okta => "okta",
        }
    }

    /// The issuer of this shape's tokens, under the dev issuer's `base_url`.
    pub fn issuer(self, base_url: &str) -> String {
        match self {
            Self::Rfc9068 => base_url.to_owned(),
            Self::Keycloak => format!("{base_url}/realms/{DEV_KEYCLOAK_REALM}"),
            Self::Auth0 => format!("{base_url}/auth0/"),
            Self::Entra => format!("{base_url}/{DEV_ENTRA_TENANT}/v2.0"),
            Self::Okta => format!("{base_url}/oauth2/{DEV_OKTA_SERVER}"),
        }
    }

    /// The default header `typ` (`None`: no `typ`).
    pub(crate) fn typ(self) -> Option<&'static str> {
        match self {
            Self::Rfc9068 => Some("at+jwt"),
            Self::Okta => None,
            Self::Keycloak | Self::Auth0 | Self::Entra => Some("JWT"),
        }
    }

    /// The RFC 8176 `amr` value a dev factor (by its `/dev/login` name) stands for.
    pub(crate) fn amr_of_factor(factor: &str) -> &'static str {
        match factor {
            "password" | "pwd" => "pwd",
            "webauthn" | "passkey" => "hwk",
            "sms_otp" | "sms" => "sms",
            "oauth_google" | "google" | "oauth" => "fed",
            // TOTP, email codes and one-time links: RFC 8176 `otp` covers them all.
            _ => "otp",
        }
    }
}

impl fmt::Display for DevShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a shaped token carries beyond the registered claims.
pub(crate) struct ShapedClaims {
    pub(crate) client_id: String,
    pub(crate) jti: String,
    pub(crate) audience: String,
    pub(crate) scope: Option<String>,
    pub(crate) permissions: Option<Vec<String>>,
    pub(crate) acr: Option<String>,
    pub(crate) amr: Option<Vec<String>>,
    pub(crate) auth_time: Option<i64>,
    pub(crate) sid: Option<String>,
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) client_roles: Vec<(String, Vec<String>)>,
    pub(crate) roles_claim: Option<String>,
}

impl ShapedClaims {
    /// Writes the shape's claims into `obj` (which holds `iss`, `sub`, `iat`, `exp`,
    /// `nbf`).
    pub(crate) fn write(self, shape: DevShape, obj: &mut Map<String, Value>) {
        let issuer = obj.get("iss").and_then(Value::as_str).unwrap_or_default().to_owned();
        let scopes =
            || self.scope.as_deref().map(|s| s.split_ascii_whitespace().map(str::to_owned).collect::<Vec<_>>());
        match shape {
            DevShape::Rfc9068 => {
                obj.insert("aud".into(), json!(self.audience));
                obj.insert("client_id".into(), json!(self.client_id));
                obj.insert("jti".into(), json!(self.jti));
                put(obj, "scope", self.scope.clone().map(Value::String));
                put(obj, "acr", self.acr.clone().map(Value::String));
                put(obj, "amr", self.amr.clone().map(|a| json!(a)));
                put(obj, "auth_time", self.auth_time.map(|t| json!(t)));
                put(obj, "sid", self.sid.clone().map(Value::String));
                put(obj, "roles", self.roles.clone().map(|r| json!(r)));
            }
            DevShape::Keycloak => {
                obj.insert("aud".into(), json!(self.audience));
                obj.insert("jti".into(), json!(self.jti));
                obj.insert("typ".into(), json!("Bearer"));
                obj.insert("azp".into(), json!(self.client_id));
                obj.insert("acr".into(), json!(self.acr.clone().unwrap_or_else(|| "1".to_owned())));
                put(obj, "amr", self.amr.clone().map(|a| json!(a)));
                put(obj, "auth_time", self.auth_time.map(|t| json!(t)));
                put(obj, "sid", self.sid.clone().map(Value::String));
                obj.insert("realm_access".into(), json!({ "roles": self.roles.clone().unwrap_or_default() }));
                if !self.client_roles.is_empty() {
                    let access: Map<String, Value> = self
                        .client_roles
                        .iter()
                        .map(|(client, roles)| (client.clone(), json!({ "roles": roles })))
                        .collect();
                    obj.insert("resource_access".into(), Value::Object(access));
                }
                obj.insert("scope".into(), json!(self.scope.clone().unwrap_or_else(|| "profile email".to_owned())));
            }
            DevShape::Auth0 => {
                // The Auth0 profile's sample: the API and the userinfo audience.
                obj.insert("aud".into(), json!([self.audience, format!("{issuer}userinfo")]));
                obj.insert("azp".into(), json!(self.client_id));
                put(obj, "scope", self.scope.clone().map(Value::String));
                put(obj, "permissions", self.permissions.clone().map(|p| json!(p)));
                // Auth0 reports multi-factor authentication as `["mfa"]` only.
                let methods = self.amr.clone().unwrap_or_default();
                let distinct = methods.iter().filter(|m| *m != "mfa").collect::<std::collections::HashSet<_>>().len();
                if methods.iter().any(|m| m == "mfa") || distinct >= 2 {
                    obj.insert("amr".into(), json!(["mfa"]));
                }
                if let Some(roles) = self.roles.clone() {
                    obj.insert(
                        self.roles_claim.clone().unwrap_or_else(|| DEV_AUTH0_ROLES_CLAIM.to_owned()),
                        json!(roles),
                    );
                }
            }
            DevShape::Entra => {
                obj.insert("aud".into(), json!(self.audience));
                obj.insert("azp".into(), json!(self.client_id));
                obj.insert("azpacr".into(), json!("1"));
                obj.insert("ver".into(), json!("2.0"));
                obj.insert("tid".into(), json!(DEV_ENTRA_TENANT));
                obj.insert("oid".into(), obj.get("sub").cloned().unwrap_or(Value::Null));
                obj.insert("uti".into(), json!(self.jti));
                put(obj, "scp", self.scope.clone().map(Value::String));
                put(obj, "roles", self.roles.clone().map(|r| json!(r)));
            }
            DevShape::Okta => {
                obj.insert("aud".into(), json!(self.audience));
                obj.insert("ver".into(), json!(1));
                obj.insert("jti".into(), json!(format!("AT.{}", self.jti)));
                obj.insert("cid".into(), json!(self.client_id));
                obj.insert("uid".into(), obj.get("sub").cloned().unwrap_or(Value::Null));
                put(obj, "scp", scopes().map(|s| json!(s)));
                put(obj, "auth_time", self.auth_time.map(|t| json!(t)));
                put(obj, "groups", self.roles.clone().map(|r| json!(r)));
            }
        }
    }
}

fn put(obj: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(value) = value {
        obj.insert(name.to_owned(), value);
    }
}
