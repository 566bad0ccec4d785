#!/usr/bin/env bash
# Load benchmark of tower-stepup on loopback, in one run:
#   bare axum hello-world (bearer, cookie) | the same app behind tower-stepup (hot bearer
#   and cookie, cold, many sessions) | the same app behind jwt-authorizer 0.15
#   (benches/peer, axum 0.7)
# alternating A/B/A/B, then growth (1 … 1 000 000 distinct sessions), freshness under
# load (a `fresh_within` route confirming 1 000 live sessions with the dev issuer in
# Stytch mode), cache memory and an unknown-kid flood; the report ends each issue-13
# target with its verdict. See BENCHMARKS.md for the method.
#
# Knobs (environment):
#   DURATION=10      seconds per measured run        WARMUP=2     seconds of warm-up per run
#   ROUNDS=2         A/B rounds                      CONNECTIONS=32  wrk connections
#   WRK_THREADS=1    wrk threads                     WORKERS=1    server tokio worker threads
#   SERVER_CPUS=1    taskset CPU list of the server  WRK_CPUS=0   taskset CPU list of wrk
#                    (set both empty to not pin)
#   GROWTH="1 1000 100000 1000000"  distinct-session counts   GROWTH_FILL=$DURATION
#                    (counts up to 100 000, and the A/B many-sessions run, warm up until
#                    every session is cached instead: at most FILL_MAX=60 seconds)
#   FRESH_SESSIONS=1000  live sessions of the freshness run   FRESH_WINDOW=30  fresh_within(s)
#   FRESH_SECONDS=65     seconds on the fresh route (≥ 2 windows; the plain route gets DURATION)
#   SKIP_AB=1 / SKIP_GROWTH=1 / SKIP_FRESH=1 / SKIP_MEMORY=1 / SKIP_FLOOD=1   skip a part
#   PORT=18431       server port on 127.0.0.1         OUT=target/load-report.md
#   CARGO_TARGET_DIR defaults to <repo>/target
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
WORKERS=${WORKERS:-1}
SERVER_CPUS=${SERVER_CPUS-1}
WRK_CPUS=${WRK_CPUS-0}
GROWTH=${GROWTH:-1 1000 100000 1000000}
GROWTH_FILL=${GROWTH_FILL:-$DURATION}
FILL_MAX=${FILL_MAX:-60}
FRESH_SESSIONS=${FRESH_SESSIONS:-1000}
FRESH_WINDOW=${FRESH_WINDOW:-30}
FRESH_SECONDS=${FRESH_SECONDS:-65}
PORT=${PORT:-18431}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$CARGO_TARGET_DIR/load-report.md}
ADDR=127.0.0.1:$PORT

log() { printf '[load] %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
command -v taskset >/dev/null || { SERVER_CPUS=""; WRK_CPUS=""; log "no taskset: not pinning"; }
# pinned CPUS CMD…: CMD, under taskset when CPUS is set (prints the argv, one per line)
pinned() { local cpus=$1; shift; if [ -n "$cpus" ]; then printf '%s\n' taskset -c "$cpus" "$@"; else printf '%s\n' "$@"; fi; }

log "building (release): load-server and peer"
cargo build --release --quiet --manifest-path "$ROOT/benches/load-server/Cargo.toml"
cargo build --release --quiet --manifest-path "$ROOT/benches/peer/Cargo.toml"
SERVER_BIN=$CARGO_TARGET_DIR/release/stepup-bench-server
MEMORY_BIN=$CARGO_TARGET_DIR/release/stepup-bench-memory
PEER_BIN=$CARGO_TARGET_DIR/release/stepup-bench-peer

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- issuer: JWKS + tokens ---------------------------------------------------------
MAX_SESSIONS=100000
# GROWTH's counts are needed by the growth and memory parts only.
if [ -z "${SKIP_GROWTH:-}" ] || [ -z "${SKIP_MEMORY:-}" ]; then
  for n in $GROWTH; do [ "$n" -gt "$MAX_SESSIONS" ] && MAX_SESSIONS=$n; done
fi
log "starting the dev issuers, minting $MAX_SESSIONS ES256 session JWTs and $FRESH_SESSIONS live Stytch sessions"
"$SERVER_BIN" issuer "$WORK" "$MAX_SESSIONS" "$FRESH_SESSIONS" >"$WORK/issuer.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 2400); do [ -e "$WORK/ready" ] && break; sleep 0.5; done
[ -e "$WORK/ready" ] || { cat "$WORK/issuer.log"; log "issuer not ready"; exit 1; }
cat "$WORK/issuer.log" >&2
JWKS=$(cat "$WORK/jwks_url"); ISS=$(cat "$WORK/iss"); AUD=$(cat "$WORK/aud")
RS256=$(cat "$WORK/rs256.token"); ES256=$(cat "$WORK/es256.token")
SESSIONS=$WORK/sessions.txt
RESULTS=$WORK/results.tsv
: >"$RESULTS"
TICKS=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

SERVER_PID=""
SERVER_KIND=""
start_server() { # kind: bare | stepup | stepup-cookie | stepup-nocache | peer | fresh
  local kind=$1
  local cmd secret=""
  case "$kind" in
    peer) mapfile -t cmd < <(pinned "$SERVER_CPUS" "$PEER_BIN" "$ADDR" "$JWKS" "$ISS" "$AUD") ;;
    fresh)
      # The project secret goes in the environment, not on the command line.
      secret=$(cat "$WORK/fresh.secret")
      mapfile -t cmd < <(pinned "$SERVER_CPUS" "$SERVER_BIN" serve-fresh "$ADDR" \
        "$(cat "$WORK/fresh.base_url")" "$(cat "$WORK/fresh.project_id")" "$FRESH_WINDOW")
      ;;
    *) mapfile -t cmd < <(pinned "$SERVER_CPUS" "$SERVER_BIN" serve "$ADDR" "$kind" "$JWKS" "$ISS" "$AUD") ;;
  esac
  SERVER_KIND=$kind
  env WORKERS="$WORKERS" STEPUP_BENCH_SECRET="$secret" "${cmd[@]}" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 300); do
    grep -q listening "$WORK/server.log" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/server.log" >&2; log "server $kind did not start"; exit 1
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

