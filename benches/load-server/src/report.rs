//! Tables and ratios from the results file written by `benches/load.sh`.
//!
//! One line per run, tab-separated:
//! `section round config rps p50_us p99_us non2xx socket_errors cpu_us_per_req rss_kib requests`.

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
    }
}

pub(crate) fn print(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let runs: Vec<Run> = text.lines().filter_map(parse).collect();
    for section in ["ab", "growth"] {
        let mut order: Vec<&str> = Vec::new();
        let mut by_config: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
        for run in runs.iter().filter(|r| r.section == section) {
            if !order.contains(&run.config.as_str()) {
                order.push(&run.config);
            }
            by_config.entry(&run.config).or_default().push(run);
        }
        if order.is_empty() {
            continue;
        }
        let summaries: BTreeMap<&str, Summary> = by_config.iter().map(|(k, v)| (*k, summarize(v))).collect();
        println!();
        println!(
            "{}",
            if section == "ab" { "## A/B runs (median of rounds)" } else { "## Growth (distinct sessions cycling)" }
        );
        println!();
        println!("| config | req/s (median) | rounds | p50 µs | p99 µs | server CPU µs/req | max RSS MiB | failed |");
        println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
        for config in &order {
            let s = &summaries[config];
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
        if section != "ab" {
            continue;
        }
        println!();
        println!("## Ratios (same run)");
        println!();
        println!("| ours | against | req/s ratio | CPU/req ratio (theirs ÷ ours) | target |");
        println!("| --- | --- | ---: | ---: | --- |");
        let pairs = [
            ("stepup-hot-rs256", "bare", "≥ 0.85"),
            ("stepup-hot-es256", "bare", "≥ 0.85"),
            ("stepup-cold-rs256", "bare", ""),
            ("stepup-cold-es256", "bare", ""),
            ("stepup-many-100k", "bare", ""),
            ("stepup-hot-rs256", "peer-rs256", "≥ 5"),
            ("stepup-hot-es256", "peer-es256", "≥ 9"),
            ("stepup-cold-rs256", "peer-rs256", "≥ 1"),
            ("stepup-cold-es256", "peer-es256", "≥ 1"),
            ("stepup-many-100k", "peer-many-100k", "≥ 1"),
        ];
        for (ours, theirs, target) in pairs {
            let (Some(a), Some(b)) = (summaries.get(ours), summaries.get(theirs)) else { continue };
            println!("| {ours} | {theirs} | {:.2} | {:.2} | {target} |", a.rps / b.rps, b.cpu_us / a.cpu_us);
        }
    }
}
