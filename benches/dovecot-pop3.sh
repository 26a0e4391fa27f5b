#!/usr/bin/env bash
# Starts Debian's Dovecot as a POP3-only server on loopback, for benches/pop3.rs.
# Usage: dovecot-pop3.sh start DIR PORT MAILDIR USER PASS   (prints nothing; waits until it listens)
#        dovecot-pop3.sh stop DIR
# Everything (config, sockets, state, log) lives under DIR; the system's Dovecot config
# is not read. Mail is accessed as the invoking user; when that is root (Dovecot refuses
# UID 0 for mail) the Maildir is handed to `nobody` and accessed as that user.
set -euo pipefail
cmd=$1
dir=$2
case "$cmd" in
start)
  port=$3 maildir=$4 user=$5 pass=$6
  mkdir -p "$dir/run" "$dir/state" "$dir/home"
  uid=$(id -u) gid=$(id -g)
  if [ "$uid" = 0 ]; then
    uid=$(id -u nobody) gid=$(id -g nobody)
    chown -R "$uid:$gid" "$maildir" "$dir/home"
  fi
  printf '%s:{PLAIN}%s:%s:%s::%s\n' "$user" "$pass" "$uid" "$gid" "$dir/home" > "$dir/passwd"
  cat > "$dir/dovecot.conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$maildir
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = $dir/passwd
}
userdb {
  driver = passwd-file
  args = $dir/passwd
}
service pop3-login {
  inet_listener pop3 {
    port = $port
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  chroot =
}
CONF
  /usr/sbin/dovecot -c "$dir/dovecot.conf"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then exit 0; fi
    sleep 0.1
  done
  echo "dovecot did not start; log:" >&2
  cat "$dir/dovecot.log" >&2 || true
  exit 1
  ;;
stop)
  /usr/sbin/dovecot -c "$dir/dovecot.conf" stop 2>/dev/null || true
  ;;
esac
