//! Build-time checks of requirements against the session dialect a layer speaks:
//! parts of a requirement that no session of that dialect can ever meet (an `acr`
//! level Stytch sessions never reach, a factor kind the dialect never produces), and
//! parts that depend on what the issuer sends.

use std::fmt;

use crate::error::ConfigError;
use crate::guard::config::GuardConfig;
use crate::guard::requirement::{FactorRule, Node, Requirement};
use crate::guard::Guard;
use crate::layer::SessionLayer;
use crate::session::FactorKind;

/// The kind of sessions a [`SessionLayer`] makes, for checking requirements when the
/// app starts ([`SessionLayer::guard`], [`Requirement::findings`]).
///
/// [`SessionLayer::stytch`] sets [`Stytch`](Self::Stytch) or
/// [`StytchB2b`](Self::StytchB2b) from the project, [`SessionLayer::oidc`]
/// [`Oidc`](Self::Oidc), [`SessionLayer::builder`] [`Generic`](Self::Generic)
/// (change it with [`SessionLayerBuilder::with_dialect`](crate::SessionLayerBuilder::with_dialect)).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Stytch consumer sessions: no `acr` (derived from factors), factors with
    /// Stytch types, `auth_time` derived from factor times, `attributes` recorded.
    Stytch,
    /// Stytch B2B member sessions: as [`Stytch`](Self::Stytch), with B2B's factor
    /// types, and no `attributes` in the API's `member_session`.
    StytchB2b,
    /// OAuth / OIDC access tokens: `acr` as sent, factors from `amr`, `auth_time`
    /// when the provider includes it.
    Oidc,
    /// Keycloak access tokens ([`Preset::keycloak`](crate::Preset::keycloak)): as
    /// [`Oidc`](Self::Oidc); `amr` only with the AMR mapper configured.
    Keycloak,
    /// Auth0 access tokens ([`Preset::auth0`](crate::Preset::auth0)): `amr` is at
    /// most `["mfa"]` (no factors), no `auth_time` unless an Action adds it.
    Auth0,
    /// Microsoft Entra ID v2.0 access tokens ([`Preset::entra`](crate::Preset::entra)):
    /// no `acr`, `amr` or `auth_time` at all.
    Entra,
    /// Okta access tokens ([`Preset::okta`](crate::Preset::okta)): `auth_time`, no
    /// `amr`.
    Okta,
    /// Nothing assumed: only dialect-free checks (misconfigured combinators, `acr`
    /// levels that are not configured).
    #[default]
    Generic,
}

/// What a build-time check found in a requirement.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// An empty combinator (see [`Requirement::validate`]).
    Misconfigured,
    /// `acr_at_least` names a level that is not among
    /// [`GuardConfig::with_acr_levels`]: no session meets it.
    UnknownAcrLevel,
    /// `acr_at_least` names a level above every level a Stytch session's factors
    /// can give it ([`GuardConfig::session_acr`]).
    AcrUnreachable,
    /// A factor kind that is not a type the dialect documents (a typo?).
    UnknownFactorKind,
    /// A factor kind (or delivery method) the dialect never produces.
    FactorNotInDialect,
    /// A recency rule (`max_age`, a factor's `within`) that needs `auth_time`,
    /// which this dialect's tokens may lack.
    NeedsAuthTime,
    /// [`Requirement::same_context`] where sessions of this dialect may record no
    /// context.
    ContextNotRecorded,
    /// A part that reads a claim (`acr`, `amr`) the dialect's provider leaves out of
    /// its access tokens (always when `certain`, by default otherwise).
    ClaimNotSent,
}

/// One finding of [`Requirement::findings`]: a part of a requirement that sessions
/// of a dialect never meet (`certain`), or meet only if the issuer sends something
/// it need not send.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementFinding {
    /// What was found.
    pub kind: FindingKind,
    /// `true`: no session of the dialect ever meets this part. `false`: it depends
    /// on the issuer (a claim it may leave out, a factor type it may add).
    pub certain: bool,
    /// What to change, for people.
    pub message: String,
}

