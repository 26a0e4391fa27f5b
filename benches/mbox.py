#!/usr/bin/env python3
"""Issue 12's mbox benchmark: one 100,000-message mbox file, Loft and Dovecot side by side.

  benches/mbox.py corpus                 # makes target/bench-mbox-100000/INBOX if missing
  benches/mbox.py run ENGINE PORT PID MBOX RESTART_CMD
                                         # the steps below against one running server
  benches/mbox.py deliver MBOX N         # the external writer (run by `run` itself)
  benches/mbox.py table                  # both engines' results side by side
  benches/mbox.py count MBOX             # messages, \\Flagged, \\Seen found in a file

Normally started by benches/mbox.sh, which starts each server on its own copy of the file.

The corpus is the load benchmark's Maildir (target/bench-corpus-100000/Maildir/cur, made by
`cargo bench --bench load`) written as Postfix local(8) writes an mbox: a `From sender
asctime-date` line (the sender from Return-Path, the date the file's mtime = the message's
date), Return-Path, X-Original-To and Delivered-To first, every line starting with `From `
quoted as `>From `, LF line ends, a blank line after each message, no Content-Length,
X-UID or Status. To stay near the issue's 1.5 GB with all 100,000 messages, the base64
attachment of the 5 % multipart messages keeps its first fifth of lines (whole lines,
still valid base64); text is untouched. Maildir flags are not carried over (a spool
holds new mail). The file is written under a temporary name and renamed.

`run`, in order, timing each step's wall time and the server's CPU time (utime + stime of
PID and every process below it, with the time of children that ended: Dovecot's master,
login, auth and imap processes; Loft's one process):

  first open       LOGIN + SELECT INBOX, the file fresh, no index
  logout           its LOGOUT (a lazy writer may write here)
  warm open        a new connection, LOGIN + SELECT
  open restarted   LOGOUT, the server restarted (RESTART_CMD prints its new PID), LOGIN + SELECT
  fetch 1, 2       UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE), twice
  fetch 3          LOGOUT, LOGIN, SELECT (not timed), the same FETCH once more
  search           UID SEARCH FROM "zephyrine" (~1 %), UID SEARCH BODY "xylophonist" (~0.1 %)
  store 1 %        UID STORE of every 100th message +FLAGS (\\Flagged); CLOSE; the time from
                   the STORE to the flags being in the file; SELECT again
  store all        UID STORE 1:* +FLAGS (\\Seen); the same
  expunge 1 %      UID STORE of every 100th message (from the 51st) +FLAGS.SILENT (\\Deleted),
                   EXPUNGE; the time to the messages being gone from the file
  delivery         a second session SELECTs and IDLEs; an external process appends 1,000
                   messages, each under a dotlock (INBOX.lock, link(2) as procmail makes it)
                   and an fcntl write lock, fsynced as Postfix does; the time from the last
                   append, and from the first, to the IDLE session's EXISTS counting all
                   of them; then a NOOP in the first session.

"In the file" is watched from outside: the file's (inode, size, mtime) polled every
20 ms; each state stable for 0.1 s is read (the Status/X-Status fields counted) and the
time reported is when that state was first seen (a file already right when the command
returned counts as written by then). Checked on the way: EXISTS 100,000, the FETCH
count, SEARCH counts against the corpus's, 1,000 EXPUNGEs, EXISTS 100,000 after
delivery. Results: target/bench-mbox-ENGINE.tsv; `table` writes
target/bench-mbox-results.tsv. MBOX_BENCH_MESSAGES=N (a smoke test of the scripts): a
corpus of the first N messages only, target/bench-mbox-N/, results target/bench-mbox-N-*.
"""
import fcntl, os, re, socket, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target")
MAILDIR = os.path.join(TARGET, "bench-corpus-100000", "Maildir", "cur")
# MBOX_BENCH_MESSAGES=N (a smoke test): the first N messages only, in target/bench-mbox-N.
LIMIT = int(os.environ.get("MBOX_BENCH_MESSAGES", "100000"))
CORPUS = os.path.join(TARGET, f"bench-mbox-{LIMIT}")
RESULTS = "bench-mbox" if LIMIT == 100000 else f"bench-mbox-{LIMIT}"  # + -ENGINE.tsv, -results.tsv
RARE_SENDER, RARE_WORD = "zephyrine", "xylophonist"
DELIVER = 1000
TICK = os.sysconf("SC_CLK_TCK")

