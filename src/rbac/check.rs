//! Stytch's `authorization_check` request object and its `verdict`.

use serde::{Deserialize, Serialize};

/// What a [`fresh`](crate::Guard::fresh) guard asks the issuer to authorize along
/// with the session: Stytch's `authorization_check` on `sessions/authenticate`
/// (`{resource_id, action}`, B2B adds `organization_id`). See
/// [`Guard::with_authorization_check`](crate::Guard::with_authorization_check).
///
/// # Example
///
/// ```
/// use tower_stepup::AuthorizationCheck;
///
/// let check = AuthorizationCheck::new("documents", "delete").in_organization("organization-test-1");
/// assert_eq!(check.resource_id(), "documents");
/// assert_eq!(check.organization_id(), Some("organization-test-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AuthorizationCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    organization_id: Option<String>,
    resource_id: String,
    action: String,
}

impl AuthorizationCheck {
    /// A check of `action` on `resource_id` (consumer projects).
    pub fn new(resource_id: impl Into<String>, action: impl Into<String>) -> Self {
        Self { organization_id: None, resource_id: resource_id.into(), action: action.into() }
    }
    /// The organization the member must belong to (B2B; Stytch refuses a member of
    /// another organization).
    #[must_use]
    pub fn in_organization(mut self, organization_id: impl Into<String>) -> Self {
        self.organization_id = Some(organization_id.into());
        self
    }
    /// The resource.
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }
    /// The action.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// The organization (B2B).
    pub fn organization_id(&self) -> Option<&str> {
        self.organization_id.as_deref()
    }
    /// `resource:action`, as refusals name permissions.
    pub(crate) fn permission(&self) -> String {
        format!("{}:{}", self.resource_id, self.action)
    }
}

/// The issuer's answer to an [`AuthorizationCheck`]: Stytch's `verdict`
/// (`{authorized, granting_roles}`), present when the check passed.
///
/// # Example
///
/// ```
/// use tower_stepup::AuthorizationVerdict;
///
/// let verdict = AuthorizationVerdict::new(true, vec!["editor".to_owned()]);
/// assert!(verdict.authorized);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthorizationVerdict {
    /// Whether the session may take the action (Stytch: always `true` in a
    /// successful answer; a refusal is a `403`).
    pub authorized: bool,
    /// The session's roles that granted it.
    #[serde(default)]
    pub granting_roles: Vec<String>,
}

impl AuthorizationVerdict {
    /// A verdict.
    pub fn new(authorized: bool, granting_roles: Vec<String>) -> Self {
        Self { authorized, granting_roles }
    }
}
