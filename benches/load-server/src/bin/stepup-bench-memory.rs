//! Memory of the verified-session cache, measured in process with a counting allocator.
//!
//! `stepup-bench-memory JWKS_URL ISS AUD TOKENS_FILE COUNT...`: for each COUNT, a fresh
//! layer with the default cache budget verifies the first COUNT tokens of TOKENS_FILE
//! (two threads, no HTTP), then reports the cache's entries and weighted size and the
//! live heap the cache added. One more run with an unbounded budget gives the real
//! memory per cached session.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::BufRead as _;
use std::sync::atomic::{AtomicIsize, Ordering};

use http::{header, HeaderMap, HeaderValue};
use tower_stepup::{AuthState, KeySource, SessionLayer, StytchProfile};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size().cast_signed(), Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size().cast_signed(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(new_size.cast_signed() - layout.size().cast_signed(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

const MIB: f64 = 1024.0 * 1024.0;

fn measure(runtime: &tokio::runtime::Runtime, args: &[String], tokens: &[String], count: usize, budget: Option<u64>) {
    let (jwks, iss, aud) = (&args[0], &args[1], &args[2]);
    // Stytch session JWTs: read with the Stytch profile, as before the generic builder stopped defaulting to it.
    let mut builder = SessionLayer::builder(KeySource::url(jwks.as_str()))
        .with_issuer(iss)
        .with_audience(aud)
        .with_profile(StytchProfile::new());
    if let Some(bytes) = budget {
        builder = builder.with_session_cache_bytes(bytes);
    }
    let layer = runtime.block_on(builder.build()).expect("layer");
    let tokens = &tokens[..count];
    // Request headers are built up front so that they are not counted.
    let requests: Vec<HeaderMap> = tokens
        .iter()
        .map(|t| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).expect("header"));
            h
        })
        .collect();
    let (heap_before, rss_before) = (LIVE.load(Ordering::Relaxed), rss_kib());
    let started = std::time::Instant::now();
    let threads = 2;
    let chunk = count.div_ceil(threads).max(1);
    let failed: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .chunks(chunk)
            .map(|part| {
                let layer = &layer;
                scope.spawn(move || {
                    part.iter()
                        .filter(|h| {
                            !matches!(tower_stepup::__bench::resolve(layer, h), Some(AuthState::Authenticated(_)))
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    let (entries, weighted) = tower_stepup::__bench::cache_stats(&layer).expect("cache enabled");
    let heap = LIVE.load(Ordering::Relaxed) - heap_before;
    let rss = rss_kib().saturating_sub(rss_before);
    #[allow(clippy::cast_precision_loss)]
    let per_entry = if entries > 0 { heap as f64 / entries as f64 } else { 0.0 };
    #[allow(clippy::cast_precision_loss)]
    let weight_per_entry = if entries > 0 { weighted as f64 / entries as f64 } else { 0.0 };
    let budget_text = budget.map_or_else(|| "default".to_owned(), |b| format!("{:.0} MiB", b as f64 / MIB));
    println!(
        "MEMORY\tbudget={budget_text}\tsessions={count}\tfailed={failed}\tentries={entries}\tweighted_mib={:.1}\theap_mib={:.1}\trss_delta_mib={:.1}\theap_per_entry_b={per_entry:.0}\tweight_per_entry_b={weight_per_entry:.0}\tverify_s={:.1}",
        weighted as f64 / MIB,
        heap as f64 / MIB,
        rss as f64 / 1024.0,
        started.elapsed().as_secs_f64(),
    );
    drop(requests);
    drop(layer);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: stepup-bench-memory JWKS_URL ISS AUD TOKENS_FILE COUNT...");
        std::process::exit(2);
    }
    let counts: Vec<usize> = args[4..].iter().map(|c| c.parse().expect("COUNT")).collect();
    let max = counts.iter().copied().max().unwrap_or(0);
    let file = std::fs::File::open(&args[3]).expect("TOKENS_FILE");
    let tokens: Vec<String> = std::io::BufReader::new(file).lines().take(max).map(|l| l.expect("line")).collect();
    assert!(tokens.len() >= max, "TOKENS_FILE has {} tokens, {max} needed", tokens.len());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    for &count in &counts {
        measure(&runtime, &args, &tokens, count, None);
    }
    // Unbounded: every session stays cached, so heap / entries is the real cost of one.
    let unbounded = counts.iter().copied().filter(|&c| c <= 100_000).max().unwrap_or(1);
    measure(&runtime, &args, &tokens, unbounded, Some(u64::MAX / 2));
}
