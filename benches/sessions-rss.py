#!/usr/bin/env python3
"""Server memory with N clients of one user working on the same big folder at once
(a desktop client, a phone and a webmail on one INBOX), against any IMAP server.

  benches/sessions-rss.py HOST PORT USER PASS PID [N ...]

For each N (default 1 2 4), N sessions each LOGIN, SELECT INBOX and
`UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)` one after the other and
stay logged in; two seconds later the resident memory of the server is read: the sums of
VmRSS and of Pss (shared pages counted once) over PID and every process below it (Loft:
its one process; Dovecot: its master and children, the `imap` processes also apart). Then all log out and the next N starts.
Prints one line per N. Used with benches/session-rss.sh's Loft and benches/dovecot.sh.
"""
import os, socket, sys, time

host, port, user, password, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
counts = [int(n) for n in sys.argv[6:]] or [1, 2, 4]


def kb(p, file, field):
    try:
        with open(f"/proc/{p}/{file}") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(p):
    return kb(p, "status", "VmRSS:")


def pss_kb(p):
    """Shared pages (libraries, a mapped index file) counted once over all processes."""
    return kb(p, "smaps_rollup", "Pss:")


def tree(root):
    """(pid, comm) of root and every process below it."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1 : st.rindex(")")]
        ppid = int(st[st.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append((int(d), comm))
    out, todo = [], [(root, "")]
    while todo:
        p, c = todo.pop()
        out.append((p, c))
        todo.extend(kids.get(p, []))
    return out


class Session:
    def __init__(self):
        self.s = socket.create_connection((host, port), timeout=600)
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.n = 0

    def run(self, c):
        self.n += 1
        tag = f"t{self.n}"
        self.s.sendall(f"{tag} {c}\r\n".encode())
        while True:
            line = self.f.readline()
            if not line:
                raise SystemExit(f"connection closed during {c!r}")
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise SystemExit(f"{c!r}: {line!r}")
                return


for n in counts:
    sessions = []
    for _ in range(n):
        s = Session()
        s.run(f'LOGIN "{user}" "{password}"')
        s.run("SELECT INBOX")
        s.run("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")
        sessions.append(s)
    time.sleep(2)
    procs = tree(pid)
    total = sum(rss_kb(p) for p, _ in procs)
    pss = sum(pss_kb(p) for p, _ in procs)
    imap = [(rss_kb(p), pss_kb(p)) for p, c in procs if c == "imap"]
    extra = ""
    if imap:
        extra = ", of which %d imap processes RSS %.1f MB, PSS %.1f MB" % (
            len(imap), sum(r for r, _ in imap) / 1024, sum(q for _, q in imap) / 1024)
    print(f"{n} sessions logged in: server RSS {total / 1024:.1f} MB, PSS {pss / 1024:.1f} MB{extra}",
          flush=True)
    for s in sessions:
        try:
            s.run("LOGOUT")
        except SystemExit:
            pass
        s.s.close()
    time.sleep(1)
