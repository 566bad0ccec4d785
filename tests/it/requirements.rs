//! The requirement table: `Requirement::is_met` and `Requirement::shortfall` on
//! sessions made with `Session::builder`, synchronously (no layer, no server).
//! Each row reads: requirement, session, now → met / step-up (`acr_values`,
//! `max_age`) / forbidden (what is missing).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_stepup::{Factor, FactorKind, GuardConfig, Requirement, Session};

/// A fixed "now", so every row is reproducible.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// A session with these factors, each last used `ago` before [`now`].
fn session(factors: &[(FactorKind, Option<&str>, Duration)]) -> Session {
    session_with(factors, |builder| builder)
}

fn session_with(
    factors: &[(FactorKind, Option<&str>, Duration)],
    more: impl FnOnce(tower_stepup::SessionBuilder) -> tower_stepup::SessionBuilder,
) -> Session {
    let mut builder = Session::builder("user-1", "https://issuer.example");
    for (kind, delivery, ago) in factors {
        let mut factor = Factor::new(kind.clone()).with_last_authenticated_at(now() - *ago);
        if let Some(delivery) = delivery {
            factor = factor.with_delivery_method(*delivery);
        }
        builder = builder.factor(factor);
    }
    more(builder).build()
}

/// The guard configuration of every row: three ordered `acr` levels, TOTP is `aal2`.
fn config() -> GuardConfig {
    GuardConfig::default().with_acr_levels(["aal1", "aal2", "aal3"]).with_factor_acr(FactorKind::TOTP, "aal2")
}

/// What a row expects.
#[derive(Debug)]
enum Expect {
    Met,
    /// A step-up would help: its `acr_values`, `max_age` (seconds) and factors.
    StepUp(&'static [&'static str], Option<u64>, &'static [&'static str]),
    /// No step-up helps: the missing (scopes, roles, permissions, predicates), or a
    /// configuration error.
    Forbidden {
        scopes: &'static [&'static str],
        roles: &'static [&'static str],
        permissions: &'static [&'static str],
        predicates: &'static [&'static str],
        misconfigured: bool,
    },
}

const fn forbidden_roles(roles: &'static [&'static str]) -> Expect {
    Expect::Forbidden { scopes: &[], roles, permissions: &[], predicates: &[], misconfigured: false }
}

const fn forbidden_scopes(scopes: &'static [&'static str]) -> Expect {
    Expect::Forbidden { scopes, roles: &[], permissions: &[], predicates: &[], misconfigured: false }
}

fn check(row: &str, requirement: &Requirement, session: &Session, at: SystemTime, expect: &Expect) {
    let config = config();
    let met = requirement.is_met(session, &config, at);
    let shortfall = requirement.shortfall(session, &config, at);
    match expect {
        Expect::Met => {
            assert!(met, "{row}: should be met");
            assert_eq!(shortfall, None, "{row}");
        }
        Expect::StepUp(acr_values, max_age, factors) => {
            assert!(!met, "{row}: should not be met");
            let shortfall = shortfall.unwrap_or_else(|| panic!("{row}: no shortfall"));
            assert_eq!(shortfall.forbidden, None, "{row}: a step-up helps, nothing is forbidden");
            let step_up = shortfall.step_up.unwrap_or_else(|| panic!("{row}: no step-up"));
            assert_eq!(step_up.acr_values, *acr_values, "{row}: acr_values");
            assert_eq!(step_up.max_age.map(|d| d.as_secs()), *max_age, "{row}: max_age");
            let names: Vec<&str> = step_up.factors.iter().map(FactorKind::as_str).collect();
            assert_eq!(names, *factors, "{row}: factors");
        }
        Expect::Forbidden { scopes, roles, permissions, predicates, misconfigured } => {
            assert!(!met, "{row}: should not be met");
            let shortfall = shortfall.unwrap_or_else(|| panic!("{row}: no shortfall"));
            assert_eq!(shortfall.step_up, None, "{row}: no step-up helps");
            let forbidden = shortfall.forbidden.unwrap_or_else(|| panic!("{row}: nothing forbidden"));
            assert_eq!(forbidden.scopes, *scopes, "{row}: scopes");
            assert_eq!(forbidden.roles, *roles, "{row}: roles");
            assert_eq!(forbidden.permissions, *permissions, "{row}: permissions");
            assert_eq!(forbidden.predicates, *predicates, "{row}: predicates");
            assert_eq!(forbidden.configuration_error.is_some(), *misconfigured, "{row}: configuration error");
        }
    }
}

