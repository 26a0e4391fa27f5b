#!/usr/bin/env bash
# Starts and stops a throwaway Dovecot (Debian's dovecot-imapd) for the load benchmark.
#
#   benches/dovecot.sh start CORPUS_DIR WORK_DIR PORT   # prints the master PID
#   USERS=N benches/dovecot.sh start - WORK_DIR PORT     # users bench1..benchN, empty
#                                                        # mailboxes (benches/imaptest.sh)
#   benches/dovecot.sh stop WORK_DIR
#
# CORPUS_DIR is a Maildir (cur/ new/ tmp/) made by `cargo bench --bench load`. It is
# hard-linked (never modified: Maildir message files are immutable, flag changes are
# renames inside the copy) into WORK_DIR/home/bench/Maildir, so Dovecot writes its index
# files and flag renames there and the cached corpus stays pristine.
#
# Plain IMAP on 127.0.0.1:PORT only, user "bench" password "bench" ({PLAIN} in a
# passwd-file), mail owned by nobody:nogroup, every limit raised above the benchmark's
# 1,000 idle + 50 busy connections. Nothing here is used by CI; install with
# `apt-get install -y dovecot-imapd`.
set -euo pipefail

cmd=${1:-}
case "$cmd" in
start)
    work=$(realpath -m "$3")
    port=$4
    command -v dovecot >/dev/null || { echo "dovecot not installed (apt-get install -y dovecot-imapd)" >&2; exit 1; }
    if [ -f "$work/run/master.pid" ]; then "$0" stop "$work" || true; fi
    rm -rf "$work"
    mkdir -p "$work/run" "$work/state" "$work/home"
    if [ "$2" = "-" ]; then
        : >"$work/users"
        for u in $(seq 1 "${USERS:-1}"); do
            printf 'bench%s:{PLAIN}bench::::::\n' "$u" >>"$work/users"
        done
    else
        corpus=$(realpath "$2")
        [ -d "$corpus/cur" ] || { echo "$corpus is not a Maildir" >&2; exit 1; }
        for sub in cur new tmp; do
            mkdir -p "$work/home/bench/Maildir/$sub"
            # Hard links: same inodes, separate directory entries (fast, no extra space).
            if [ -n "$(ls -A "$corpus/$sub" 2>/dev/null)" ]; then
                cp -al "$corpus/$sub/." "$work/home/bench/Maildir/$sub/"
            fi
        done
        printf 'bench:{PLAIN}bench::::::\n' >"$work/users"
    fi
    chown -R nobody:nogroup "$work/home"
    cat >"$work/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $work/run
state_dir = $work/state
log_path = $work/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_fsync = ${DOVECOT_FSYNC:-optimized}
first_valid_uid = 1
default_client_limit = 4000
default_process_limit = 4000
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$work/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
  # "High-performance" login mode: a couple of long-lived login processes.
  service_count = 0
  process_min_avail = 2
  client_limit = 4000
}
service imap {
  process_limit = 4000
}
service anvil {
  client_limit = 8100
}
service auth {
  client_limit = 8100
}
protocol imap {
  mail_max_userip_connections = 4000
}
EOF
    ulimit -n "$(ulimit -Hn)"
    # The master daemonizes: keep it off our stdout, or a caller reading it never sees EOF.
    dovecot -c "$work/dovecot.conf" </dev/null >"$work/start.log" 2>&1 || { cat "$work/start.log" >&2; exit 1; }
    for _ in $(seq 1 100); do
        if [ -s "$work/run/master.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            cat "$work/run/master.pid"
            exit 0
        fi
        sleep 0.1
    done
    echo "dovecot did not start; log:" >&2
    cat "$work/dovecot.log" >&2 || true
    exit 1
    ;;
stop)
    work=$(realpath -m "$2")
    [ -f "$work/dovecot.conf" ] || exit 0
    dovecot -c "$work/dovecot.conf" stop 2>/dev/null || true
    for _ in $(seq 1 100); do
        [ -f "$work/run/master.pid" ] || exit 0
        kill -0 "$(cat "$work/run/master.pid")" 2>/dev/null || exit 0
        sleep 0.1
    done
    echo "dovecot did not stop" >&2
    exit 1
    ;;
*)
    echo "usage: $0 start CORPUS_DIR WORK_DIR PORT | stop WORK_DIR" >&2
    exit 2
    ;;
esac
