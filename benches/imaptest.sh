#!/usr/bin/env bash
# Dovecot's imaptest random concurrent mix against Loft and Dovecot, one after the other,
# on the same machine with the same settings; prints server CPU per command for each,
# then the IDLE and imaplib APPEND latencies of benches/latency.py for each.
#
#   benches/imaptest.sh [SECS] [CLIENTS] [USERS]      (defaults 30 10 4)
#
# Needs: a release `loft` (cargo build --release), Debian's dovecot-imapd, and imaptest
# built from source (IMAPTEST=/path/to/imaptest; see ../shared/CRATES.md or
# docs/performance.md "imaptest"). Not run by CI.
#
# The mix is imaptest's default random one (LOGIN, LIST, STATUS, SELECT, FETCH, FETCH2,
# STORE, DELETE, EXPUNGE, APPEND, LOGOUT with its built-in probabilities), with
# `logout=0` so sessions stay logged in, `msgs=30` (small mailboxes), USERS mailboxes
# shared by CLIENTS clients (so every mailbox is changed concurrently by several
# sessions), messages appended from a generated mbox. Server CPU is utime+stime from
# /proc: the loft process; Dovecot's master and every descendant, including what the
# master reaped (cutime/cstime). Commands are imaptest's own totals.
set -euo pipefail
secs=${1:-30}; clients=${2:-10}; users=${3:-4}
here=$(cd "$(dirname "$0")/.." && pwd)
imaptest=${IMAPTEST:-/work/imaptest/src/src/imaptest}
loft=${LOFT:-$here/target/release/loft}
work=${WORK:-$here/target/imaptest-run}
lport=${LOFT_PORT:-11443}; dport=${DOVECOT_PORT:-11444}
seed=${SEED:-7}
[ -x "$imaptest" ] || { echo "imaptest not found at $imaptest (set IMAPTEST)" >&2; exit 1; }
[ -x "$loft" ] || { echo "loft not found at $loft (cargo build --release)" >&2; exit 1; }
command -v dovecot >/dev/null || { echo "dovecot not installed" >&2; exit 1; }
rm -rf "$work"; mkdir -p "$work"

# An mbox of 300 varied messages (plain, multipart with attachment, 8-bit, long headers).
python3 - "$work/source.mbox" <<'PY'
import random, sys
r = random.Random(11)
names = ["Ann Arbor", "Bob Stone", "Chloé Dupont", "Dmitri Ivanov", "Eve Park", "Quentin Zephyrine"]
doms = ["example.org", "mail.example.net", "lists.example.com"]
words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
with open(sys.argv[1], "w", newline="\n") as f:
    for i in range(300):
        fr = f"{r.choice(names)} <{r.choice(['a','b','c'])}{i}@{r.choice(doms)}>"
        to = f"user{r.randint(1,9)}@{r.choice(doms)}"
        body = "\n".join(" ".join(r.choice(words) for _ in range(12)) for _ in range(r.randint(5, 120)))
        f.write(f"From sender@{r.choice(doms)} Mon Dec  7 03:{i%60:02d}:00 2026\n")
        f.write(f"Return-Path: <sender@example.org>\nReceived: from mx{i%7}.example.org by mail.example.net; Mon, 7 Dec 2026 03:{i%60:02d}:00 +0000\n")
        f.write(f"From: {fr}\nTo: {to}\nSubject: message {i} about {r.choice(words)} {r.choice(words)}\n")
        f.write(f"Date: Mon, 7 Dec 2026 03:{i%60:02d}:00 +0000\nMessage-ID: <{i}.{r.randint(0,1<<30)}@example.org>\nMIME-Version: 1.0\n")
        if i % 5 == 0:
            f.write('Content-Type: multipart/mixed; boundary="b{0}"\n\n--b{0}\nContent-Type: text/plain; charset=utf-8\n\n{1}\n--b{0}\nContent-Type: application/octet-stream; name="f{0}.bin"\nContent-Transfer-Encoding: base64\n\n'.format(i, body))
            f.write("\n".join("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0" for _ in range(r.randint(10, 200))))
            f.write(f"\n--b{i}--\n\n")
        else:
            f.write(f"Content-Type: text/plain; charset=utf-8\n\n{body}\n\n")
