#!/usr/bin/env python3
"""Drives Loft with Python's standard imaplib, as a mail script would, and checks every
answer. Usage: imaplib_check.py HOST PORT TLS_PORT CAFILE USER PASSWORD

Prints one line per check; exits 1 if any check failed (and 2 on an unexpected
exception), 0 when all passed. Uses only the standard library.
"""

import datetime
import imaplib
import re
import socket
import ssl
import sys
import time
import traceback

FAILURES = []


def check(cond, what, detail=None):
    if cond:
        print("ok   " + what)
    else:
        FAILURES.append(what)
        print("FAIL " + what + ("" if detail is None else ": %r" % (detail,)))


def ok(result, what):
    """An imaplib (typ, data) pair that must be OK; returns data."""
    typ, data = result
    check(typ == "OK", what, (typ, data))
    return data


def msg(n, subject, body="Body of %d.\r\n", extra=""):
    return (
        "From: Py Sender <py%d@example.org>\r\n"
        "To: Alice <alice@example.com>\r\n"
        "Subject: %s\r\n"
        "Date: Tue, 3 Jan 2006 10:00:00 +0000\r\n"
        "Message-ID: <py-%d@example.org>\r\n"
        "%s"
        "\r\n" % (n, subject, n, extra) + (body % n if "%d" in body else body)
    ).encode("utf-8")


MULTIPART = (
    b"From: Py Sender <mp@example.org>\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: py multipart\r\n"
    b"Message-ID: <py-mp@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="=_py"\r\n'
    b"\r\n"
    b"--=_py\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe\r\n"
    b"--=_py\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"\r\n"
    b"<p>Hi</p>\r\n"
    b"--=_py--\r\n"
)


def fetch_parts(data):
    """imaplib FETCH data -> list of (response-prefix bytes, literal bytes or None)."""
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append((item[0], item[1]))
        elif item not in (b")", None):
            out.append((item, None))
    return out


