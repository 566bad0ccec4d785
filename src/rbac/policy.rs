//! The RBAC policy document and its evaluation, with Stytch's semantics.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::ConfigError;

/// The action wildcard: a permission listing it grants every action on its resource.
const ANY_ACTION: &str = "*";

/// Which actions each role may take on which resources: the role part of a Stytch RBAC
/// policy (`GET /v1/rbac/policy`, B2B `GET /v1/b2b/rbac/policy`), evaluated as Stytch's
/// SDKs do (stytch-node `lib/shared/rbac_local.ts`):
///
/// - a session is granted `action` on `resource` when one of its roles has a
///   permission whose `resource_id` equals `resource` **exactly** and whose
///   `actions` contain `action` or the wildcard `*`;
/// - `*` is a wildcard for **actions only**: a permission on a resource named `*`
///   grants nothing on other resources;
/// - roles the policy does not define grant nothing; nothing is special about
///   Stytch's default roles (`stytch_user`, `stytch_member`, `stytch_admin`): they
///   grant what the policy says they grant.
///
/// Build one in code with [`grant`](Self::grant), read one with
/// [`from_stytch_json`](Self::from_stytch_json), or let the layer load and refresh
/// the project's policy from Stytch with [`StytchRbac`](crate::StytchRbac).
///
/// # Example
///
/// ```
/// use tower_stepup::RbacPolicy;
///
/// let policy = RbacPolicy::new()
///     .grant("admin", "documents", ["*"])
///     .grant("editor", "documents", ["read", "write"]);
/// assert!(policy.allows("editor", "documents", "write"));
/// assert!(!policy.allows("editor", "billing", "read"));
/// assert!(policy.allows("admin", "documents", "delete"));
/// // `*` is no resource wildcard.
/// let everything = RbacPolicy::new().grant("root", "*", ["*"]);
/// assert!(!everything.allows("root", "billing", "read"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct RbacPolicy {
    grants: HashMap<String, Vec<Grant>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Grant {
    resource_id: String,
    actions: Vec<String>,
}

impl Grant {
    fn covers(&self, resource: &str, action: &str) -> bool {
        self.resource_id == resource && self.actions.iter().any(|a| a == action || a == ANY_ACTION)
    }
}

/// One role of a Stytch policy document. `description` and other fields are ignored.
#[derive(Deserialize)]
struct RoleDocument {
    role_id: String,
    #[serde(default)]
    permissions: Vec<Grant>,
}

/// A Stytch policy object (`resources` and `scopes` are not needed to evaluate roles).
#[derive(Deserialize)]
struct PolicyDocument {
    roles: Vec<RoleDocument>,
}

impl RbacPolicy {
    /// An empty policy: nothing is allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `role` take `actions` on `resource` (`*` among the actions: every action).
    pub fn grant(
        mut self,
        role: impl Into<String>,
        resource: impl Into<String>,
        actions: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.grants
            .entry(role.into())
            .or_default()
            .push(Grant { resource_id: resource.into(), actions: actions.into_iter().map(Into::into).collect() });
        self
    }

    /// Reads a policy in the JSON shape of Stytch's `GET /v1/rbac/policy` response
    /// (`{"policy": {"roles": [{"role_id", "permissions": [{"resource_id", "actions"}]}]}}`),
    /// or just its `policy` object.
    ///
    /// ```
    /// use tower_stepup::RbacPolicy;
    ///
    /// let policy = RbacPolicy::from_stytch_json(
    ///     r#"{"roles": [{"role_id": "editor", "description": "",
    ///         "permissions": [{"resource_id": "documents", "actions": ["read", "write"]}]}],
    ///       "resources": [], "scopes": []}"#,
    /// )?;
    /// assert!(policy.allows("editor", "documents", "read"));
    /// # Ok::<(), tower_stepup::ConfigError>(())
    /// ```
    pub fn from_stytch_json(json: &str) -> Result<Self, ConfigError> {
        Self::from_stytch_slice(json.as_bytes()).map_err(|e| ConfigError::invalid("RBAC policy", e))
    }

    /// [`from_stytch_json`](Self::from_stytch_json) on bytes; the error is a short
    /// reason, never the document.
    pub(crate) fn from_stytch_slice(json: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Document {
            Wrapped { policy: PolicyDocument },
            Bare(PolicyDocument),
        }
        let document: Document = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let (Document::Wrapped { policy } | Document::Bare(policy)) = document;
        let mut out = Self::new();
        for role in policy.roles {
            out.grants.entry(role.role_id).or_default().extend(role.permissions);
        }
        Ok(out)
    }

    /// Whether `role` may take `action` on `resource`.
    pub fn allows(&self, role: &str, resource: &str, action: &str) -> bool {
        self.grants.get(role).is_some_and(|grants| grants.iter().any(|grant| grant.covers(resource, action)))
    }

    /// The roles among `roles` that grant `action` on `resource` (Stytch's
    /// `granting_roles`), in the order given; empty when none does.
    ///
    /// ```
    /// use tower_stepup::RbacPolicy;
    ///
    /// let policy = RbacPolicy::new().grant("editor", "documents", ["write"]).grant("admin", "documents", ["*"]);
    /// let roles = ["stytch_user".to_owned(), "editor".to_owned(), "admin".to_owned()];
    /// assert_eq!(policy.granting_roles(&roles, "documents", "write"), ["editor", "admin"]);
    /// ```
    pub fn granting_roles<'r>(&self, roles: &'r [String], resource: &str, action: &str) -> Vec<&'r str> {
        roles.iter().map(String::as_str).filter(|role| self.allows(role, resource, action)).collect()
    }

    /// Whether any of `roles` may take `action` on `resource`. No allocation.
    pub fn allows_any(&self, roles: &[String], resource: &str, action: &str) -> bool {
        roles.iter().any(|role| self.allows(role, resource, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stytch_json() {
        let policy = RbacPolicy::from_stytch_json(
            r#"{"request_id":"r","status_code":200,"policy":{"roles":[
                {"role_id":"stytch_admin","description":"","permissions":[{"resource_id":"stytch.member","actions":["*"]}]},
                {"role_id":"reader","permissions":[{"resource_id":"documents","actions":["read"]}]}
            ],"resources":[]}}"#,
        )
        .unwrap();
        assert!(policy.allows("stytch_admin", "stytch.member", "delete"));
        assert!(policy.allows("reader", "documents", "read"));
        assert!(!policy.allows("reader", "documents", "write"));
        assert!(RbacPolicy::from_stytch_json("[]").is_err());
    }

    /// stytch-node compares `resource_id` with `===` and only looks for `*` in
    /// `actions`: no prefix, glob or resource wildcard.
    #[test]
    fn the_wildcard_is_for_actions_only() {
        let policy = RbacPolicy::new().grant("root", "*", ["*"]).grant("docs", "documents", ["*"]);
        assert!(!policy.allows("root", "documents", "read"));
        assert!(policy.allows("root", "*", "read"), "a resource literally named `*` is just a name");
        assert!(policy.allows("docs", "documents", "anything"));
        assert!(!policy.allows("docs", "documents.secret", "read"));
        assert!(!policy.allows("docs", "Documents", "read"), "resource ids are case sensitive");
        let literal = RbacPolicy::new().grant("r", "documents", ["read"]);
        assert!(!literal.allows("r", "documents", "*"), "asking for `*` is not granted by a single action");
        assert!(!literal.allows("unknown-role", "documents", "read"));
    }
}