# (key, what, goal: Loft / Dovecot at most this; None: not compared)
STEPS = [
    ("first_open", "first open: LOGIN + SELECT, no index", 0.5),
    ("logout_first", "LOGOUT after it", 1.0),
    ("warm_open", "warm open: new connection, LOGIN + SELECT", 1.0),
    ("restart_open", "warm open after a server restart (median of 3)", 1.0),
    ("fetch_1", "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE), first", 1.0),
    ("fetch_2", "the same, second (warm ENVELOPE)", 0.1),
    ("fetch_3", "the same in the next session (LOGOUT, LOGIN, SELECT)", 1.0),
    ("search_from", 'UID SEARCH FROM "zephyrine" (~1 %)', 1.0),
    ("search_body", 'UID SEARCH BODY "xylophonist" (~0.1 %)', 1.0),
    ("store_1pct", "UID STORE +FLAGS (\\Flagged), 1 % spread", 1.0),
    ("close_1pct", "CLOSE after it", 1.0),
    ("flagged_in_file", "STORE 1 % sent -> \\Flagged in the file", 1.0),
    ("reselect_1pct", "SELECT after it", 1.0),
    ("store_all", "UID STORE 1:* +FLAGS (\\Seen)", 1.0),
    ("close_all", "CLOSE after it", 1.0),
    ("seen_in_file", "STORE all sent -> \\Seen in the file", 1.0),
    ("reselect_all", "SELECT after it", 1.0),
    ("store_deleted", "UID STORE +FLAGS.SILENT (\\Deleted), 1 % spread", 1.0),
    ("expunge", "EXPUNGE of them", 0.5),
    ("expunged_in_file", "EXPUNGE sent -> gone from the file", 1.0),
    ("deliver_writer", "writer: 1,000 locked appends (not the server's time)", None),
    ("deliver_lag", "last append -> IDLE session's EXISTS has all 1,000", 1.0),
    ("deliver_total", "first append -> IDLE session's EXISTS has all 1,000", 1.0),
    ("noop_after", "NOOP in the other (selected, not idle) session after it", 1.0),
]


# ---------------------------------------------------------------- corpus

def asctime(t):
    return time.asctime(time.localtime(t))  # C's asctime: "Mon Dec  7 16:49:14 2026"


QUOTE = re.compile(rb"^From ", re.M)
FROM_HDR = re.compile(rb"^From:(.*)$", re.M | re.I)
B64 = b"Content-Transfer-Encoding: base64\n\n"