PY

cpu_loft() { awk '{print $14+$15}' "/proc/$1/stat"; }
cpu_tree() { # master + descendants, including reaped children
    local total=0 p
    for p in $(pstree -p "$1" | grep -o '([0-9]*)' | tr -d '()'); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12+$13+$14+$15}')))
    done
    echo $total
}
run_imaptest() { # port label
    "$imaptest" host=127.0.0.1 port="$1" user='bench%d' users="1-$users" pass=bench \
        mbox="$work/source.mbox" clients="$clients" secs="$secs" logout=0 seed="$seed" \
        >"$work/$2.imaptest.log" 2>&1 || true
}
commands() { # sum of imaptest's totals: the first all-numeric line after "Totals:"
    awk '/^Totals:/{t=1; next} t && $0 ~ /^[ 0-9]+$/ {s=0; for(i=1;i<=NF;i++) s+=$i; print s; exit}' "$1"
}
report() { # label ticks
    local n; n=$(commands "$work/$1.imaptest.log")
    local hz; hz=$(getconf CLK_TCK)
    awk -v l="$1" -v t="$2" -v n="$n" -v hz="$hz" 'BEGIN{printf "%-8s commands %7d  server CPU %6.2f s  per command %.3f ms\n", l, n, t/hz, (n>0 ? t/hz*1000/n : 0)}'
    grep -iE 'error|panic|assert' "$work/$1.imaptest.log" | sort | uniq -c | sort -rn | head -5 || true
}

# --- Loft
mkdir -p "$work/loft/mail"
: >"$work/loft/users"
for u in $(seq 1 "$users"); do echo "bench$u:{PLAIN}bench" >>"$work/loft/users"; done
cat >"$work/loft/loft.toml" <<TOML
[server]
hostname = "localhost"
allow_root = true
[imap]
listen = ["127.0.0.1:$lport"]
listen_tls = []
[pop3]
listen = []
listen_tls = []
[auth]
passwd_file = "users"
allow_plaintext_auth = true
failure_delay = "0s"
[storage]
location = "mail/%u"
fsync = "${FSYNC:-never}"
TOML
(cd "$work/loft" && exec "$loft" serve -c loft.toml >"$work/loft/server.log" 2>&1) &
lpid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$lport") 2>/dev/null && break; sleep 0.1; done
c0=$(cpu_loft $lpid); run_imaptest "$lport" loft; c1=$(cpu_loft $lpid)
python3 "$here/benches/latency.py" 127.0.0.1 "$lport" bench1 bench >"$work/loft.latency.log" 2>&1 || true
kill $lpid; wait $lpid 2>/dev/null || true
loft_ticks=$((c1 - c0))

# --- Dovecot (benches/dovecot.sh: the same users, empty mailboxes)
dw="$work/dovecot"
dpid=$(USERS="$users" DOVECOT_FSYNC="${FSYNC:-never}" "$here/benches/dovecot.sh" start - "$dw" "$dport")
c0=$(cpu_tree "$dpid"); run_imaptest "$dport" dovecot; c1=$(cpu_tree "$dpid")
python3 "$here/benches/latency.py" 127.0.0.1 "$dport" bench1 bench >"$work/dovecot.latency.log" 2>&1 || true
"$here/benches/dovecot.sh" stop "$dw"
dove_ticks=$((c1 - c0))

echo "imaptest: clients=$clients users=$users secs=$secs logout=0 msgs=30 seed=$seed fsync=${FSYNC:-never}"
report loft "$loft_ticks"
report dovecot "$dove_ticks"
for t in loft dovecot; do sed "s/^/$t: /" "$work/$t.latency.log"; done