def plain_session(host, port, user, password):
    m = imaplib.IMAP4(host, port, timeout=20)
    check("IMAP4REV1" in m.capabilities, "greeting capabilities", m.capabilities)

    try:
        m.login(user, "wrong-" + password)
        check(False, "wrong password refused")
    except imaplib.IMAP4.error:
        check(True, "wrong password refused")

    ok(m.login(user, password), "LOGIN")
    caps = ok(m.capability(), "CAPABILITY")[0].decode().upper().split()
    for c in ("UIDPLUS", "MOVE", "NAMESPACE", "IDLE"):
        check(c in caps, "capability " + c, caps)

    # LIST / CREATE / SUBSCRIBE / LSUB / RENAME / DELETE
    listed = ok(m.list(), "LIST")
    names = [l.decode() for l in listed]
    check(any(re.search(r' "?INBOX"?$', n) for n in names), "LIST has INBOX", names)
    delim_m = re.match(r'\([^)]*\) "(.)"', names[0]) if names else None
    delim = delim_m.group(1) if delim_m else "/"
    ok(m.create("Py"), "CREATE Py")
    ok(m.create("Py" + delim + "Child"), "CREATE Py/Child")
    ok(m.subscribe("Py"), "SUBSCRIBE Py")
    lsub = ok(m.lsub(), "LSUB")
    check(any(l.decode().endswith(("Py", '"Py"')) for l in lsub if l), "LSUB shows Py", lsub)
    child = ok(m.list("Py" + delim, "*"), "LIST Py/*")
    check(len(child) == 1 and child[0] is not None and b"Child" in child[0], "LIST Py/* is the child", child)
    ok(m.create("Old"), "CREATE Old")
    ok(m.rename("Old", "Renamed"), "RENAME Old Renamed")
    names = [l.decode() for l in ok(m.list(), "LIST after RENAME")]
    check(any(n.endswith(("Renamed", '"Renamed"')) for n in names), "renamed mailbox listed", names)
    check(not any(n.endswith((" Old", '"Old"')) for n in names), "old name gone", names)
    ok(m.delete("Renamed"), "DELETE Renamed")

    # APPEND with flags and an internal date; UIDPLUS answers APPENDUID (RFC 4315).
    when = datetime.datetime(2020, 2, 29, 13, 14, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    r = ok(m.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(when), msg(1, "py one")), "APPEND 1")
    check(b"APPENDUID" in r[0], "APPENDUID in APPEND 1", r)
    ok(m.append("INBOX", None, None, msg(2, "py two")), "APPEND 2")
    ok(m.append("INBOX", r"(\Seen $Forwarded)", None, MULTIPART), "APPEND multipart with keyword")
    eight = msg(4, "py eight", body="Caf\u00e9 \u2615 %d\r\n",
                extra="MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n")
    ok(m.append("INBOX", None, None, eight), "APPEND 8-bit")

    # SELECT
    count = ok(m.select("INBOX"), "SELECT INBOX")
    check(count == [b"4"], "SELECT reports 4 messages", count)
    typ, uv = m.response("UIDVALIDITY")
    check(uv and uv[0] and uv[0].isdigit(), "UIDVALIDITY response code", uv)

    # SEARCH
    check(ok(m.search(None, "ALL"), "SEARCH ALL") == [b"1 2 3 4"], "SEARCH ALL")
    check(ok(m.search(None, "FLAGGED"), "SEARCH FLAGGED") == [b"1"], "SEARCH FLAGGED")
    check(ok(m.search(None, "SUBJECT", '"py two"'), "SEARCH SUBJECT") == [b"2"], "SEARCH SUBJECT")
    check(ok(m.search(None, "KEYWORD", "$Forwarded"), "SEARCH KEYWORD") == [b"3"], "SEARCH KEYWORD")
    check(ok(m.search(None, "UNSEEN", "NOT", "FLAGGED"), "SEARCH UNSEEN NOT FLAGGED") == [b"2 4"], "SEARCH UNSEEN NOT FLAGGED")
    check(ok(m.search(None, "ON", "29-Feb-2020"), "SEARCH ON") == [b"1"], "SEARCH ON internal date")
    check(ok(m.search(None, "HEADER", "Message-ID", "py-2@"), "SEARCH HEADER") == [b"2"], "SEARCH HEADER")
    check(ok(m.search(None, "TEXT", "Hi"), "SEARCH TEXT") == [b"3"], "SEARCH TEXT")
    # Non-ASCII search strings go as a literal (a quoted string is 7-bit, RFC 3501 section 9).
    m.literal = "Caf\u00e9".encode("utf-8")
    r = ok(m.search("UTF-8", "BODY"), "SEARCH CHARSET UTF-8")
    check(r == [b"4"], "SEARCH CHARSET UTF-8 BODY literal", r)
    check(ok(m.search(None, "OR", "SUBJECT", "one", "SUBJECT", "eight"), "SEARCH OR") == [b"1 4"], "SEARCH OR")
    uids = ok(m.uid("SEARCH", "ALL"), "UID SEARCH ALL")[0].split()
    check(len(uids) == 4 and uids == sorted(uids, key=int), "UID SEARCH ALL ascending", uids)

    # FETCH: BODY.PEEK[HEADER] leaves \Seen alone; RFC822 sets it.
    parts = fetch_parts(ok(m.fetch("2", "(BODY.PEEK[HEADER])"), "FETCH BODY.PEEK[HEADER]"))
    header = msg(2, "py two").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    check(parts and parts[0][1] == header, "BODY.PEEK[HEADER] is the header block", parts)
    flags = ok(m.fetch("2", "(FLAGS)"), "FETCH FLAGS")[0]
    check(b"\\Seen" not in flags, "PEEK did not set \\Seen", flags)
    parts = fetch_parts(ok(m.fetch("2", "(RFC822)"), "FETCH RFC822"))
    check(parts and parts[0][1] == msg(2, "py two"), "RFC822 is the message byte for byte", parts)
    flags = ok(m.fetch("2", "(FLAGS)"), "FETCH FLAGS after RFC822")[0]
    check(b"\\Seen" in flags, "RFC822 set \\Seen (RFC 3501 6.4.5)", flags)
    parts = fetch_parts(ok(m.fetch("4", "(BODY.PEEK[TEXT])"), "FETCH 8-bit TEXT"))
    check(parts and parts[0][1] == "Caf\u00e9 \u2615 4\r\n".encode("utf-8"), "8-bit body intact", parts)
    parts = fetch_parts(ok(m.fetch("3", "(BODY.PEEK[1] BODY.PEEK[2.MIME])"), "FETCH sections"))
    lits = [p[1] for p in parts if p[1] is not None]
    check(lits[:1] == [b"Gr\xc3\xbc\xc3\x9fe"], "BODY[1] of the multipart", lits)
    check(len(lits) > 1 and lits[1].startswith(b"Content-Type: text/html"), "BODY[2.MIME]", lits)
    bs = ok(m.fetch("3", "(BODYSTRUCTURE)"), "FETCH BODYSTRUCTURE")[0].decode()
    bsu = bs.upper()
    check('("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "8BIT" 7 ' in bsu, "BODYSTRUCTURE text part", bs)
    check('("TEXT" "HTML" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 9 ' in bsu, "BODYSTRUCTURE html part", bs)
    check('"ALTERNATIVE" ("BOUNDARY" "=_PY")' in bsu, "BODYSTRUCTURE multipart subtype and boundary", bs)
    one = ok(m.fetch("1", "(INTERNALDATE RFC822.SIZE FLAGS ENVELOPE)"), "FETCH INTERNALDATE ENVELOPE")[0]
    got = imaplib.Internaldate2tuple(one)
    check(got is not None and time.mktime(got) == when.timestamp(), "INTERNALDATE is the APPEND date", one)
    check(b"RFC822.SIZE %d" % len(msg(1, "py one")) in one, "RFC822.SIZE", one)
    check(b'"py one"' in one and b"<py-1@example.org>" in one, "ENVELOPE subject and message-id", one)
    check(b"\\Flagged" in one, "APPEND flags kept", one)
    kw = ok(m.fetch("3", "(FLAGS)"), "FETCH keyword flags")[0]
    check(b"$Forwarded" in kw and b"\\Seen" in kw, "APPEND keyword and \\Seen kept", kw)

    # STORE
    r = ok(m.store("4", "+FLAGS", r"(\Answered $Label1)"), "STORE +FLAGS")
    check(r and b"\\Answered" in r[0] and b"$Label1" in r[0], "STORE answers the new FLAGS", r)
    r = ok(m.store("4", "-FLAGS.SILENT", r"(\Answered)"), "STORE -FLAGS.SILENT")
    check(r == [None], "STORE .SILENT sends no FETCH", r)
    r = ok(m.store("4", "FLAGS", r"(\Draft)"), "STORE FLAGS")
    check(r and b"\\Draft" in r[0] and b"$Label1" not in r[0], "STORE FLAGS replaces", r)
    r = ok(m.uid("STORE", uids[0], "+FLAGS", r"(\Seen)"), "UID STORE")
    check(r and (b"UID " + uids[0]) in r[0], "UID STORE answer carries the UID", r)

    # COPY (COPYUID), MOVE, EXPUNGE
    r = ok(m.copy("1:2", "Py"), "COPY 1:2 Py")
    check(any(b"COPYUID" in (x or b"") for x in r), "COPYUID", r)
    ok(m.uid("MOVE", uids[3], "Py" + delim + "Child"), "UID MOVE to Py/Child")
    r = m.response("EXPUNGE")[1]
    check(r == [b"4"], "MOVE answered EXPUNGE 4 (RFC 6851)", r)
    check(ok(m.search(None, "ALL"), "SEARCH after MOVE") == [b"1 2 3"], "MOVE removed the message", None)
    ok(m.store("2", "+FLAGS.SILENT", r"(\Deleted)"), "STORE \\Deleted")
    r = ok(m.expunge(), "EXPUNGE")
    check(r == [b"2"], "EXPUNGE reports message 2", r)
    check(ok(m.search(None, "ALL"), "SEARCH after EXPUNGE") == [b"1 2"], "two messages left", None)

    # STATUS of other mailboxes
    st = ok(m.status("Py", "(MESSAGES UIDNEXT UNSEEN)"), "STATUS Py")[0]
    check(b"MESSAGES 2" in st and b"UIDNEXT 3" in st, "STATUS Py counts the copies", st)
    st = ok(m.status("Py" + delim + "Child", "(MESSAGES)"), "STATUS Py/Child")[0]
    check(b"MESSAGES 1" in st, "STATUS Py/Child has the moved message", st)
    st = ok(m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"), "STATUS INBOX")[0]
    check(b"MESSAGES 2" in st and b"UIDNEXT 5" in st, "STATUS INBOX", st)
    ok(m.select("Py", readonly=True), "EXAMINE Py")
    parts = fetch_parts(ok(m.fetch("1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "FETCH copies"))
    subjects = sorted(p[1] for p in parts if p[1] is not None)
    check(subjects == [b"Subject: py one\r\n\r\n", b"Subject: py two\r\n\r\n"], "copies intact", subjects)
    try:
        r = m.store("1", "+FLAGS", r"(\Seen)")
        check(r[0] == "NO", "STORE refused in a read-only mailbox", r)
    except imaplib.IMAP4.error as e:
        check(True, "STORE refused in a read-only mailbox")
    ok(m.close(), "CLOSE")
    idle(m, host, port, user, password)
    r = ok(m.namespace(), "NAMESPACE")
    check(r and r[0].startswith(b"(("), "NAMESPACE has a personal namespace", r)
    ok(m.noop(), "NOOP")
    check(m.logout()[0] == "BYE", "LOGOUT says BYE")


def idle(m, host, port, user, password):
    """RFC 2177 IDLE: a message appended by another session shows up as EXISTS."""
    count = int(ok(m.select("INBOX"), "SELECT for IDLE")[0])
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    cont = m.readline()
    check(cont.startswith(b"+"), "IDLE continuation", cont)
    other = imaplib.IMAP4(host, port, timeout=20)
    other.login(user, password)
    ok(other.append("INBOX", None, None, msg(9, "during idle")), "APPEND during IDLE")
    other.logout()
    seen = []
    deadline = time.time() + 10
    while time.time() < deadline:
        line = m.readline()
        seen.append(line)
        if line.strip() == b"* %d EXISTS" % (count + 1):
            break
    check(seen and seen[-1].strip() == b"* %d EXISTS" % (count + 1), "EXISTS while idling", seen)
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if not line or line.startswith(tag):
            break
    check(line.startswith(tag + b" OK"), "IDLE ends with OK after DONE", line)
    ok(m.uid("STORE", "*", "+FLAGS.SILENT", r"(\Deleted)"), "mark the IDLE message")
    ok(m.expunge(), "EXPUNGE the IDLE message")
    ok(m.close(), "CLOSE after IDLE")


def tls_sessions(host, port, tls_port, cafile, user, password):
    ctx = ssl.create_default_context(cafile=cafile)
    # Implicit TLS; the generated certificate names localhost and 127.0.0.1.
    m = imaplib.IMAP4_SSL(host, tls_port, ssl_context=ctx, timeout=20)
    ok(m.login(user, password), "IMAP4_SSL LOGIN")
    count = ok(m.select("INBOX"), "IMAP4_SSL SELECT")
    check(count == [b"2"], "IMAP4_SSL sees the two INBOX messages", count)
    parts = fetch_parts(ok(m.fetch("1", "(RFC822)"), "IMAP4_SSL FETCH"))
    check(parts and parts[0][1] == msg(1, "py one"), "IMAP4_SSL RFC822", parts)
    m.logout()

    m = imaplib.IMAP4_SSL("localhost", tls_port, ssl_context=ctx, timeout=20)
    ok(m.login(user, password), "IMAP4_SSL by host name LOGIN")
    m.logout()

    # An unverified chain must be refused by a default context.
    try:
        imaplib.IMAP4_SSL(host, tls_port, ssl_context=ssl.create_default_context(), timeout=20)
        check(False, "untrusted certificate refused")
    except ssl.SSLError:
        check(True, "untrusted certificate refused")

    # STARTTLS on the plain port.
    m = imaplib.IMAP4(host, port, timeout=20)
    check("STARTTLS" in m.capabilities, "STARTTLS offered", m.capabilities)
    ok(m.starttls(ssl_context=ctx), "STARTTLS")
    check("STARTTLS" not in m.capabilities, "no STARTTLS after TLS", m.capabilities)
    ok(m.login(user, password), "LOGIN after STARTTLS")
    ok(m.select("INBOX", readonly=True), "EXAMINE after STARTTLS")
    m.logout()


def main():
    host, port, tls_port, cafile, user, password = sys.argv[1:7]
    socket.setdefaulttimeout(20)
    try:
        plain_session(host, int(port), user, password)
        tls_sessions(host, int(port), int(tls_port), cafile, user, password)
    except Exception:
        traceback.print_exc()
        print("FAIL unexpected exception")
        return 2
    if FAILURES:
        print("%d check(s) failed: %s" % (len(FAILURES), "; ".join(FAILURES)))
        return 1
    print("all imaplib checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