def postfix_message(msg, mtime):
    """One Maildir message as Postfix local(8) appends it to an mbox (with the attachment cut)."""
    trimmed = 0
    i = msg.find(B64)
    if i >= 0:
        start = i + len(B64)
        end = msg.find(b"\n--", start)
        lines = [l for l in msg[start:end].split(b"\n") if l]
        keep = b"\n".join(lines[: max(1, (len(lines) + 4) // 5)]) + b"\n"
        trimmed = 1
        msg = msg[:start] + keep + msg[end:]
    if not msg.endswith(b"\n"):
        msg += b"\n"
    head, _, body = msg.partition(b"\n\n")
    sender = b"MAILER-DAEMON"
    m = re.match(rb"Return-Path: <([^>]*)>", msg)
    if m and m.group(1):
        sender = m.group(1)
    else:
        f = FROM_HDR.search(head)
        a = f and re.search(rb"<([^>]+)>", f.group(1))
        if a:
            sender = a.group(1)
    # Postfix: Return-Path, X-Original-To, Delivered-To, then the message. The corpus's
    # messages already start with the Return-Path an earlier delivery put there.
    extra = b"X-Original-To: alice@example.com\nDelivered-To: alice@example.com\n"
    if msg.startswith(b"Return-Path:"):
        nl = msg.index(b"\n") + 1
        msg = msg[:nl] + extra + msg[nl:]
    else:
        msg = b"Return-Path: <" + sender + b">\n" + extra + msg
    quoted = len(QUOTE.findall(msg))
    msg = QUOTE.sub(b">From ", msg)
    out = b"From " + sender + b"  " + asctime(mtime).encode() + b"\n" + msg + b"\n"
    hits_from = 1 if (f := FROM_HDR.search(head)) and RARE_SENDER.encode() in f.group(1).lower() else 0
    hits_body = 1 if RARE_WORD.encode() in body.lower() else 0
    return out, trimmed, quoted, hits_from, hits_body


def corpus():
    path = os.path.join(CORPUS, "INBOX")
    if os.path.exists(path) and os.path.exists(os.path.join(CORPUS, "manifest.txt")):
        return path
    if not os.path.isdir(MAILDIR):
        sys.exit(f"no {MAILDIR}: make the load benchmark's corpus (cargo bench --bench load)")
    os.makedirs(CORPUS, exist_ok=True)
    names = os.listdir(MAILDIR)
    # Delivery order: the Maildir names start with the date, then M<i>.
    names.sort(key=lambda n: (int(n.split(".")[0]), int(n.split(".")[1][1:].split("P")[0])))
    names = names[:LIMIT]
    tmp = f"{path}.tmp.{os.getpid()}"
    n = size = trimmed = quoted = hf = hb = 0
    t0 = time.time()
    with open(tmp, "wb", buffering=1 << 22) as out:
        for name in names:
            p = os.path.join(MAILDIR, name)
            with open(p, "rb") as f:
                msg = f.read()
            data, t, q, a, b = postfix_message(msg, int(os.stat(p).st_mtime))
            out.write(data)
            n += 1; size += len(data); trimmed += t; quoted += q; hf += a; hb += b
            if n % 10000 == 0:
                print(f"  mbox corpus: {n} messages, {size / 1e9:.2f} GB, {time.time() - t0:.0f} s",
                      file=sys.stderr, flush=True)
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, path)
    with open(os.path.join(CORPUS, "manifest.txt"), "w") as f:
        f.write(f"messages {n}\nbytes {size}\nfrom_matches {hf}\nbody_matches {hb}\n"
                f"attachments_cut {trimmed}\nquoted_from_lines {quoted}\nsource {MAILDIR}\n")
    return path


def manifest():
    with open(os.path.join(CORPUS, "manifest.txt")) as f:
        return {k: v for k, v in (l.split(None, 1) for l in f.read().splitlines())}


# ---------------------------------------------------------------- the file, from outside

FLAGGED = re.compile(rb"\nX-Status: [A-Z]*F")
SEEN = re.compile(rb"\nStatus: R")
FROM_LINE = re.compile(rb"\nFrom ")


def count(path, pat):
    """Matches of pat (which starts with \\n) in the file, read in 16 MB pieces."""
    n, tail = 0, b"\n"  # the file's first line counts as after a line end
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 24)
            data = tail + chunk
            if not chunk:
                return n + len(pat.findall(data))
            cut = data.rfind(b"\n")
            if cut <= 0:
                tail = data
                continue
            n += len(pat.findall(data, 0, cut))
            tail = data[cut:]


def sig(path):
    try:
        st = os.stat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        return None


def when_in_file(path, pat, want, t_sent, t_back, limit=300):
    """Seconds from t_sent to the file holding `want` matches of pat (see the module doc)."""
    seen, since = sig(path), t_back
    checked = None
    while time.time() - t_back < limit:
        s = sig(path)
        now = time.time()
        if s != seen:
            seen, since = s, now
        elif s != checked and (now - since >= 0.1 or since == t_back):
            checked = s
            if s is not None and count(path, pat) >= want and sig(path) == s:
                return since - t_sent
        time.sleep(0.02)
    return None


def file_change(before, after):
    if before == after:
        return "file unchanged"
    if after is None or before is None:
        return "file gone" if after is None else "file appeared"
    if before[0] != after[0]:
        return f"file replaced (new inode), {after[1] - before[1]:+d} bytes"
    return f"file written in place, {after[1] - before[1]:+d} bytes"


# ---------------------------------------------------------------- CPU of a process tree

def tree_cpu(root):
    """utime+stime+cutime+cstime (s) of root and everything below it."""
    kids, ticks = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(d))
        ticks[int(d)] = sum(int(x) for x in f[11:15])
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo.extend(kids.get(p, []))
    return total / TICK