impl fmt::Display for RequirementFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl RequirementFinding {
    fn certain(kind: FindingKind, message: String) -> Self {
        Self { kind, certain: true, message }
    }
    fn possible(kind: FindingKind, message: String) -> Self {
        Self { kind, certain: false, message }
    }
}

/// Stytch B2B factor types (member sessions have no WebAuthn, crypto wallets or
/// signature challenges).
const B2B_KINDS: [FactorKind; 11] = [
    FactorKind::EMAIL_OTP,
    FactorKind::IMPERSONATED,
    FactorKind::IMPORTED,
    FactorKind::MAGIC_LINK,
    FactorKind::OAUTH,
    FactorKind::OTP,
    FactorKind::PASSWORD,
    FactorKind::RECOVERY_CODES,
    FactorKind::SSO,
    FactorKind::TRUSTED_AUTH_TOKEN,
    FactorKind::TOTP,
];

/// The kinds the OIDC profile makes of RFC 8176 `amr` values that are not kept by
/// name (`pwd`, `otp`, `sms`, `tel`, `hwk`).
const AMR_KINDS: [FactorKind; 3] = [FactorKind::PASSWORD, FactorKind::OTP, FactorKind::WEBAUTHN];

impl Requirement {
    /// Checks the requirement against the sessions a layer of `dialect` with
    /// `config` makes: every part that no such session can ever meet (`certain`),
    /// and every part that depends on what the issuer sends. Parts inside
    /// [`any`](Self::any) are checked too (a branch that never passes is usually a
    /// mistake), so an empty list is the only "all clear".
    ///
    /// [`SessionLayer::guard`] runs it with the layer's configuration and logs each
    /// finding once with `tracing::warn!`.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_stepup::{Dialect, FactorKind, FindingKind, GuardConfig, Requirement};
    ///
    /// let config = GuardConfig::default().with_acr_levels(["pwd", "mfa", "phr"]);
    /// // Stytch sessions reach `mfa` at most (two factor kinds) unless a factor is
    /// // mapped to `phr` with `with_factor_acr`.
    /// let findings = Requirement::acr_at_least("phr").findings(&config, Dialect::Stytch);
    /// assert_eq!(findings[0].kind, FindingKind::AcrUnreachable);
    /// assert!(findings[0].certain);
    /// assert!(Requirement::acr_at_least("mfa").findings(&config, Dialect::Stytch).is_empty());
    /// // OIDC factors come from `amr`: none says `magic_link`.
    /// let findings = Requirement::from(Requirement::factor(FactorKind::MAGIC_LINK)).findings(&config, Dialect::Oidc);
    /// assert_eq!(findings[0].kind, FindingKind::FactorNotInDialect);
    /// ```
    pub fn findings(&self, config: &GuardConfig, dialect: Dialect) -> Vec<RequirementFinding> {
        let mut out = Vec::new();
        walk(&self.node, &mut |node| out.extend(leaf_findings(node, config, dialect)));
        out
    }

    /// [`validate`](Self::validate), and more: an error when no session of
    /// `dialect` can ever meet the requirement as a whole (every branch of an
    /// [`any`](Self::any), or one part of an [`all`](Self::all), certainly fails;
    /// see [`findings`](Self::findings)). Findings that depend on the issuer are not
    /// errors.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] with the first certain finding.
    ///
    /// ```
    /// use tower_stepup::{Dialect, FactorKind, GuardConfig, Requirement};
    ///
    /// let config = GuardConfig::default().with_acr_levels(["pwd", "mfa"]);
    /// assert!(Requirement::acr_at_least("mfa").validate_for(&config, Dialect::Stytch).is_ok());
    /// assert!(Requirement::acr_at_least("aal3").validate_for(&config, Dialect::Stytch).is_err());
    /// // One passable branch is enough.
    /// let either = Requirement::acr_at_least("aal3").or(Requirement::factor(FactorKind::TOTP));
    /// assert!(either.validate_for(&config, Dialect::Stytch).is_ok());
    /// ```
    pub fn validate_for(&self, config: &GuardConfig, dialect: Dialect) -> Result<(), ConfigError> {
        self.validate()?;
        if never(&self.node, config, dialect) {
            let reason = self
                .findings(config, dialect)
                .into_iter()
                .find(|finding| finding.certain)
                .map_or_else(|| "no session can meet it".to_owned(), |finding| finding.message);
            return Err(ConfigError::invalid("requirement", reason));
        }
        Ok(())
    }
}

