//! The exact reason a session falls short of one part of a requirement, for
//! developers (see [`GuardConfig::with_diagnostics`]). Built only on the failure
//! path, and only with diagnostics on.
//!
//! Reasons name claims and the values needed to tell what is wrong (roles, scopes,
//! `acr`, `amr`, factor kinds and ages), never a token.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::guard::config::GuardConfig;
use crate::guard::requirement::{distinct_factor_kinds, Node};
use crate::session::Session;

/// `[a, b]` as `` `a`, `b` ``, or `none`.
fn listed<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items.iter().map(|item| format!("`{}`", item.as_ref())).collect::<Vec<_>>().join(", ")
}

/// How long ago `at` was, in whole seconds ("in the future" when ahead).
fn age(at: SystemTime, now: SystemTime) -> String {
    match now.duration_since(at) {
        Ok(age) => format!("{}s ago", age.as_secs()),
        Err(ahead) => format!("{}s in the future", ahead.duration().as_secs()),
    }
}

/// What the session says about its `acr`.
fn acr_of(session: &Session, config: &GuardConfig) -> String {
    match (session.acr(), config.session_acr(session)) {
        (Some(acr), _) => format!("the token's acr is `{acr}`"),
        (None, Some(derived)) => format!("the session has no acr; its factors give it `{derived}`"),
        (None, None) => "the session has no acr and no factors".to_owned(),
    }
}

/// The reason `session` fails `node` (a leaf).
pub(super) fn reason(node: &Node, session: &Session, config: &GuardConfig, now: SystemTime) -> String {
    match node {
        Node::Authenticated => "a session is required".to_owned(),
        Node::Factor(rule) => {
            let mut wanted = format!("a `{}` factor", rule.kind);
            if let Some(method) = &rule.delivery_method {
                let _ = write!(wanted, " delivered by `{method}`");
            }
            if let Some(within) = rule.within {
                let _ = write!(wanted, " used within {}s", within.as_secs());
            }
            let factors: Vec<String> = session
                .factors()
                .iter()
                .map(|factor| {
                    let mut text = factor.kind().to_string();
                    if let Some(method) = factor.delivery_method() {
                        let _ = write!(text, " by {method}");
                    }
                    match factor.last_authenticated_at() {
                        Some(at) => {
                            let _ = write!(text, ", {}", age(at, now));
                        }
                        None => text.push_str(", no time"),
                    }
                    text
                })
                .collect();
            format!(
                "requires {wanted}; the session's factors: {} (amr: {})",
                listed(&factors),
                listed(session.amr())
            )
        }
        Node::AcrAtLeast(level) => format!(
            "requires acr at least `{level}` (configured levels, weakest first: {}); {}",
            listed(config.acr_levels()),
            acr_of(session, config)
        ),
        Node::MultiFactor => {
            let kinds: Vec<String> = distinct_factor_kinds(session).iter().map(ToString::to_string).collect();
            let level = config
                .multi_factor_level()
                .map_or_else(|| "no multi-factor acr level is configured".to_owned(), |l| format!("multi-factor acr level `{l}`"));
            format!(
                "requires multi-factor authentication: amr {} has no `mfa`; the session's factors are {} distinct kind(s) ({}); {} ({level})",
                listed(session.amr()),
                kinds.len(),
                listed(&kinds),
                acr_of(session, config),
            )
        }
        Node::MaxAge(max_age) => match session.auth_time() {
            Some(at) => format!("requires authentication within {}s; auth_time is {}", max_age.as_secs(), age(at, now)),
            None => format!(
                "requires authentication within {}s; the token has no auth_time (many providers leave it out of access tokens)",
                max_age.as_secs()
            ),
        },
        Node::Role(role) => format!(
            "requires role `{role}`; the session's roles{}: {}",
            session.roles_from().map_or_else(String::new, |from| format!(", read from {from}")),
            listed(session.roles())
        ),
        Node::Scope(scope) => format!("requires scope `{scope}`; the token's scopes: {}", listed(session.scopes())),
        Node::Permission { resource, action } => format!(
            "requires permission `{action}` on `{resource}`; no role of {} grants it in the RBAC policy",
            listed(session.roles())
        ),
        Node::SecureSession => format!(
            "requires a secure session (factors from two categories, one within {}s); the session's factors: {}",
            Duration::from_secs(3600).as_secs(),
            listed(&session.factors().iter().map(|f| f.kind().to_string()).collect::<Vec<_>>())
        ),
        Node::SameContext => "requires the request to come from where the session began".to_owned(),
        Node::Predicate { description, .. } => format!("the check `{description}` refused the session"),
        Node::Misconfigured(reason) => format!("the requirement is misconfigured: {reason}"),
        Node::All(_) | Node::Any(_) => "a combination of requirements is not met".to_owned(),
    }
}