# ---------------------------------------------------------------- IMAP

class Imap:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=1800)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.n = 0
        self.readline()

    def readline(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(1 << 16)
            if not d:
                raise SystemExit("connection closed")
            self.buf += d
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def send(self, c):
        self.n += 1
        tag = b"m%d" % self.n
        self.s.sendall(tag + b" " + c.encode() + b"\r\n")
        return tag

    def wait(self, tag, what):
        """The untagged data before the tagged reply (bytes), read in large pieces."""
        marker = b"\r\n" + tag + b" "
        data = bytearray(b"\r\n" + self.buf)
        pos, at = -1, 0
        while True:
            if pos < 0:
                pos = data.find(marker, at)
                at = max(0, len(data) - len(marker))
            if pos >= 0:
                end = data.find(b"\r\n", pos + 2)
                if end >= 0:
                    status = bytes(data[pos + 2:end])
                    self.buf = bytes(data[end + 2:])
                    if not status.startswith(tag + b" OK"):
                        raise SystemExit(f"{what}: {status[:300]!r}")
                    return bytes(data[2:pos + 2])
            d = self.s.recv(1 << 20)
            if not d:
                raise SystemExit(f"connection closed during {what}")
            data += d

    def cmd(self, c):
        return self.wait(self.send(c), c[:60])

    def close(self):
        try:
            self.cmd("LOGOUT")
        except (SystemExit, OSError):
            pass
        self.s.close()


def exists(resp):
    e = re.findall(rb"\* (\d+) EXISTS", resp)
    return int(e[-1]) if e else None


def uid_set(uids):
    return ",".join(str(u) for u in uids)


# ---------------------------------------------------------------- the run

class Run:
    def __init__(self, engine, port, pid, mbox, restart):
        self.engine, self.port, self.pid, self.mbox, self.restart = engine, port, pid, mbox, restart
        self.rows = {}
        self.notes = []

    def step(self, key, fn, note=""):
        before = sig(self.mbox)
        c0, t0 = tree_cpu(self.pid), time.time()
        out = fn()
        wall, cpu = time.time() - t0, tree_cpu(self.pid) - c0
        change = file_change(before, sig(self.mbox))
        self.put(key, wall, cpu, "; ".join(x for x in (note, change) if x))
        return out

    def put(self, key, wall, cpu, note):
        self.rows[key] = (wall, cpu, note)
        w = "-" if wall is None else f"{wall:8.3f} s"
        c = "" if cpu is None else f"  cpu {cpu:7.2f} s"
        print(f"  {key:18} {w}{c}  {note}", flush=True)

    def check(self, ok, what):
        if not ok:
            self.notes.append(what)
            print(f"  CHECK FAILED: {what}", flush=True)

    def open(self):
        c = Imap(self.port)
        c.cmd("LOGIN bench bench")
        return c, exists(c.cmd("SELECT INBOX"))

    def restart_open(self, times=3):
        # A few milliseconds, measured once, moved by half from run to run on this
        # machine (for both servers): the median of `times` restarts, each on the files
        # as the one before left them.
        runs = []
        for k in range(times):
            out = subprocess.run(self.restart, shell=True, check=True, capture_output=True, text=True)
            self.pid = int(out.stdout.split()[-1])
            c0, t0 = tree_cpu(self.pid), time.time()
            s, e = self.open()
            runs.append((time.time() - t0, tree_cpu(self.pid) - c0))
            if k + 1 < times:
                s.close()
        wall = sorted(w for w, _ in runs)[times // 2]
        cpu = sorted(c for _, c in runs)[times // 2]
        self.put("restart_open", wall, cpu,
                 f"median of {times} restarts: " + ", ".join(f"{w:.3f}" for w, _ in runs))
        return s, e

    def go(self):
        man = manifest()
        n = int(man["messages"])
        print(f"{self.engine}: {n} messages, {int(man['bytes']) / 1e9:.2f} GB, port {self.port}", flush=True)

        s, e = self.step("first_open", self.open)
        self.check(e == n, f"first SELECT: EXISTS {e}, want {n}")
        self.step("logout_first", s.close)
        s, e = self.step("warm_open", self.open)
        self.check(e == n, f"warm SELECT: EXISTS {e}, want {n}")
        s.close()
        s, e = self.restart_open()
        self.check(e == n, f"SELECT after restart: EXISTS {e}, want {n}")

        fetch = "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"
        r = self.step("fetch_1", lambda: s.cmd(fetch))
        uids = [int(u) for u in re.findall(rb"\* \d+ FETCH \([^\r\n]*?UID (\d+)", r)]
        self.check(len(uids) == n, f"FETCH 1: {len(uids)} messages, want {n}")
        r = self.step("fetch_2", lambda: s.cmd(fetch))
        self.check(len(re.findall(rb"\* \d+ FETCH ", r)) == n, "FETCH 2: not every message")
        # Dovecot caches a field for good once a later session asks for it again.
        s.close()
        s, e = self.open()
        r = self.step("fetch_3", lambda: s.cmd(fetch))
        self.check(len(re.findall(rb"\* \d+ FETCH ", r)) == n, "FETCH 3: not every message")
        del r

        for key, crit, want in (("search_from", f'FROM "{RARE_SENDER}"', man["from_matches"]),
                                ("search_body", f'BODY "{RARE_WORD}"', man["body_matches"])):
            r = self.step(key, lambda: s.cmd(f"UID SEARCH {crit}"))
            hits = len(re.search(rb"\* SEARCH([^\r]*)", r).group(1).split())
            self.rows[key] = self.rows[key][:2] + (f"{hits} hits; " + self.rows[key][2],)
            self.check(hits == int(want), f"SEARCH {crit}: {hits} hits, the corpus has {want}")

        def store_close(key, tag, store, pat, want, what):
            t_sent = time.time()
            r = self.step(f"store_{tag}", lambda: s.cmd(store))
            self.check(len(re.findall(rb"\* \d+ FETCH ", r)) == want, f"{what}: {want} FETCH replies")
            self.step(f"close_{tag}", lambda: s.cmd("CLOSE"))
            t_back = time.time()
            d = when_in_file(self.mbox, pat, want, t_sent, t_back)
            self.put(key, d, None, "" if d is not None else f"not in the file {300} s after CLOSE")
            self.check(d is not None, f"{what} not in the file")
            e = self.step(f"reselect_{tag}", lambda: exists(s.cmd("SELECT INBOX")))
            self.check(e == n, f"SELECT after {what}: EXISTS {e}")

        flagged = uids[0::100]
        store_close("flagged_in_file", "1pct", f"UID STORE {uid_set(flagged)} +FLAGS (\\Flagged)",
                    FLAGGED, len(flagged), "\\Flagged on 1 %")
        store_close("seen_in_file", "all", "UID STORE 1:* +FLAGS (\\Seen)", SEEN, n, "\\Seen on all")

        gone = uids[50::100]
        self.step("store_deleted", lambda: s.cmd(f"UID STORE {uid_set(gone)} +FLAGS.SILENT (\\Deleted)"))
        t_sent = time.time()
        r = self.step("expunge", lambda: s.cmd("EXPUNGE"))
        t_back = time.time()
        self.check(len(re.findall(rb"\* \d+ EXPUNGE", r)) == len(gone), f"EXPUNGE: {len(gone)} replies")
        left = n - len(gone)
        # Messages in the file: From_ lines (the first one has no line end before it).
        d = when_in_file(self.mbox, FROM_LINE, left, t_sent, t_back)
        if d is not None and count(self.mbox, FROM_LINE) != left:
            d = None
        self.put("expunged_in_file", d, None, "" if d is not None else "file still has them")

        # Delivery while another session IDLEs.
        idle, e = self.open()
        self.check(e == left, f"IDLE session's SELECT: EXISTS {e}, want {left}")
        tag = idle.send("IDLE")
        while not idle.readline().startswith(b"+"):
            pass
        want = left + DELIVER
        seen = {"at": None, "max": e}

        def watch():
            while seen["max"] < want:
                m = re.match(rb"\* (\d+) EXISTS", idle.readline())
                if m:
                    seen["max"] = max(seen["max"], int(m.group(1)))
            seen["at"] = time.time()

        c0 = tree_cpu(self.pid)
        th = threading.Thread(target=watch, daemon=True)
        th.start()
        w = subprocess.run([sys.executable, os.path.abspath(__file__), "deliver", self.mbox, str(DELIVER)],
                           check=True, capture_output=True, text=True)
        t_first, t_last = (float(x) for x in w.stdout.split())
        th.join(600)
        cpu = tree_cpu(self.pid) - c0
        self.put("deliver_writer", t_last - t_first, None, w.stderr.strip())
        if seen["at"] is None:
            self.check(False, f"IDLE: EXISTS {seen['max']} 600 s after the delivery, want {want}")
            self.put("deliver_lag", None, None, f"EXISTS reached {seen['max']} only")
        else:
            self.put("deliver_lag", seen["at"] - t_last, None, "")
            self.put("deliver_total", seen["at"] - t_first, cpu, "server CPU over the whole delivery")
            idle.s.sendall(b"DONE\r\n")
            idle.wait(tag, "IDLE")
        idle.close()
        r = self.step("noop_after", lambda: s.cmd("NOOP"))
        e = exists(r)
        self.check(e == want, f"NOOP after the delivery: EXISTS {e}, want {want}")
        s.close()
        self.write(man)

    def write(self, man):
        path = os.path.join(TARGET, f"{RESULTS}-{self.engine}.tsv")
        with open(path, "w") as f:
            f.write(f"# {self.engine} {time.strftime('%Y-%m-%d %H:%M:%S')} corpus {man['messages']} "
                    f"messages {man['bytes']} bytes; failed checks: {len(self.notes)}\n")
            f.write("step\twall_s\tcpu_s\tnote\n")
            for key, _, _ in STEPS:
                if key in self.rows:
                    w, c, note = self.rows[key]
                    f.write(f"{key}\t{'' if w is None else f'{w:.3f}'}\t{'' if c is None else f'{c:.2f}'}\t{note}\n")
            for x in self.notes:
                f.write(f"# check failed: {x}\n")
        print(f"{self.engine}: results in {path}" + (f"; {len(self.notes)} checks FAILED" if self.notes else
                                                     "; all checks passed"), flush=True)


# ---------------------------------------------------------------- the external writer

def deliver(mbox, n):
    """n messages appended as procmail does: dotlock (link), fcntl lock, append, fsync."""
    lock = mbox + ".lock"
    d = os.path.dirname(mbox)
    waits = 0
    words = ("the of and to in a is that for it as was with be by on not he this are or his "
             "at which but have from they you were her all she there would their we him been "
             "has when who will more no if out so said what up its about into than them can").split()
    t_first = time.time()
    for i in range(n):
        now = time.time()
        body = "\n".join(" ".join(words[(i * 7 + k * 13 + j) % len(words)] for j in range(12))
                         for k in range(100))
        msg = (f"From deliver{i}@example.org  {asctime(now)}\n"
               f"Return-Path: <deliver{i}@example.org>\n"
               "X-Original-To: alice@example.com\nDelivered-To: alice@example.com\n"
               f"From: Delivery {i} <deliver{i}@example.org>\nTo: Alice Bench <alice@example.com>\n"
               f"Subject: delivery {i} while IDLE\n"
               f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(now))}\n"
               f"Message-ID: <deliver.{i}.{int(now)}@example.org>\n\n{body}\n\n").encode()
        tmp = os.path.join(d, f"_{os.getpid()}.{i}.lock.tmp")
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        sleep = 0.005
        while True:
            try:
                os.link(tmp, lock)
                break
            except FileExistsError:
                waits += 1
                time.sleep(sleep)
                sleep = min(sleep * 2, 0.2)
        os.unlink(tmp)
        fd = os.open(mbox, os.O_WRONLY | os.O_APPEND)
        fcntl.lockf(fd, fcntl.LOCK_EX)  # F_SETLKW
        os.write(fd, msg)
        os.fsync(fd)
        os.close(fd)  # drops the fcntl lock
        os.unlink(lock)
    print(t_first, time.time())
    print(f"{waits} waits for the dotlock", file=sys.stderr)


# ---------------------------------------------------------------- the table

def load(engine):
    path = os.path.join(TARGET, f"{RESULTS}-{engine}.tsv")
    rows, head = {}, ""
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.startswith("#"):
                    head = head or line[2:].strip()
                    continue
                p = line.rstrip("\n").split("\t")
                if p[0] != "step":
                    rows[p[0]] = p[1:]
    return rows, head


def table():
    loft, lh = load("loft")
    dove, dh = load("dovecot")
    out = ["step\twhat\tloft_s\tdovecot_s\tratio\tgoal\tloft_cpu_s\tdovecot_cpu_s"]
    for key, what, goal in STEPS:
        l = loft.get(key, ["", "", ""])
        d = dove.get(key, ["", "", ""])
        ratio = ""
        if l[0] and d[0] and float(d[0]) > 0:
            ratio = f"{float(l[0]) / float(d[0]):.2f}"
        g = "" if goal is None else f"<= {goal:g}"
        out.append("\t".join([key, what, l[0] or "pending", d[0] or "pending", ratio, g, l[1], d[1]]))
    path = os.path.join(TARGET, f"{RESULTS}-results.tsv")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"loft:    {lh or 'no results'}\ndovecot: {dh or 'no results'}")
    rows = [r.split("\t") for r in out]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)))
    print(f"written to {path}")


def main():
    a = sys.argv[1:]
    if a[:1] == ["corpus"]:
        print(corpus())
    elif a[:1] == ["run"] and len(a) == 6:
        Run(a[1], int(a[2]), int(a[3]), a[4], a[5]).go()
    elif a[:1] == ["deliver"] and len(a) == 3:
        deliver(a[1], int(a[2]))
    elif a[:1] == ["table"]:
        table()
    elif a[:1] == ["count"] and len(a) == 2:
        print(f"messages {count(a[1], FROM_LINE)}, \\Flagged {count(a[1], FLAGGED)}, "
              f"\\Seen {count(a[1], SEEN)}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
