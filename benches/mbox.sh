#!/usr/bin/env bash
# Issue 12's mbox benchmark: Loft and Dovecot on the same 100,000-message mbox, one run.
#
#   benches/mbox.sh [--only loft|dovecot]      # the whole benchmark (default: both)
#   benches/mbox.sh start loft|dovecot WORK PORT     # a fresh copy of the corpus, a server on
#                                                    # it; prints the server's PID
#   benches/mbox.sh restart loft|dovecot WORK PORT   # the same files, the server restarted
#   benches/mbox.sh stop loft|dovecot WORK
#
# The corpus, target/bench-mbox-100000/INBOX (1.46 GB), is made once from the load
# benchmark's Maildir by `benches/mbox.py corpus` (see there). Each server gets its own
# copy of it for each run (`cp --reflink=auto`, then `sync`, so that no write-back of the
# copy runs during the measurement): both rewrite the file. The steps and checks are in
# benches/mbox.py; each engine's figures go to target/bench-mbox-ENGINE.tsv and the table
# of both to target/bench-mbox-results.tsv (`--only` combines with the other engine's last
# results). MBOX_BENCH_MESSAGES=N makes and uses a corpus of the first N messages only
# (a smoke test of the scripts).
#
# Dovecot: Debian's dovecot-imapd, `mail_location = mbox:~/mail:INBOX=~/mail/INBOX`, the
# mbox settings left at Dovecot's defaults (written out below: reads fcntl, writes
# dotlock then fcntl, lazy writes, dirty syncs, mail_fsync = optimized), plain IMAP on
# 127.0.0.1, user bench/bench in a passwd-file, mail owned by nobody:nogroup (as
# benches/dovecot.sh). Loft:
# target/release/loft (LOFT_BIN overrides) with `[storage] format = "mbox"`, location
# WORK/mail/%u (INBOX is the file WORK/mail/bench/INBOX), the mbox keys at their defaults
# (the same as Dovecot's), fsync = "optimized" (as Dovecot's mail_fsync), serving as
# nobody when started as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus="$here/target/bench-mbox-${MBOX_BENCH_MESSAGES:-100000}/INBOX"
loft_bin=${LOFT_BIN:-$here/target/release/loft}

wait_port() {  # PORT: until something accepts on it (20 s)
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

copy_corpus() {  # DEST_FILE
    [ -f "$corpus" ] || python3 "$here/benches/mbox.py" corpus >/dev/null
    mkdir -p "$(dirname "$1")"
    cp --reflink=auto "$corpus" "$1"
    sync "$1"
}

dovecot_conf() {  # WORK PORT
    cat >"$1/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $1/run
state_dir = $1/state
log_path = $1/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = mbox:~/mail:INBOX=~/mail/INBOX
# Dovecot's defaults, written out.
mbox_read_locks = fcntl
mbox_write_locks = dotlock fcntl
mbox_lock_timeout = 5 mins
mbox_dotlock_change_timeout = 2 mins
mbox_dirty_syncs = yes
mbox_very_dirty_syncs = no
mbox_lazy_writes = yes
mail_fsync = optimized
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $1/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$1/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $2
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
}

dovecot_up() {  # WORK PORT
    dovecot -c "$1/dovecot.conf" </dev/null >"$1/start.log" 2>&1 || { cat "$1/start.log" >&2; exit 1; }
    for _ in $(seq 1 100); do
        if [ -s "$1/run/master.pid" ] && wait_port "$2"; then
            cat "$1/run/master.pid"
            return 0
        fi
        sleep 0.1
    done
    echo "dovecot did not start; log:" >&2
    cat "$1/dovecot.log" >&2 || true
    exit 1
}

dovecot_down() {  # WORK
    [ -f "$1/dovecot.conf" ] || return 0
    dovecot -c "$1/dovecot.conf" stop 2>/dev/null || true
    for _ in $(seq 1 100); do
        [ -f "$1/run/master.pid" ] || return 0
        kill -0 "$(cat "$1/run/master.pid")" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "dovecot did not stop" >&2
    return 1
}

loft_conf() {  # WORK PORT
    local user
    if [ "$(id -u)" = 0 ]; then user=nobody; else user=$(id -un); fi
    cat >"$1/loft.toml" <<EOF
[server]
user = "$user"
when_not_root = "run"
[imap]
listen = ["127.0.0.1:$2"]
listen_tls = []
[pop3]
listen = []
listen_tls = []
[auth]
passwd_file = "$1/users"
allow_plaintext_auth = true
[storage]
format = "mbox"
location = "$1/mail/%u"
# Dovecot's mail_fsync default (written out above): new mail and renames forced to
# disk, flag changes not. Loft ships "always"; see docs/performance.md.
fsync = "optimized"
[log]
level = "warn"
EOF
}

loft_up() {  # WORK PORT
    [ -x "$loft_bin" ] || { echo "no $loft_bin (cargo build --release)" >&2; exit 1; }
    "$loft_bin" check-config --config "$1/loft.toml" >"$1/check-config.log" 2>&1 ||
        { echo "loft check-config refused $1/loft.toml:" >&2; cat "$1/check-config.log" >&2; exit 1; }
    # Its own session, output to a file: a caller reading our stdout must see EOF.
    setsid "$loft_bin" serve --config "$1/loft.toml" </dev/null >>"$1/loft.log" 2>&1 &
    echo $! >"$1/loft.pid"
    if ! wait_port "$2" || ! kill -0 "$(cat "$1/loft.pid")" 2>/dev/null; then
        echo "loft did not start; log:" >&2
        cat "$1/loft.log" >&2
        exit 1
    fi
    cat "$1/loft.pid"
}

loft_down() {  # WORK
    [ -f "$1/loft.pid" ] || return 0
    local pid
    pid=$(cat "$1/loft.pid")
    kill -TERM "$pid" 2>/dev/null || { rm -f "$1/loft.pid"; return 0; }
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$1/loft.pid"; return 0; }
        sleep 0.1
    done
    echo "loft ($pid) did not stop in 10 s" >&2
    return 1
}

start() {  # ENGINE WORK PORT
    local engine=$1 work port=$3
    work=$(realpath -m "$2")
    stop "$engine" "$work" || true
    rm -rf "$work"
    mkdir -p "$work"
    printf 'bench:{PLAIN}bench::::::\n' >"$work/users"
    case $engine in
    dovecot)
        command -v dovecot >/dev/null || { echo "dovecot not installed (apt-get install -y dovecot-imapd)" >&2; exit 1; }
        mkdir -p "$work/run" "$work/state"
        copy_corpus "$work/home/bench/mail/INBOX"
        chown -R nobody:nogroup "$work/home"
        dovecot_conf "$work" "$port"
        dovecot_up "$work" "$port"
        ;;
    loft)
        copy_corpus "$work/mail/bench/INBOX"
        [ "$(id -u)" = 0 ] && chown -R nobody:nogroup "$work/mail"
        loft_conf "$work" "$port"
        loft_up "$work" "$port"
        ;;
    *) usage ;;
    esac
}