impl SessionLayer {
    /// The dialect of the sessions this layer makes.
    pub fn dialect(&self) -> Dialect {
        self.state.dialect
    }

    /// [`Requirement::findings`] with this layer's guard configuration and dialect.
    pub fn requirement_findings(&self, requirement: &Requirement) -> Vec<RequirementFinding> {
        requirement.findings(self.state.guards(), self.state.dialect)
    }

    /// A [`Guard`] for `requirement`, checked now against this layer's sessions: each
    /// [finding](Requirement::findings) is logged once with `tracing::warn!` (at
    /// startup, where routes are built), and the guard is returned either way. Use
    /// [`Requirement::validate_for`] to refuse to start instead.
    ///
    /// Same as [`Guard::new`] otherwise: put it on a route with `route_layer`.
    ///
    /// ```no_run
    /// use axum::{routing::get, Router};
    /// use tower_stepup::{Requirement, SessionLayer, StytchProject};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?;
    /// let sessions = SessionLayer::stytch(&project).build().await?;
    /// let app: Router = Router::new()
    ///     .route("/settings", get(|| async { "ok" }).route_layer(sessions.guard(Requirement::acr_at_least("mfa"))))
    ///     .layer(sessions);
    /// # Ok(()) }
    /// ```
    pub fn guard(&self, requirement: impl Into<Requirement>) -> Guard {
        let requirement = requirement.into();
        for finding in self.requirement_findings(&requirement) {
            if finding.certain {
                tracing::warn!(?requirement, dialect = ?self.state.dialect, "{finding}: no session can meet this part");
            } else {
                tracing::warn!(?requirement, dialect = ?self.state.dialect, "{finding}");
            }
        }
        Guard::new(requirement)
    }
}

/// Calls `visit` on every leaf of `node`.
fn walk<'a>(node: &'a Node, visit: &mut dyn FnMut(&'a Node)) {
    match node {
        Node::All(nodes) | Node::Any(nodes) => nodes.iter().for_each(|node| walk(node, visit)),
        leaf => visit(leaf),
    }
}

/// Whether no session of `dialect` can meet `node`.
fn never(node: &Node, config: &GuardConfig, dialect: Dialect) -> bool {
    match node {
        Node::All(nodes) => nodes.iter().any(|node| never(node, config, dialect)),
        Node::Any(nodes) => nodes.iter().all(|node| never(node, config, dialect)),
        leaf => leaf_findings(leaf, config, dialect).iter().any(|finding| finding.certain),
    }
}

fn is_stytch(dialect: Dialect) -> bool {
    matches!(dialect, Dialect::Stytch | Dialect::StytchB2b)
}

/// The provider whose tokens a dialect names, for messages.
fn provider(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Keycloak => "Keycloak",
        Dialect::Auth0 => "Auth0",
        Dialect::Entra => "Entra ID v2.0",
        Dialect::Okta => "Okta",
        Dialect::Stytch | Dialect::StytchB2b => "Stytch",
        _ => "OIDC",
    }
}

