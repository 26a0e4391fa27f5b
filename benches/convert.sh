#!/usr/bin/env bash
# `loft convert` on issue 12's corpus (one 100,000-message, 1.46 GB mbox written as
# Postfix local(8) writes a spool; see benches/mbox.sh), against Dovecot's own tool for
# the same job, `doveadm sync -1` (dsync one way), each on its own copy, one after the
# other:
#
#   1. mbox -> Maildir: Loft from a store no server has opened (the conversion builds the
#      index as it reads), Dovecot the same;
#   2. Maildir -> mbox: each back from the Maildir it made.
#
# Each step prints wall and CPU seconds (user + system of the tool) and checks the
# result: the message count, and for Loft the UIDs it promises (the conversion compares
# every message itself). Figures go to target/bench-convert.tsv.
#
#   benches/convert.sh            # both tools
#   CONVERT_ONLY=loft benches/convert.sh   # one (loft or dovecot)
#   MBOX_BENCH_MESSAGES=1000 benches/convert.sh   # a smoke test on the first 1,000
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${MBOX_BENCH_MESSAGES:-100000}
corpus="$here/target/bench-mbox-$n/INBOX"
loft_bin=${LOFT_BIN:-$here/target/release/loft}
work="$here/target/bench-convert"
out="$here/target/bench-convert.tsv"

[ -x "$loft_bin" ] || { echo "no $loft_bin (cargo build --release)" >&2; exit 1; }
[ -f "$corpus" ] || MBOX_BENCH_MESSAGES=$n python3 "$here/benches/mbox.py" corpus >/dev/null
rm -rf "$work"
mkdir -p "$work"
printf 'bench:{PLAIN}bench::::::\n' >"$work/users"
printf '# convert %s messages, %s bytes, %s\nstep\twall_s\tcpu_s\tnote\n' \
    "$n" "$(stat -c %s "$corpus")" "$(date -u '+%F %T')" >"$out"

timed() {  # STEP NOTE COMMAND...: runs it, appends wall and CPU seconds
    local step=$1 note=$2
    shift 2
    /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >"$work/$step.out" 2>&1 ||
        { cat "$work/$step.out" >&2; exit 1; }
    read -r wall user sys <"$work/time"
    printf '%s\t%s\t%.2f\t%s\n' "$step" "$wall" "$(echo "$user + $sys" | bc)" "$note" | tee -a "$out"
}

count_maildir() { find "$1/cur" "$1/new" -type f | wc -l; }
# Messages of an mbox file, without UW-IMAP's/Dovecot's pseudo message (`X-IMAP:`).
count_mbox() { echo $(( $(grep -c '^From ' "$1" || true) - $(grep -c '^X-IMAP: ' "$1" || true) )); }

loft_conf() {  # FILE FORMAT LOCATION
    cat >"$1" <<EOF
[server]
allow_root = true
[imap]
listen = ["127.0.0.1:1"]
listen_tls = []
[pop3]
listen = []
listen_tls = []
[auth]
passwd_file = "$work/users"
[storage]
format = "$2"
location = "$3"
fsync = "optimized"
[log]
level = "warn"
EOF
}

run_loft() {
    mkdir -p "$work/loft/mbox/bench"
    cp --reflink=auto "$corpus" "$work/loft/mbox/bench/INBOX"
    sync
    loft_conf "$work/loft-mbox.toml" mbox "$work/loft/mbox/%u"
    timed loft_to_maildir "" "$loft_bin" convert bench --to maildir \
        --location "$work/loft/maildir/%u" --config "$work/loft-mbox.toml"
    local got
    got=$(count_maildir "$work/loft/maildir/bench")
    [ "$got" = "$n" ] || { echo "Loft's Maildir holds $got messages, not $n" >&2; exit 1; }
    sync
    loft_conf "$work/loft-maildir.toml" maildir "$work/loft/maildir/%u"
    timed loft_to_mbox "" "$loft_bin" convert bench --to mbox \
        --location "$work/loft/back/%u" --config "$work/loft-maildir.toml"
    got=$(count_mbox "$work/loft/back/bench/INBOX")
    [ "$got" = "$n" ] || { echo "Loft's mbox holds $got messages, not $n" >&2; exit 1; }
    rm -rf "$work/loft"
}

dovecot_conf() {  # FILE MAIL_LOCATION
    cat >"$1" <<EOF
protocols =
base_dir = $work/dovecot/run
state_dir = $work/dovecot/state
log_path = $work/dovecot/dovecot.log
mail_location = $2
mail_fsync = optimized
first_valid_uid = 1
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$work/dovecot/home/%u
}
EOF
}

run_dovecot() {
    command -v doveadm >/dev/null || { echo "no doveadm (apt-get install -y dovecot-imapd)" >&2; return 0; }
    mkdir -p "$work/dovecot/run" "$work/dovecot/state" "$work/dovecot/home/bench/mail"
    cp --reflink=auto "$corpus" "$work/dovecot/home/bench/mail/INBOX"
    mkdir -p "$work/dovecot/home/bench/back"
    chown -R nobody:nogroup "$work/dovecot/home"
    sync
    dovecot_conf "$work/dovecot-mbox.conf" "mbox:~/mail:INBOX=~/mail/INBOX"
    # doveadm asks the running auth service for the user.
    dovecot -c "$work/dovecot-mbox.conf"
    trap 'dovecot -c "$work/dovecot-mbox.conf" stop 2>/dev/null || true' EXIT
    timed dovecot_to_maildir "doveadm sync -1" doveadm -c "$work/dovecot-mbox.conf" \
        sync -1 -u bench "maildir:$work/dovecot/home/bench/Maildir"
    local got
    got=$(count_maildir "$work/dovecot/home/bench/Maildir")
    [ "$got" = "$n" ] || { echo "Dovecot's Maildir holds $got messages, not $n" >&2; exit 1; }
    sync
    dovecot_conf "$work/dovecot-maildir.conf" "maildir:~/Maildir"
    timed dovecot_to_mbox "doveadm sync -1" doveadm -c "$work/dovecot-maildir.conf" \
        sync -1 -u bench "mbox:$work/dovecot/home/bench/back:INBOX=$work/dovecot/home/bench/back/INBOX"
    got=$(count_mbox "$work/dovecot/home/bench/back/INBOX")
    [ "$got" = "$n" ] || { echo "Dovecot's mbox holds $got messages, not $n" >&2; exit 1; }
    dovecot -c "$work/dovecot-mbox.conf" stop
    trap - EXIT
    rm -rf "$work/dovecot"
}

[ "${CONVERT_ONLY:-loft}" = loft ] && run_loft
[ "${CONVERT_ONLY:-dovecot}" = dovecot ] && run_dovecot
echo "figures in $out" >&2
