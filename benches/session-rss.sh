#!/usr/bin/env bash
# Resident memory of Loft running as its own process (as it runs in production) after
# one client's session on the 100,000-message benchmark folder: the load benchmark's
# `session` phase against an already running `loft serve`, so that the figure holds the
# server alone (the in-process benchmark's RSS includes its client).
#
#   benches/session-rss.sh [RUNS]          (default 2: the first builds the cache)
#
# Needs a release `loft` (cargo build --release) and the load benchmark built
# (cargo bench --bench load --no-run); run the benchmark's `select` phase once first so
# that target/bench-loft-run/ holds a fresh copy of the corpus.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-2}; port=${PORT:-11500}
run="$here/target/bench-loft-run"
bin=$(ls -t "$here"/target/release/deps/load-* | grep -v '\.d$' | head -1)
[ -d "$run/mail/bench" ] || { echo "no $run: run the load benchmark once" >&2; exit 1; }
cat > "$run/loft.toml" <<EOF
[server]
allow_root = true
max_connections = 5000
max_connections_per_ip = 5000
max_connections_per_user_ip = 5000
[imap]
listen = ["127.0.0.1:$port"]
listen_tls = []
[pop3]
listen = []
listen_tls = []
[auth]
passwd_file = "$run/users"
allow_plaintext_auth = true
[storage]
location = "$run/mail/%u"
[log]
level = "warn"
EOF
for i in $(seq 1 "$runs"); do
    "$here/target/release/loft" serve --config "$run/loft.toml" > "$run/loft.log" 2>&1 &
    pid=$!
    sleep 1
    LOFT_BENCH_TARGET=loft-process LOFT_BENCH_ADDR="127.0.0.1:$port" LOFT_BENCH_SERVER_PID=$pid \
        LOFT_BENCH_NAMES=mta LOFT_BENCH_MESSAGES=100000 LOFT_BENCH_PHASES=session "$bin" 2>&1 \
        | grep -E "^  (SELECT|UID|STORE)|RSS"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
