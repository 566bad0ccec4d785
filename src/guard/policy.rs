//! Stytch-style role-based access control: roles grant actions on resources.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::ConfigError;

/// Which actions each role may take on which resources, with `*` as a wildcard for
/// a resource or an action (Stytch RBAC semantics).
///
/// # Example
///
/// ```
/// use tower_stepup::RbacPolicy;
///
/// let policy = RbacPolicy::new()
///     .grant("admin", "*", ["*"])
///     .grant("editor", "documents", ["read", "write"]);
/// assert!(policy.allows("editor", "documents", "write"));
/// assert!(!policy.allows("editor", "billing", "read"));
/// assert!(policy.allows("admin", "billing", "delete"));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RbacPolicy {
    grants: HashMap<String, Vec<Grant>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Grant {
    resource_id: String,
    actions: Vec<String>,
}

impl RbacPolicy {
    /// An empty policy: nothing is allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `role` take `actions` on `resource`.
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
    pub fn from_stytch_json(json: &str) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct Role {
            role_id: String,
            #[serde(default)]
            permissions: Vec<Grant>,
        }
        #[derive(Deserialize)]
        struct Policy {
            roles: Vec<Role>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Document {
            Wrapped { policy: Policy },
            Bare(Policy),
        }
        let document: Document =
            serde_json::from_str(json).map_err(|e| ConfigError::invalid("RBAC policy", e.to_string()))?;
        let (Document::Wrapped { policy } | Document::Bare(policy)) = document;
        let mut out = Self::new();
        for role in policy.roles {
            out.grants.entry(role.role_id).or_default().extend(role.permissions);
        }
        Ok(out)
    }

    /// Whether `role` may take `action` on `resource`.
    pub fn allows(&self, role: &str, resource: &str, action: &str) -> bool {
        self.grants.get(role).is_some_and(|grants| {
            grants.iter().any(|grant| {
                (grant.resource_id == "*" || grant.resource_id == resource)
                    && grant.actions.iter().any(|a| a == "*" || a == action)
            })
        })
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
}