# cache_entries: the running server's verified-session cache entry count (it prints it
# on SIGUSR1); empty for servers without a layer.
cache_entries() {
  case "$SERVER_KIND" in bare | peer) return 0 ;; esac
  local seen; seen=$(grep -c '^CACHE' "$WORK/server.log" || true)
  kill -USR1 "$SERVER_PID"
  for _ in $(seq 1 50); do
    if [ "$(grep -c '^CACHE' "$WORK/server.log" || true)" -gt "$seen" ]; then
      grep '^CACHE' "$WORK/server.log" | tail -n1 | tr '\t' '\n' | awk -F= '$1 == "entries" {print $2}'
      return 0
    fi
    sleep 0.1
  done
}

# issuer_calls: sessions/authenticate requests the Stytch-mode dev issuer has counted.
issuer_calls() {
  curl -sf "$(cat "$WORK/counts_url")" | tr '\t' '\n' | awk -F= '$1 == "sessions_authenticate" {print $2}'
}

# wrk_run SECONDS [env assignments…]: prints "requests seconds p50 p99 non2xx errors";
# the request path is $WRK_PATH (default /).
wrk_run() {
  local seconds=$1; shift
  local cmd
  mapfile -t cmd < <(pinned "$WRK_CPUS" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${seconds}s" --timeout 10s \
    -s "$ROOT/benches/wrk-tokens.lua" "http://$ADDR${WRK_PATH:-/}")
  env "$@" "${cmd[@]}" | awk -F'\t' '$1 == "WRK" {print $2, $3, $4, $5, $6, $7}'
}

# run SECTION ROUND CONFIG KIND FILL [env assignments for wrk…]: one server, one measured
# run. FILL: seconds of warm-up, or "cache:N": warm up until the server's cache holds N
# sessions (at most FILL_MAX seconds; servers without a cache get WARMUP seconds), so
# that a run over many sessions measures the steady state, not the first verifications.
run() {
  local section=$1 round=$2 config=$3 kind=$4 fill=$5; shift 5
  start_server "$kind"
  case "$fill" in
    cache:*)
      wrk_run "$WARMUP" "$@" >/dev/null
      local want=${fill#cache:} waited=0 entries
      entries=$(cache_entries)
      while [ -n "$entries" ] && [ "$entries" -lt "$want" ] && [ "$waited" -lt "$FILL_MAX" ]; do
        # Tokens are cached in the order sent: go on from the first one not cached.
        wrk_run 5 "$@" OFFSET="$entries" >/dev/null
        waited=$((waited + 5))
        entries=$(cache_entries)
      done
      [ -n "$entries" ] && log "$config: $entries sessions cached after the fill"
      ;;
    *) [ "$fill" -gt 0 ] && wrk_run "$fill" "$@" >/dev/null ;;
  esac
  measure "$section" "$round" "$config" "$DURATION" "" "$@"
  stop_server
}

