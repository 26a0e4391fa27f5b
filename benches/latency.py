#!/usr/bin/env python3
"""Latencies a user feels, against any IMAP server on HOST:PORT (plain IMAP, LOGIN).

  benches/latency.py HOST PORT USER PASS

* IDLE: one session SELECTs INBOX and IDLEs; another APPENDs a small message every
  0.3 s; the time from sending the APPEND to the `* n EXISTS` in the idling session.
* APPEND from Python's imaplib (synchronizing literal, the literal and the final CRLF in
  two sends, Nagle on, as imapsync and other migration tools write): 30 messages of
  3 KB, one connection.
Prints the median, min and max of each. Used by benches/imaptest.sh for both servers.
"""
import imaplib, socket, sys, time

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def conn():
    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    return s, f


def cmd(s, f, tag, c):
    s.sendall(f"{tag} {c}\r\n".encode())
    while True:
        line = f.readline()
        if not line:
            raise SystemExit(f"connection closed during {c!r}")
        if line.startswith(tag.encode() + b" "):
            return line


def stats(ts):
    ts = sorted(ts)
    return "median %.1f ms, min %.1f, max %.1f" % (ts[len(ts) // 2], ts[0], ts[-1])


def idle_latency():
    a, af = conn()
    cmd(a, af, "a", f"LOGIN {user} {password}")
    cmd(a, af, "b", "SELECT INBOX")
    b, bf = conn()
    cmd(b, bf, "a", f"LOGIN {user} {password}")
    msg = b"Subject: idle probe\r\n\r\nhello\r\n"
    a.sendall(b"i IDLE\r\n")
    af.readline()
    ts = []
    for i in range(10):
        time.sleep(0.3)
        t = time.time()
        b.sendall(b"x%d APPEND INBOX {%d}\r\n" % (i, len(msg)))
        bf.readline()  # "+ " continuation
        b.sendall(msg + b"\r\n")
        while b"EXISTS" not in af.readline():
            pass
        ts.append((time.time() - t) * 1000)
        while not bf.readline().startswith(b"x%d " % i):
            pass
    a.sendall(b"DONE\r\n")
    return ts


def imaplib_append():
    c = imaplib.IMAP4(host, port)
    c.login(user, password)
    msg = b"Subject: append probe\r\n\r\n" + b"x" * 3000 + b"\r\n"
    ts = []
    for _ in range(30):
        t = time.time()
        c.append("INBOX", None, None, msg)
        ts.append((time.time() - t) * 1000)
    c.logout()
    return ts


print("IDLE: APPEND -> EXISTS:", stats(idle_latency()))
print("imaplib APPEND (3 KB):", stats(imaplib_append()))
