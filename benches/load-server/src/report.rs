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
    print_verdict(&runs, &ab, &growth, &fresh, &memory);

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
    println!("| distinct sessions | req/s | server CPU µs/req | p50 / p99 µs | server RSS MiB | cached sessions | failed |");
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
    let (calls, sessions, window_s, seconds) = (
        s.extra_f64("issuer_calls")?,
        s.extra_f64("sessions")?,
        s.extra_f64("window_s")?,
        s.extra_f64("seconds")?,
    );
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

fn status(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// One verdict row per issue-13 target, from this run only.
fn print_verdict(
    runs: &[Run],
    ab: &Section,
    growth: &Section,
    fresh: &Section,
    memory: &[BTreeMap<String, String>],
) {
    println!();
    println!("## Verdict (issue 13 targets, this run)");
    println!();
    println!("| target | measured | status |");
    println!("| --- | --- | --- |");

    // Capacity: the default budget, 100 000 typical sessions verified in process.
    let capacity = memory.iter().find(|m| {
        m.get("budget").map(String::as_str) == Some("default") && m.get("sessions").map(String::as_str) == Some("100000")
    });
    match capacity {
        Some(m) => {
            let num = |k: &str| m.get(k).and_then(|v| v.parse::<f64>().ok());
            let (entries, heap, failed) = (num("entries"), num("heap_mib"), num("failed"));
            let met = matches!((entries, heap, failed), (Some(e), Some(h), Some(f)) if e >= 100_000.0 && h <= 64.0 && f == 0.0);
            println!(
                "| capacity: default cache holds ≥ 100 000 typical sessions within 64 MiB of heap | {} of 100 000 cached, \
                 {} MiB of heap added, {} failed | {} |",
                m.get("entries").map_or("?", String::as_str),
                m.get("heap_mib").map_or("?", String::as_str),
                m.get("failed").map_or("?", String::as_str),
                status(met)
            );
        }
        None => println!(
            "| capacity: default cache holds ≥ 100 000 typical sessions within 64 MiB of heap | not measured \
             (memory skipped, or 100000 not in GROWTH) | — |"
        ),
    }

    let ratio_row = |label: &str, ours: &str, theirs: &str, target: f64, both: bool| match ab.ratio(ours, theirs) {
        Some((rps, cpu)) => {
            // Where the issue names both measures (hot path), both must meet the target.
            let met = rps >= target && (!both || cpu >= target);
            println!(
                "| {label} | {rps:.2}× req/s, {cpu:.2}× CPU per request ({ours} vs {theirs}) | {} |",
                status(met)
            );
        }
        None => println!("| {label} | not measured ({ours} or {theirs} missing) | — |"),
    };
    ratio_row("many sessions: 100 000 cycling ≥ 0.8× single-session hot", "stepup-many-100k", "stepup-hot-es256", 0.8, false);
    ratio_row("many sessions: ≥ 3× jwt-authorizer, same tokens", "stepup-many-100k", "peer-many-100k", 3.0, false);
    ratio_row("hot path ≥ 0.85× bare axum, bearer RS256 (req/s and CPU)", "stepup-hot-rs256", "bare", 0.85, true);
    ratio_row("hot path ≥ 0.85× bare axum, bearer ES256 (req/s and CPU)", "stepup-hot-es256", "bare", 0.85, true);
    ratio_row("hot path ≥ 0.85× bare axum, cookie (req/s and CPU)", "stepup-hot-cookie", "bare-cookie", 0.85, true);
    println!(
        "| credential extraction < 300 ns | not a load measure: `cargo bench --bench micro --features __bench -- extract` | — |"
    );
    ratio_row("cold ≥ 1.2× jwt-authorizer per verification, RS256", "stepup-cold-rs256", "peer-rs256", 1.2, false);
    ratio_row("cold ≥ 1.2× jwt-authorizer per verification, ES256", "stepup-cold-es256", "peer-es256", 1.2, false);

    match (freshness(fresh), fresh.get(FRESH)) {
        (Some(f), Some(s)) => {
            // Every session confirmed (at least once), and never more than once per window.
            let met = f.calls >= f.sessions && f.per_session_window <= 1.0 && s.failures == 0;
            println!(
                "| freshness: {:.0} sessions on `fresh_within({:.0} s)` under wrk, issuer calls per session per window = 1 \
                 | {:.3} ({:.0} calls, {:.1} windows begun in {:.1} s), {} failed of {} | {} |",
                f.sessions,
                f.window_s,
                f.per_session_window,
                f.calls,
                f.windows,
                f.seconds,
                s.failures,
                s.requests,
                status(met)
            );
        }
        _ => println!("| freshness: issuer calls per session per window = 1 | not measured (SKIP_FRESH) | — |"),
    }
    if let (Some(fr), Some(pl)) = (fresh.get(FRESH), fresh.get(PLAIN)) {
        println!(
            "| freshness: added latency of the fresh route (report) | p50 {:.0} vs {:.0} µs, p99 {:.0} vs {:.0} µs, \
             CPU {:.1} vs {:.1} µs/req (fresh vs plain route, same sessions) | shown |",
            fr.p50_us, pl.p50_us, fr.p99_us, pl.p99_us, fr.cpu_us, pl.cpu_us
        );
    }

    if growth.is_empty() {
        println!("| growth: throughput and RSS at 1 / 1k / 100k / 1M sessions | not measured (SKIP_GROWTH) | — |");
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
        println!("| growth: throughput and RSS at 1 / 1k / 100k / 1M sessions | {} | shown |", cells.join("; "));
    }

    let failed: u64 = runs.iter().map(|r| r.non2xx + r.socket_errors).sum();
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    println!();
    println!(
        "Failed requests (non-2xx/3xx or socket errors) in all {} runs: {failed} of {requests}{}",
        runs.len(),
        if failed == 0 { "." } else { " — **the run is not valid**: see the failed column below." }
    );
}