#[test]
#[allow(clippy::too_many_lines)] // A table: one row per case reads better than splitting it.
fn requirement_table() {
    let totp_5 = || Requirement::factor(FactorKind::TOTP).within(mins(5));
    let rows: Vec<(&str, Requirement, Session, SystemTime, Expect)> = vec![
        ("authenticated, no factors", Requirement::authenticated(), session(&[]), now(), Expect::Met),
        ("recent TOTP", totp_5(), session(&[(FactorKind::TOTP, None, mins(1))]), now(), Expect::Met),
        (
            "TOTP too old",
            totp_5(),
            session(&[(FactorKind::TOTP, None, mins(10))]),
            now(),
            Expect::StepUp(&["aal2"], Some(300), &["totp"]),
        ),
        (
            "no TOTP at all",
            Requirement::factor(FactorKind::TOTP).into(),
            session(&[(FactorKind::PASSWORD, None, mins(1))]),
            now(),
            Expect::StepUp(&["aal2"], None, &["totp"]),
        ),
        (
            "OTP by the wrong delivery method",
            Requirement::factor(FactorKind::OTP).delivered_by("sms").into(),
            session(&[(FactorKind::OTP, Some("email"), mins(1))]),
            now(),
            Expect::StepUp(&[], None, &["otp"]),
        ),
        (
            "OTP by sms",
            Requirement::factor(FactorKind::OTP).delivered_by("sms").into(),
            session(&[(FactorKind::OTP, Some("sms"), mins(1))]),
            now(),
            Expect::Met,
        ),
        (
            "any of TOTP or FactorKind::WEBAUTHN",
            Requirement::any_factor([FactorKind::TOTP, FactorKind::WEBAUTHN], Some(mins(5))),
            session(&[(FactorKind::WEBAUTHN, None, mins(2))]),
            now(),
            Expect::Met,
        ),
        (
            "a factor time in the far future is not \"now\"",
            totp_5(),
            session(&[(FactorKind::TOTP, None, Duration::ZERO)]),
            now() - Duration::from_secs(365 * 86_400),
            Expect::StepUp(&["aal2"], Some(300), &["totp"]),
        ),
        (
            "acr at least aal2, no acr",
            Requirement::acr_at_least("aal2"),
            session(&[]),
            now(),
            Expect::StepUp(&["aal2", "aal3"], None, &[]),
        ),
        (
            "max_age without auth_time",
            Requirement::max_age(mins(5)),
            session(&[]),
            now(),
            Expect::StepUp(&[], Some(300), &[]),
        ),
        (
            "secure session, one factor",
            Requirement::secure_session(),
            session(&[(FactorKind::PASSWORD, None, mins(1))]),
            now(),
            Expect::StepUp(&[], Some(3600), &[]),
        ),
        ("role held", Requirement::role("admin"), session_with(&[], |b| b.role("admin")), now(), Expect::Met),
        (
            "role missing",
            Requirement::role("admin"),
            session_with(&[], |b| b.role("viewer")),
            now(),
            forbidden_roles(&["admin"]),
        ),
        (
            "scope held",
            Requirement::scope("write"),
            session_with(&[], |b| b.scopes(vec!["read".into(), "write".into()])),
            now(),
            Expect::Met,
        ),
        (
            "scope missing",
            Requirement::scope("write"),
            session_with(&[], |b| b.scopes(vec!["read".into()])),
            now(),
            forbidden_scopes(&["write"]),
        ),
        (
            "factor met, role missing",
            totp_5().and(Requirement::role("admin")),
            session(&[(FactorKind::TOTP, None, mins(1))]),
            now(),
            forbidden_roles(&["admin"]),
        ),
        (
            "permission without an RBAC policy",
            Requirement::permission("invoices", "write"),
            session_with(&[], |b| b.role("admin")),
            now(),
            Expect::Forbidden {
                scopes: &[],
                roles: &[],
                permissions: &["invoices:write"],
                predicates: &[],
                misconfigured: false,
            },
        ),
        (
            "failed predicate",
            Requirement::predicate("is staff", |s| s.subject().starts_with("staff-")),
            session(&[]),
            now(),
            Expect::Forbidden {
                scopes: &[],
                roles: &[],
                permissions: &[],
                predicates: &["is staff"],
                misconfigured: false,
            },
        ),
        (
            "empty all() is a configuration error",
            Requirement::all(Vec::<Requirement>::new()),
            session(&[(FactorKind::TOTP, None, mins(1))]),
            now(),
            Expect::Forbidden { scopes: &[], roles: &[], permissions: &[], predicates: &[], misconfigured: true },
        ),
        (
            "either of two roles",
            Requirement::role("admin").or(Requirement::role("owner")),
            session_with(&[], |b| b.role("owner")),
            now(),
            Expect::Met,
        ),
    ];
    for (row, requirement, session, at, expect) in &rows {
        check(row, requirement, session, *at, expect);
    }
}
