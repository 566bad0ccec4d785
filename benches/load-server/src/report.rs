//! Tables, ratios and the issue-13 verdict from the files written by `benches/load.sh`.
//!
//! Results: one line per run, tab-separated:
//! `section round config rps p50_us p99_us non2xx socket_errors cpu_us_per_req rss_kib requests [extra]`,
//! where the optional `extra` is `key=value` pairs separated by commas (growth:
//! `entries`; freshness: `issuer_calls`, `sessions`, `window_s`, `seconds`).
//!
//! Memory (optional): the output of `stepup-bench-memory` on the typical session JWTs;
//! only its `MEMORY` lines are read, field by field (`key=value`, tab-separated), so
//! fields added later do not break the parse.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone)]
struct Run {
    section: String,
    config: String,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    non2xx: u64,
    socket_errors: u64,
    cpu_us: f64,
    rss_kib: f64,
    requests: u64,
    extra: BTreeMap<String, String>,
}

/// `key=value` pairs split by `separator`; anything else is skipped.
fn fields(text: &str, separator: char) -> BTreeMap<String, String> {
    text.split(separator)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn parse(line: &str) -> Option<Run> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() < 11 {
        return None;
    }
    Some(Run {
        section: f[0].to_owned(),
        config: f[2].to_owned(),
        rps: f[3].parse().ok()?,
        p50_us: f[4].parse().ok()?,
        p99_us: f[5].parse().ok()?,
        non2xx: f[6].parse().ok()?,
        socket_errors: f[7].parse().ok()?,
        cpu_us: f[8].parse().ok()?,
        rss_kib: f[9].parse().ok()?,
        requests: f[10].parse().ok()?,
        extra: f.get(11).map(|e| fields(e, ',')).unwrap_or_default(),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

struct Summary {
    rounds: Vec<f64>,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    rss_mib: f64,
    failures: u64,
    requests: u64,
    /// The `extra` fields of the last run of this config.
    extra: BTreeMap<String, String>,
}

impl Summary {
    fn extra_f64(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(|v| v.parse().ok())
    }
}

fn summarize(runs: &[&Run]) -> Summary {
    Summary {
        rounds: runs.iter().map(|r| r.rps).collect(),
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_us: median(runs.iter().map(|r| r.p50_us).collect()),
        p99_us: median(runs.iter().map(|r| r.p99_us).collect()),
        cpu_us: median(runs.iter().map(|r| r.cpu_us).collect()),
        rss_mib: runs.iter().map(|r| r.rss_kib).fold(0.0, f64::max) / 1024.0,
        failures: runs.iter().map(|r| r.non2xx + r.socket_errors).sum(),
        requests: runs.iter().map(|r| r.requests).sum(),
        extra: runs.last().map(|r| r.extra.clone()).unwrap_or_default(),
    }
}

/// The configs of one section, in first-run order, with their summaries.
struct Section {
    order: Vec<String>,
    summaries: BTreeMap<String, Summary>,
}

impl Section {
    fn of(runs: &[Run], section: &str) -> Self {
        let mut order: Vec<String> = Vec::new();
        let mut by_config: BTreeMap<String, Vec<&Run>> = BTreeMap::new();
        for run in runs.iter().filter(|r| r.section == section) {
            if !order.contains(&run.config) {
                order.push(run.config.clone());
            }
            by_config.entry(run.config.clone()).or_default().push(run);
        }
        let summaries = by_config.iter().map(|(k, v)| (k.clone(), summarize(v))).collect();
        Self { order, summaries }
    }

    fn get(&self, config: &str) -> Option<&Summary> {
        self.summaries.get(config)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// `(req/s ratio, CPU per request ratio theirs ÷ ours)` of `ours` against `theirs`.
    fn ratio(&self, ours: &str, theirs: &str) -> Option<(f64, f64)> {
        let (a, b) = (self.get(ours)?, self.get(theirs)?);
        Some((a.rps / b.rps, b.cpu_us / a.cpu_us))
    }

    fn print_table(&self, title: &str) {
        println!();
        println!("{title}");
        println!();
        println!("| config | req/s (median) | rounds | p50 µs | p99 µs | server CPU µs/req | max RSS MiB | failed |");
        println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
        for config in &self.order {
            let s = &self.summaries[config];
            let rounds: Vec<String> = s.rounds.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "| {config} | {:.0} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} |",
                s.rps,
                rounds.join(" / "),
                s.p50_us,
                s.p99_us,
                s.cpu_us,
                s.rss_mib,
                s.failures
            );
        }
    }
}

/// The A/B comparisons: ours, against, target (as in issue 13; empty: shown only).
const PAIRS: &[(&str, &str, &str)] = &[
    ("stepup-hot-rs256", "bare", "≥ 0.85"),
    ("stepup-hot-es256", "bare", "≥ 0.85"),
    ("stepup-hot-cookie", "bare-cookie", "≥ 0.85"),
    ("stepup-cold-rs256", "bare", ""),
    ("stepup-cold-es256", "bare", ""),
    ("stepup-many-100k", "bare", ""),
    ("stepup-many-100k", "stepup-hot-es256", "≥ 0.8"),
    ("stepup-hot-rs256", "peer-rs256", ""),
    ("stepup-hot-es256", "peer-es256", ""),
    ("stepup-cold-rs256", "peer-rs256", "≥ 1.2"),
    ("stepup-cold-es256", "peer-es256", "≥ 1.2"),
    ("stepup-many-100k", "peer-many-100k", "≥ 3"),
];

/// The freshness run: the route guarded by `fresh_within`, and the plain route with the
/// same sessions in the same server.
const FRESH: &str = "fresh-route";
const PLAIN: &str = "plain-route";

pub(crate) fn print(path: &Path, memory: Option<&Path>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let runs: Vec<Run> = text.lines().filter_map(parse).collect();
    let memory: Vec<BTreeMap<String, String>> = memory
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| text.lines().filter_map(|l| l.strip_prefix("MEMORY\t")).map(|l| fields(l, '\t')).collect())
        .unwrap_or_default();

    let ab = Section::of(&runs, "ab");
    let growth = Section::of(&runs, "growth");
    let fresh = Section::of(&runs, "fresh");
    print_verdict(&runs, &verdict(&ab, &growth, &fresh, &memory));

    if !ab.is_empty() {
        ab.print_table("## A/B runs (median of rounds)");
        println!();
        println!("## Ratios (same run)");
        println!();
        println!("| ours | against | req/s ratio | CPU/req ratio (theirs ÷ ours) | target |");
        println!("| --- | --- | ---: | ---: | --- |");
        for (ours, theirs, target) in PAIRS {
            let Some((rps, cpu)) = ab.ratio(ours, theirs) else { continue };
            println!("| {ours} | {theirs} | {rps:.2} | {cpu:.2} | {target} |");
        }
    }
    if !growth.is_empty() {
        print_growth(&growth);
    }
    if !fresh.is_empty() {
        print_fresh(&fresh);
    }
}

fn print_growth(growth: &Section) {
    println!();
    println!("## Growth (distinct sessions cycling, default cache)");
    println!();
    println!(
        "| distinct sessions | req/s | server CPU µs/req | p50 / p99 µs | server RSS MiB | cached sessions | failed |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for config in &growth.order {
        let s = &growth.summaries[config];
        let sessions = config.strip_prefix("sessions-").unwrap_or(config);
        let entries = s.extra.get("entries").map_or("?", String::as_str);
        println!(
            "| {sessions} | {:.0} | {:.1} | {:.0} / {:.0} | {:.1} | {entries} | {} |",
            s.rps, s.cpu_us, s.p50_us, s.p99_us, s.rss_mib, s.failures
        );
    }
}

/// What the freshness run measured; `None` when it did not run (or lacks its counters).
struct Freshness {
    calls: f64,
    sessions: f64,
    window_s: f64,
    seconds: f64,
    /// Windows begun during the run: each session may be confirmed once in each.
    windows: f64,
    per_session_window: f64,
}

fn freshness(fresh: &Section) -> Option<Freshness> {
    let s = fresh.get(FRESH)?;
    let (calls, sessions, window_s, seconds) =
        (s.extra_f64("issuer_calls")?, s.extra_f64("sessions")?, s.extra_f64("window_s")?, s.extra_f64("seconds")?);
    let windows = (seconds / window_s).ceil().max(1.0);
    Some(Freshness { calls, sessions, window_s, seconds, windows, per_session_window: calls / (sessions * windows) })
}

fn print_fresh(fresh: &Section) {
    fresh.print_table("## Freshness under load (`fresh_within` against the dev issuer in Stytch mode)");
    if let Some(f) = freshness(fresh) {
        println!();
        println!(
            "- issuer `sessions/authenticate` calls during the fresh-route run: {:.0}, for {:.0} sessions over {:.1} s \
             = {:.1} windows of {:.0} s begun → **{:.3} calls per session per window** (target 1)",
            f.calls, f.sessions, f.seconds, f.windows, f.window_s, f.per_session_window
        );
    }
    if let (Some(fr), Some(pl)) = (fresh.get(FRESH), fresh.get(PLAIN)) {
        println!(
            "- added by the fresh guard (fresh − plain, same sessions, same server): p50 {:+.0} µs, p99 {:+.0} µs, \
             server CPU {:+.1} µs/req; req/s ratio {:.2}",
            fr.p50_us - pl.p50_us,
            fr.p99_us - pl.p99_us,
            fr.cpu_us - pl.cpu_us,
            fr.rps / pl.rps
        );
    }
}

/// One row of the verdict table: target, measured value, status.
type Row = (String, String, String);

fn status(met: bool) -> String {
    String::from(if met { "met" } else { "**not met**" })
}

/// One verdict row per issue-13 target, from this run only.
fn verdict(ab: &Section, growth: &Section, fresh: &Section, memory: &[BTreeMap<String, String>]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let not_measured = |target: &str, why: &str| (target.to_owned(), format!("not measured ({why})"), "—".to_owned());

    // Capacity: the default budget, 100 000 typical sessions verified in process.
    let capacity_target = "capacity: default cache holds ≥ 100 000 typical sessions within 64 MiB of heap";
    let capacity = memory.iter().find(|m| {
        m.get("budget").map(String::as_str) == Some("default")
            && m.get("sessions").map(String::as_str) == Some("100000")
    });
    rows.push(match capacity {
        Some(m) => {
            let num = |k: &str| m.get(k).and_then(|v| v.parse::<f64>().ok());
            let met = matches!((num("entries"), num("heap_mib"), num("failed")),
                (Some(e), Some(h), Some(f)) if e >= 100_000.0 && h <= 64.0 && f == 0.0);
            let text = |k: &str| m.get(k).map_or("?", String::as_str).to_owned();
            (
                capacity_target.to_owned(),
                format!(
                    "{} of 100 000 cached, {} MiB of heap added, {} failed",
                    text("entries"),
                    text("heap_mib"),
                    text("failed")
                ),
                status(met),
            )
        }
        None => not_measured(capacity_target, "SKIP_MEMORY, or 100000 not in GROWTH"),
    });

    // `both`: the issue names requests/s and CPU per request (hot path): both must meet it.
    let ratio = |target: &str, ours: &str, theirs: &str, goal: f64, both: bool| match ab.ratio(ours, theirs) {
        Some((rps, cpu)) => (
            target.to_owned(),
            format!("{rps:.2}× req/s, {cpu:.2}× CPU per request ({ours} vs {theirs})"),
            status(rps >= goal && (!both || cpu >= goal)),
        ),
        None => not_measured(target, &format!("{ours} or {theirs} missing")),
    };
    rows.push(ratio(
        "many sessions: 100 000 cycling ≥ 0.8× single-session hot",
        "stepup-many-100k",
        "stepup-hot-es256",
        0.8,
        false,
    ));
    rows.push(ratio(
        "many sessions: ≥ 3× jwt-authorizer, same tokens",
        "stepup-many-100k",
        "peer-many-100k",
        3.0,
        false,
    ));
    rows.push(ratio(
        "hot path ≥ 0.85× bare axum, bearer RS256 (req/s and CPU)",
        "stepup-hot-rs256",
        "bare",
        0.85,
        true,
    ));
    rows.push(ratio(
        "hot path ≥ 0.85× bare axum, bearer ES256 (req/s and CPU)",
        "stepup-hot-es256",
        "bare",
        0.85,
        true,
    ));
    rows.push(ratio(
        "hot path ≥ 0.85× bare axum, cookie (req/s and CPU)",
        "stepup-hot-cookie",
        "bare-cookie",
        0.85,
        true,
    ));
    rows.push((
        "credential extraction < 300 ns".to_owned(),
        "not a load measure: `cargo bench --bench micro --features __bench -- extract`".to_owned(),
        "—".to_owned(),
    ));
    rows.push(ratio(
        "cold ≥ 1.2× jwt-authorizer per verification, RS256",
        "stepup-cold-rs256",
        "peer-rs256",
        1.2,
        false,
    ));
    rows.push(ratio(
        "cold ≥ 1.2× jwt-authorizer per verification, ES256",
        "stepup-cold-es256",
        "peer-es256",
        1.2,
        false,
    ));

    let fresh_target = "freshness: issuer calls per session per `fresh_within` window = 1, under wrk";
    rows.push(match (freshness(fresh), fresh.get(FRESH)) {
        (Some(f), Some(s)) => {
            // Every session confirmed at least once, never more than once per window,
            // and no request failed.
            let met = f.calls >= f.sessions && f.per_session_window <= 1.0 && s.failures == 0;
            (
                fresh_target.to_owned(),
                format!(
                    "{:.3} ({:.0} calls for {:.0} sessions, {:.0} windows of {:.0} s begun in {:.1} s); {} failed of {} requests",
                    f.per_session_window, f.calls, f.sessions, f.windows, f.window_s, f.seconds, s.failures, s.requests
                ),
                status(met),
            )
        }
        _ => not_measured(fresh_target, "SKIP_FRESH"),
    });
    if let (Some(fr), Some(pl)) = (fresh.get(FRESH), fresh.get(PLAIN)) {
        rows.push((
            "freshness: added latency of the fresh route".to_owned(),
            format!(
                "p50 {:.0} vs {:.0} µs, p99 {:.0} vs {:.0} µs, CPU {:.1} vs {:.1} µs/req (fresh vs plain route, same sessions)",
                fr.p50_us, pl.p50_us, fr.p99_us, pl.p99_us, fr.cpu_us, pl.cpu_us
            ),
            "shown".to_owned(),
        ));
    }

    let growth_target = "growth: throughput and RSS at 1 / 1k / 100k / 1M sessions";
    rows.push(if growth.is_empty() {
        not_measured(growth_target, "SKIP_GROWTH")
    } else {
        let cells: Vec<String> = growth
            .order
            .iter()
            .map(|c| {
                let s = &growth.summaries[c];
                format!(
                    "{}: {:.0} req/s, {:.1} µs/req, {:.1} MiB, {} cached",
                    c.strip_prefix("sessions-").unwrap_or(c),
                    s.rps,
                    s.cpu_us,
                    s.rss_mib,
                    s.extra.get("entries").map_or("?", String::as_str)
                )
            })
            .collect();
        (growth_target.to_owned(), cells.join("; "), "shown".to_owned())
    });
    rows
}

fn print_verdict(runs: &[Run], rows: &[Row]) {
    println!();
    println!("## Verdict (issue 13 targets, this run)");
    println!();
    println!("| target | measured | status |");
    println!("| --- | --- | --- |");
    for (target, measured, status) in rows {
        println!("| {target} | {measured} | {status} |");
    }
    let failed: u64 = runs.iter().map(|r| r.non2xx + r.socket_errors).sum();
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    println!();
    println!(
        "Failed requests (non-2xx/3xx or socket errors) in all {} runs: {failed} of {requests}{}",
        runs.len(),
        if failed == 0 { "." } else { " — **the run is not valid**: see the failed columns below." }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULTS: &str = "\
ab\t1\tbare\t40000.0\t500\t1500\t0\t0\t20.00\t6000\t400000\t
ab\t1\tstepup-hot-rs256\t36000.0\t550\t1600\t0\t0\t22.00\t8000\t360000\tentries=1
ab\t1\tbare-cookie\t40000.0\t500\t1500\t0\t0\t20.00\t6000\t400000\t
ab\t1\tstepup-hot-cookie\t30000.0\t650\t1900\t0\t0\t26.00\t8000\t300000\tentries=1
fresh\t1\tplain-route\t20000.0\t700\t2000\t0\t0\t40.00\t9000\t200000\tentries=1000
fresh\t1\tfresh-route\t15000.0\t900\t9000\t0\t0\t55.00\t9000\t975000\tentries=1000,issuer_calls=3000,sessions=1000,window_s=30,seconds=65.010
";

    fn sections() -> (Vec<Run>, Section, Section, Section) {
        let runs: Vec<Run> = RESULTS.lines().filter_map(parse).collect();
        let (ab, growth, fresh) = (Section::of(&runs, "ab"), Section::of(&runs, "growth"), Section::of(&runs, "fresh"));
        (runs, ab, growth, fresh)
    }

    fn row<'a>(rows: &'a [Row], prefix: &str) -> &'a Row {
        rows.iter().find(|r| r.0.starts_with(prefix)).unwrap_or_else(|| panic!("no row {prefix}"))
    }

    #[test]
    fn results_lines_with_and_without_extra_fields_parse() {
        let (runs, ..) = sections();
        assert_eq!(runs.len(), 6);
        assert!(runs[0].extra.is_empty());
        assert_eq!(runs[5].extra.get("issuer_calls").map(String::as_str), Some("3000"));
        assert_eq!(runs[5].requests, 975_000);
    }

    #[test]
    fn hot_path_needs_both_throughput_and_cpu() {
        let (_, ab, growth, fresh) = sections();
        let rows = verdict(&ab, &growth, &fresh, &[]);
        // 0.90× req/s and 20/22 = 0.91× CPU: met.
        assert_eq!(row(&rows, "hot path ≥ 0.85× bare axum, bearer RS256").2, "met");
        // 0.75× req/s: not met.
        assert_eq!(row(&rows, "hot path ≥ 0.85× bare axum, cookie").2, "**not met**");
        assert!(row(&rows, "hot path ≥ 0.85× bare axum, bearer ES256").1.starts_with("not measured"));
    }

    #[test]
    fn freshness_counts_calls_per_session_per_window_begun() {
        let (_, ab, growth, fresh) = sections();
        let f = freshness(&fresh).expect("freshness");
        // 65 s with a 30 s window: three windows begun, one call per session in each.
        assert!((f.windows - 3.0).abs() < f64::EPSILON);
        assert!((f.per_session_window - 1.0).abs() < 1e-9);
        assert_eq!(row(&verdict(&ab, &growth, &fresh, &[]), "freshness: issuer calls").2, "met");

        // One call more than a window allows: not met.
        let more = RESULTS.replace("issuer_calls=3000", "issuer_calls=3001");
        let runs: Vec<Run> = more.lines().filter_map(parse).collect();
        let fresh = Section::of(&runs, "fresh");
        assert_eq!(row(&verdict(&ab, &growth, &fresh, &[]), "freshness: issuer calls").2, "**not met**");
    }

    #[test]
    fn capacity_reads_the_default_budget_line_field_by_field() {
        let (_, ab, growth, fresh) = sections();
        let line = |entries: &str, heap: &str| {
            fields(
                &format!("budget=default\tsessions=100000\tfailed=0\tentries={entries}\tnew_field=7\theap_mib={heap}"),
                '\t',
            )
        };
        let unbounded = fields("budget=4096 MiB\tsessions=100000\tfailed=0\tentries=100000\theap_mib=10.0", '\t');
        let rows = verdict(&ab, &growth, &fresh, &[unbounded.clone(), line("100000", "60.5")]);
        assert_eq!(row(&rows, "capacity").2, "met");
        let rows = verdict(&ab, &growth, &fresh, &[unbounded.clone(), line("100000", "64.5")]);
        assert_eq!(row(&rows, "capacity").2, "**not met**");
        let rows = verdict(&ab, &growth, &fresh, &[unbounded, line("99999", "40.0")]);
        assert_eq!(row(&rows, "capacity").2, "**not met**");
    }
}