restart() {  # ENGINE WORK PORT
    local work
    work=$(realpath -m "$2")
    stop "$1" "$work"
    case $1 in
    dovecot) dovecot_up "$work" "$3" ;;
    loft) loft_up "$work" "$3" ;;
    *) usage ;;
    esac
}

stop() {  # ENGINE WORK
    case $1 in
    dovecot) dovecot_down "$(realpath -m "$2")" ;;
    loft) loft_down "$(realpath -m "$2")" ;;
    *) usage ;;
    esac
}

usage() {
    echo "usage: $0 [--only loft|dovecot] | start|restart ENGINE WORK PORT | stop ENGINE WORK" >&2
    exit 2
}

bench() {  # ENGINE PORT
    local engine=$1 port=$2 work="$here/target/bench-mbox-$1-run" pid mbox
    if [ "$engine" = dovecot ]; then mbox="$work/home/bench/mail/INBOX"; else mbox="$work/mail/bench/INBOX"; fi
    echo "== $engine: copying the corpus and starting the server" >&2
    if ! pid=$("$here/benches/mbox.sh" start "$engine" "$work" "$port"); then
        echo "== $engine did not start: no figures for it" >&2
        status=1
        return 0
    fi
    trap 'stop '"$engine"' "'"$work"'" || true' EXIT
    python3 "$here/benches/mbox.py" run "$engine" "$port" "$pid" "$mbox" \
        "'$here/benches/mbox.sh' restart $engine '$work' $port" || status=1
    stop "$engine" "$work" || true
    trap - EXIT
}

case ${1:-} in
start | restart) [ $# = 4 ] || usage; "$@" ;;
stop) [ $# = 3 ] || usage; "$@" ;;
"" | --only)
    engines="loft dovecot"
    if [ "${1:-}" = --only ]; then
        case ${2:-} in loft | dovecot) engines=$2 ;; *) usage ;; esac
    fi
    python3 "$here/benches/mbox.py" corpus >/dev/null
    status=0
    for e in $engines; do
        if [ "$e" = loft ]; then bench loft "${PORT:-11630}"; else bench dovecot "$((${PORT:-11630} + 1))"; fi
    done
    python3 "$here/benches/mbox.py" table
    exit $status
    ;;
*) usage ;;
esac