fn leaf_findings(node: &Node, config: &GuardConfig, dialect: Dialect) -> Vec<RequirementFinding> {
    match node {
        Node::Misconfigured(reason) => {
            vec![RequirementFinding::certain(FindingKind::Misconfigured, format!("misconfigured: {reason}"))]
        }
        Node::AcrAtLeast(level) => acr_findings(level, config, dialect).into_iter().collect(),
        Node::Factor(rule) => factor_findings(rule, dialect),
        Node::MultiFactor => multi_factor_finding(config, dialect).into_iter().collect(),
        Node::MaxAge(_) => auth_time_finding("Requirement::max_age", dialect).into_iter().collect(),
        Node::SameContext => context_finding(config, dialect).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn acr_findings(level: &str, config: &GuardConfig, dialect: Dialect) -> Option<RequirementFinding> {
    let Some(required) = config.acr_rank(level) else {
        return Some(RequirementFinding::certain(
            FindingKind::UnknownAcrLevel,
            format!("acr_at_least(\"{level}\"): `{level}` is not among the configured acr levels (GuardConfig::with_acr_levels)"),
        ));
    };
    if dialect == Dialect::Entra {
        // Access token claims reference: `acr` is "only present in v1.0 tokens".
        return Some(RequirementFinding::certain(
            FindingKind::ClaimNotSent,
            format!("acr_at_least(\"{level}\"): Entra ID v2.0 access tokens carry no acr (only v1.0 tokens do)"),
        ));
    }
    if !is_stytch(dialect) {
        return None;
    }
    // Stytch sessions carry no `acr`: the level comes from their factors.
    let derivable = [GuardConfig::SINGLE_FACTOR_ACR, GuardConfig::MULTI_FACTOR_ACR]
        .into_iter()
        .chain(config.factor_acr_levels())
        .filter_map(|level| config.acr_rank(level).map(|rank| (rank, level)))
        .max();
    match derivable {
        Some((best, _)) if best >= required => None,
        best => Some(RequirementFinding::certain(
            FindingKind::AcrUnreachable,
            format!(
                "acr_at_least(\"{level}\"): Stytch sessions carry no acr; their factors give them at most {} \
                 (map a factor to `{level}` with GuardConfig::with_factor_acr)",
                best.map_or_else(|| "no configured level".to_owned(), |(_, level)| format!("`{level}`")),
            ),
        )),
    }
}

fn factor_findings(rule: &FactorRule, dialect: Dialect) -> Vec<RequirementFinding> {
    let kind = &rule.kind;
    let mut out = Vec::new();
    match dialect {
        Dialect::Stytch | Dialect::StytchB2b if !kind.is_known() => out.push(RequirementFinding::possible(
            FindingKind::UnknownFactorKind,
            format!("factor(\"{kind}\"): not a factor type Stytch documents (a typo?)"),
        )),
        Dialect::StytchB2b if !B2B_KINDS.contains(kind) => out.push(RequirementFinding::certain(
            FindingKind::FactorNotInDialect,
            format!("factor(\"{kind}\"): Stytch B2B member sessions have no `{kind}` factors"),
        )),
        // Providers whose access tokens carry no factor-bearing `amr`.
        Dialect::Entra | Dialect::Auth0 => out.push(RequirementFinding::certain(
            FindingKind::ClaimNotSent,
            format!(
                "factor(\"{kind}\"): {} access tokens carry no amr method that gives a factor{} (use Requirement::multi_factor)",
                provider(dialect),
                if dialect == Dialect::Auth0 { " (at most `mfa`, a summary)" } else { "" }
            ),
        )),
        Dialect::Okta => out.push(RequirementFinding::possible(
            FindingKind::ClaimNotSent,
            format!("factor(\"{kind}\"): Okta access tokens carry no amr unless a custom claim adds it"),
        )),
        // Known Stytch names that no registered `amr` value maps to; an unknown name
        // may be an `amr` value kept as sent.
        Dialect::Oidc | Dialect::Keycloak if kind.is_known() && !AMR_KINDS.contains(kind) => out.push(RequirementFinding::possible(
            FindingKind::FactorNotInDialect,
            format!(
                "factor(\"{kind}\"): OIDC sessions get factors from amr (pwd: password, otp/sms/tel: otp, \
                 hwk: webauthn, others by name); no RFC 8176 value gives `{kind}`"
            ),
        )),
        _ => {}
    }
    if rule.within.is_some() {
        out.extend(auth_time_finding(&format!("factor(\"{kind}\").within"), dialect));
    }
    out
}

fn auth_time_finding(what: &str, dialect: Dialect) -> Option<RequirementFinding> {
    // Stytch derives it from factor times; OIDC providers may leave it out.
    let possible = |message: String| Some(RequirementFinding::possible(FindingKind::NeedsAuthTime, message));
    match dialect {
        Dialect::Stytch | Dialect::StytchB2b | Dialect::Okta => None,
        Dialect::Entra => Some(RequirementFinding::certain(
            FindingKind::NeedsAuthTime,
            format!("{what}: Entra ID v2.0 access tokens carry no auth_time, so no token meets it"),
        )),
        Dialect::Auth0 => possible(format!(
            "{what}: Auth0 access tokens carry no auth_time unless an Action adds it (api.accessToken.setCustomClaim)"
        )),
        Dialect::Keycloak => possible(format!(
            "{what}: Keycloak puts auth_time into access tokens through the `basic` client scope (Keycloak 25+); check that clients have it"
        )),
        _ => possible(format!(
            "{what}: met only by tokens with auth_time, which many providers leave out of access tokens"
        )),
    }
}

fn multi_factor_finding(config: &GuardConfig, dialect: Dialect) -> Option<RequirementFinding> {
    let level = config.multi_factor_level();
    let possible = |message: &str| Some(RequirementFinding::possible(FindingKind::ClaimNotSent, message.to_owned()));
    match dialect {
        Dialect::Entra => Some(RequirementFinding::certain(
            FindingKind::ClaimNotSent,
            "multi_factor: Entra ID v2.0 access tokens carry neither amr nor acr, so no token meets it \
             (Conditional Access can require MFA before the token is issued)"
                .to_owned(),
        )),
        Dialect::Okta if level.is_none() => {
            possible("multi_factor: Okta access tokens carry no amr; add an acr claim and name its level with GuardConfig::with_multi_factor_acr")
        }
        Dialect::Keycloak if level.is_none() => possible(
            "multi_factor: met only by Keycloak tokens with amr (the AMR protocol mapper) or an acr level named with \
             GuardConfig::with_multi_factor_acr (acr-to-LoA mapping)",
        ),
        Dialect::Oidc if level.is_none() => {
            possible("multi_factor: met only by tokens whose amr says `mfa` or names two kinds of method")
        }
        _ => None,
    }
}

fn context_finding(config: &GuardConfig, dialect: Dialect) -> Option<RequirementFinding> {
    if config.same_context().allows_unrecorded() {
        return None;
    }
    let message = match dialect {
        Dialect::Stytch => return None,
        Dialect::StytchB2b => {
            "same_context: Stytch B2B member sessions carry no attributes in the API's member_session \
             (fresh() routes and session tokens never pass)"
        }
        _ => {
            "same_context: met only when the claim profile records where sessions began \
             (OidcProfile::with_ip_address_claim / with_user_agent_claim)"
        }
    };
    Some(RequirementFinding::possible(FindingKind::ContextNotRecorded, message.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn kinds(requirement: &Requirement, config: &GuardConfig, dialect: Dialect) -> Vec<(FindingKind, bool)> {
        requirement.findings(config, dialect).into_iter().map(|f| (f.kind, f.certain)).collect()
    }

    #[test]
    fn acr_levels_stytch_sessions_never_reach() {
        let levels = GuardConfig::default().with_acr_levels(["pwd", "mfa", "phr"]);
        let phr = Requirement::acr_at_least("phr");
        assert_eq!(kinds(&phr, &levels, Dialect::Stytch), [(FindingKind::AcrUnreachable, true)]);
        assert_eq!(kinds(&phr, &levels, Dialect::StytchB2b), [(FindingKind::AcrUnreachable, true)]);
        assert_eq!(kinds(&phr, &levels, Dialect::Oidc), [], "an OIDC token says its own acr");
        let mapped = levels.clone().with_factor_acr(FactorKind::WEBAUTHN, "phr");
        assert_eq!(kinds(&phr, &mapped, Dialect::Stytch), []);
        // Not a configured level at all: never, in any dialect.
        let typo = Requirement::acr_at_least("mfa2");
        for dialect in [Dialect::Stytch, Dialect::Oidc, Dialect::Generic] {
            assert_eq!(kinds(&typo, &levels, dialect), [(FindingKind::UnknownAcrLevel, true)]);
        }
        // Levels named otherwise than pwd/mfa: Stytch sessions reach none of them.
        let loa = GuardConfig::default().with_acr_levels(["loa1", "loa2"]);
        assert_eq!(
            kinds(&Requirement::acr_at_least("loa1"), &loa, Dialect::Stytch),
            [(FindingKind::AcrUnreachable, true)]
        );
    }

    #[test]
    fn factor_kinds_per_dialect() {
        let config = GuardConfig::default();
        let factor = |kind: &str| Requirement::from(Requirement::factor(FactorKind::parse(kind)));
        assert_eq!(kinds(&factor("topt"), &config, Dialect::Stytch), [(FindingKind::UnknownFactorKind, false)]);
        assert_eq!(kinds(&factor("totp"), &config, Dialect::Stytch), []);
        assert_eq!(kinds(&factor("webauthn"), &config, Dialect::StytchB2b), [(FindingKind::FactorNotInDialect, true)]);
        assert_eq!(kinds(&factor("totp"), &config, Dialect::StytchB2b), []);
        assert_eq!(kinds(&factor("totp"), &config, Dialect::Oidc), [(FindingKind::FactorNotInDialect, false)]);
        assert_eq!(kinds(&factor("otp"), &config, Dialect::Oidc), []);
        assert_eq!(kinds(&factor("face"), &config, Dialect::Oidc), [], "an amr value kept by name");
        assert_eq!(kinds(&factor("topt"), &config, Dialect::Generic), []);
    }

    #[test]
    fn recency_and_context_depend_on_the_dialect() {
        let config = GuardConfig::default();
        let max_age = Requirement::max_age(Duration::from_secs(60));
        assert_eq!(kinds(&max_age, &config, Dialect::Stytch), []);
        assert_eq!(kinds(&max_age, &config, Dialect::Oidc), [(FindingKind::NeedsAuthTime, false)]);
        let within = Requirement::factor(FactorKind::OTP).within(Duration::from_secs(60));
        assert_eq!(kinds(&within, &config, Dialect::Oidc), [(FindingKind::NeedsAuthTime, false)]);
        let same = Requirement::same_context();
        assert_eq!(kinds(&same, &config, Dialect::Stytch), []);
        assert_eq!(kinds(&same, &config, Dialect::StytchB2b), [(FindingKind::ContextNotRecorded, false)]);
        assert_eq!(kinds(&same, &config, Dialect::Oidc), [(FindingKind::ContextNotRecorded, false)]);
        let lenient = GuardConfig::default().with_same_context(crate::SameContext::default().allow_unrecorded());
        assert_eq!(kinds(&same, &lenient, Dialect::StytchB2b), []);
    }

    #[test]
    fn validate_for_judges_the_whole_requirement() {
        let config = GuardConfig::default().with_acr_levels(["pwd", "mfa", "phr"]);
        let never = Requirement::acr_at_least("phr");
        let error = never.clone().validate_for(&config, Dialect::Stytch).unwrap_err();
        assert!(error.to_string().contains("with_factor_acr"), "{error}");
        assert!(never.clone().and(Requirement::role("admin")).validate_for(&config, Dialect::Stytch).is_err());
        let either = never.clone().or(Requirement::factor(FactorKind::TOTP));
        assert!(either.validate_for(&config, Dialect::Stytch).is_ok());
        assert_eq!(either.findings(&config, Dialect::Stytch).len(), 1, "the dead branch is still reported");
        assert!(never.validate_for(&config, Dialect::Oidc).is_ok());
        // Uncertain findings are warnings, not errors.
        let b2b_context = Requirement::same_context();
        assert!(b2b_context.validate_for(&config, Dialect::StytchB2b).is_ok());
        let empty: Vec<Requirement> = Vec::new();
        assert!(Requirement::any(empty).validate_for(&config, Dialect::Generic).is_err());
    }
}