# measure SECTION ROUND CONFIG SECONDS EXTRA [env assignments for wrk…]: one measured
# wrk run against the running server, appended to $RESULTS (EXTRA: key=value,… for the
# report; the server's cache entry count is added to it, and what $AFTER_HOOK prints)
measure() {
  local section=$1 round=$2 config=$3 duration=$4 extra=$5; shift 5
  local before; before=$(cpu_ticks "$SERVER_PID")
  local result; result=$(wrk_run "$duration" "$@")
  local after rss; after=$(cpu_ticks "$SERVER_PID"); rss=$(rss_kib "$SERVER_PID")
  local entries; entries=$(cache_entries)
  [ -n "$entries" ] && extra="${extra:+$extra,}entries=$entries"
  read -r requests seconds p50 p99 non2xx errors <<<"$result"
  [ -n "${requests:-}" ] || { cat "$WORK/server.log" >&2; log "wrk gave no result for $config"; exit 1; }
  # AFTER_HOOK SECONDS: more key=value,… for this run (the freshness run's counters)
  if [ -n "${AFTER_HOOK:-}" ]; then extra="${extra:+$extra,}$("$AFTER_HOOK" "$seconds")"; fi
  local rps cpu util
  rps=$(awk -v r="$requests" -v s="$seconds" 'BEGIN {printf "%.1f", r / s}')
  cpu=$(awk -v t=$((after - before)) -v hz="$TICKS" -v r="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / r}')
  util=$(awk -v t=$((after - before)) -v hz="$TICKS" -v s="$seconds" 'BEGIN {printf "%.0f", t / hz / s * 100}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$section" "$round" "$config" "$rps" "$p50" "$p99" "$non2xx" "$errors" "$cpu" "$rss" "$requests" "$extra" >>"$RESULTS"
  log "$(printf '%-7s r%s %-20s %9s req/s  p50 %6s µs  p99 %7s µs  server CPU %5s µs/req (%s%% of a core)  RSS %s KiB  non-2xx %s  errors %s  %s' \
    "$section" "$round" "$config" "$rps" "$p50" "$p99" "$cpu" "$util" "$rss" "$non2xx" "$errors" "$extra")"
}

# --- A/B rounds ----------------------------------------------------------------------
[ -n "${SKIP_AB:-}" ] && ROUNDS=0
log "A/B: $ROUNDS rounds × ${DURATION}s (+${WARMUP}s warm-up), $CONNECTIONS connections, server CPUs '${SERVER_CPUS}', wrk CPUs '${WRK_CPUS}'"
for round in $(seq 1 "$ROUNDS"); do
  # The bare app gets the same request (token included) and ignores it.
  run ab "$round" bare bare "$WARMUP" TOKEN="$RS256"
  run ab "$round" bare-cookie bare "$WARMUP" TOKEN="$RS256" CREDENTIAL=cookie
  run ab "$round" stepup-hot-rs256 stepup "$WARMUP" TOKEN="$RS256"
  run ab "$round" stepup-hot-cookie stepup-cookie "$WARMUP" TOKEN="$RS256" CREDENTIAL=cookie
  run ab "$round" peer-rs256 peer "$WARMUP" TOKEN="$RS256"
  run ab "$round" stepup-hot-es256 stepup "$WARMUP" TOKEN="$ES256"
  run ab "$round" peer-es256 peer "$WARMUP" TOKEN="$ES256"
  run ab "$round" stepup-cold-rs256 stepup-nocache "$WARMUP" TOKEN="$RS256"
  run ab "$round" stepup-cold-es256 stepup-nocache "$WARMUP" TOKEN="$ES256"
  run ab "$round" stepup-many-100k stepup cache:100000 TOKENS_FILE="$SESSIONS" COUNT=100000
  run ab "$round" peer-many-100k peer "$WARMUP" TOKENS_FILE="$SESSIONS" COUNT=100000
done

# --- growth ----------------------------------------------------------------------------
if [ -z "${SKIP_GROWTH:-}" ]; then
  log "growth: ${GROWTH} distinct ES256 sessions, default cache budget (${GROWTH_FILL}s fill, then ${DURATION}s measured)"
  for n in $GROWTH; do
    fill=$GROWTH_FILL
    # Up to 100 000 sessions fit the default cache: fill it before measuring.
    [ "$n" -le 100000 ] && fill=cache:$n
    run growth 1 "sessions-$n" stepup "$fill" TOKENS_FILE="$SESSIONS" COUNT="$n"
  done
fi

# --- freshness under load ---------------------------------------------------------------
if [ -z "${SKIP_FRESH:-}" ]; then
  log "freshness: $FRESH_SESSIONS live sessions cycling, plain route ${DURATION}s, then fresh_within(${FRESH_WINDOW}s) route ${FRESH_SECONDS}s"
  FRESH_TOKENS=$WORK/fresh-sessions.txt
  start_server fresh
  # Warm-up on the plain route: every session verified and cached locally, none
  # confirmed yet (the fresh route then starts with every confirmation due).
  WRK_PATH=/ wrk_run "$WARMUP" TOKENS_FILE="$FRESH_TOKENS" COUNT="$FRESH_SESSIONS" >/dev/null
  WRK_PATH=/ measure fresh 1 plain-route "$DURATION" "" TOKENS_FILE="$FRESH_TOKENS" COUNT="$FRESH_SESSIONS"
  calls_before=$(issuer_calls)
  [ -n "$calls_before" ] || { log "cannot read the issuer's counters"; exit 1; }
  # The issuer's counters during the fresh run go on its line, for the report.
  fresh_counts() {
    local calls; calls=$(issuer_calls)
    echo "issuer_calls=$((calls - calls_before)),sessions=$FRESH_SESSIONS,window_s=$FRESH_WINDOW,seconds=$1"
  }
  WRK_PATH=/fresh AFTER_HOOK=fresh_counts measure fresh 1 fresh-route "$FRESH_SECONDS" "" \
    TOKENS_FILE="$FRESH_TOKENS" COUNT="$FRESH_SESSIONS"
  stop_server
fi

# --- cache memory and flood (before the report, which reads the memory lines) ------------
if [ -z "${SKIP_MEMORY:-}" ]; then
  log "cache memory (in process)"
  # shellcheck disable=SC2086
  "$MEMORY_BIN" "$JWKS" "$ISS" "$AUD" "$SESSIONS" $GROWTH >"$WORK/memory.txt"
  "$MEMORY_BIN" "$JWKS" "$ISS" "$AUD" "$WORK/small-sessions.txt" 100000 >"$WORK/memory-small.txt"
fi
if [ -z "${SKIP_FLOOD:-}" ]; then
  log "unknown-kid flood"
  { "$SERVER_BIN" flood 30000 10000; "$SERVER_BIN" flood 250 10000; } >"$WORK/flood.txt"
fi

# --- report ----------------------------------------------------------------------------
{
  echo "# Load benchmark report"
  echo
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(rustc --version)"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- ${ROUNDS} rounds × ${DURATION}s per config (+${WARMUP}s warm-up), wrk -t${WRK_THREADS} -c${CONNECTIONS}, server CPUs '${SERVER_CPUS}' with ${WORKERS} worker(s), wrk CPUs '${WRK_CPUS}'"
  [ -z "${SKIP_FRESH:-}" ] && echo "- freshness: ${FRESH_SESSIONS} sessions, fresh_within(${FRESH_WINDOW}s), ${FRESH_SECONDS}s on the fresh route, ${DURATION}s on the plain route"
  if [ -e "$WORK/memory.txt" ]; then
    "$SERVER_BIN" report "$RESULTS" "$WORK/memory.txt"
  else
    "$SERVER_BIN" report "$RESULTS"
  fi
  if [ -z "${SKIP_MEMORY:-}" ]; then
    echo
    echo "## Cache memory (in process, counting allocator)"
    echo
    echo '```'
    cat "$WORK/memory.txt"
    echo "# smallest session JWTs (no factor, no role):"
    cat "$WORK/memory-small.txt"
    echo '```'
  fi
  if [ -z "${SKIP_FLOOD:-}" ]; then
    echo
    echo "## Unknown-kid flood (10 000 requests, 64 concurrent, JWKS of 50 keys)"
    echo
    echo '```'
    cat "$WORK/flood.txt"
    echo '```'
  fi
  echo
  echo "## Raw runs"
  echo
  echo '```'
  echo -e "section\tround\tconfig\treq/s\tp50_us\tp99_us\tnon2xx\terrors\tcpu_us_per_req\trss_kib\trequests\textra"
  cat "$RESULTS"
  echo '```'
} >"$OUT"
cat "$OUT"
log "report written to $OUT"
