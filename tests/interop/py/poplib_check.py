#!/usr/bin/env python3
"""Drives Loft's POP3 with Python's standard poplib and checks every answer.

Usage: poplib_check.py HOST PORT TLS_PORT CERT USER PASS MAILDIR
Exits non-zero (with a message) on the first mismatch; prints
"all poplib checks passed" at the end.
"""
import hashlib
import os
import poplib
import ssl
import sys

host, port, tls_port, cert, user, password, maildir = sys.argv[1:8]
port, tls_port = int(port), int(tls_port)


def check(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def files():
    out = []
    for sub in ("new", "cur"):
        out += os.listdir(os.path.join(maildir, sub))
    return sorted(out)


ctx = ssl.create_default_context(cafile=cert)

# --- plain connection, CAPA, USER/PASS ---
p = poplib.POP3(host, port, timeout=20)
check(p.getwelcome().startswith(b"+OK"), "greeting")
caps = p.capa()
for c in ("TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "SASL", "STLS"):
    check(c in caps, "CAPA has " + c)
check(caps["SASL"] == ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"], "SASL mechanisms")
try:
    p.user(user)
    p.pass_("wrong")
    check(False, "wrong password refused")
except poplib.error_proto as e:
    check(str(e).startswith("b'-ERR [AUTH]"), "wrong password gives [AUTH]: %s" % e)
p.user(user)
p.pass_(password)
count, size = p.stat()
check(count == 12, "STAT count %d" % count)
resp, listing, octets = p.list()
sizes = [int(l.split()[1]) for l in listing]
check(len(listing) == 12 and sum(sizes) == size, "LIST matches STAT")
resp, uidls, _ = p.uidl()
uids = [l.split()[1] for l in uidls]
check(len(set(uids)) == 12 and all(len(u) == 16 for u in uids), "UIDL unique, Dovecot format")
check(p.uidl(3).split()[2] == uids[2], "UIDL 3")
for n in (1, 4, 12):
    resp, lines, octets = p.retr(n)
    data = b"\r\n".join(lines) + b"\r\n"
    check(len(data) == sizes[n - 1], "RETR %d size %d == LIST size %d" % (n, len(data), sizes[n - 1]))
    check(b"Message-ID: <interop-%d@example.org>" % n in data, "RETR %d content" % n)
resp, lines, octets = p.top(4, 0)
check(lines[-1] == b"" and not any(l.startswith(b"Hello") for l in lines), "TOP 4 0 is the header")
resp, lines, octets = p.top(4, 1)
check(lines[-1].startswith(b"Hello 4"), "TOP 4 1 has the first body line")
p.dele(1)
p.dele(2)
try:
    p.retr(1)
    check(False, "RETR of a deleted message refused")
except poplib.error_proto:
    check(True, "RETR of a deleted message refused")
check(p.stat()[0] == 10, "STAT after DELE")
p.rset()
check(p.stat()[0] == 12, "RSET restores")
p.dele(12)
p.noop()
before = files()
check(len(before) == 12, "nothing deleted before QUIT")
p.quit()
check(len(files()) == 11, "QUIT deletes message 12")

# --- second session: [IN-USE] while the first holds the maildrop ---
a = poplib.POP3(host, port, timeout=20)
a.user(user)
a.pass_(password)
b = poplib.POP3(host, port, timeout=20)
b.user(user)
try:
    b.pass_(password)
    check(False, "second session refused")
except poplib.error_proto as e:
    check("[IN-USE]" in str(e), "second session gets [IN-USE]: %s" % e)
b.quit()
a.dele(1)
a.close()  # dropped without QUIT: nothing is deleted
import time
for _ in range(100):
    try:
        c = poplib.POP3(host, port, timeout=20)
        c.user(user)
        c.pass_(password)
        break
    except poplib.error_proto:
        time.sleep(0.05)
check(c.stat()[0] == 11, "dropped connection deleted nothing")
c.quit()

# --- STLS ---
s = poplib.POP3(host, port, timeout=20)
s.stls(context=ctx)
caps = s.capa()
check("STLS" not in caps, "no STLS inside TLS")
s.user(user)
s.pass_(password)
check(s.stat()[0] == 11, "STAT over STLS")
s.quit()

# --- POP3S, APOP, AUTH via poplib's low-level commands ---
t = poplib.POP3_SSL(host, tls_port, context=ctx, timeout=20)
welcome = t.getwelcome()
stamp = welcome[welcome.index(b"<"):]
t.apop(user, password)
check(t.stat()[0] == 11, "APOP over POP3S")
resp, lines, octets = t.retr(1)
check(len(lines) > 5, "RETR over POP3S")
t.quit()
digest_check = hashlib.md5(stamp + password.encode()).hexdigest()
check(len(digest_check) == 32, "APOP digest computed")

u = poplib.POP3_SSL(host, tls_port, context=ctx, timeout=20)
import base64
resp = u._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode())
check(resp.startswith(b"+OK"), "AUTH PLAIN with initial response")
check(u.stat()[0] == 11, "STAT after AUTH")
u.quit()

print("all poplib checks passed")
