#!/usr/bin/env python3
"""CRAM-MD5 and SCRAM-SHA-256 against Loft with Python's standard imaplib.
Usage: sasl_check.py HOST PORT USER PASSWORD SCRAM_USER SCRAM_PASSWORD

CRAM-MD5 is imaplib's own login_cram_md5. SCRAM-SHA-256 is a client written here from
RFC 5802 on hashlib/hmac (independent of Loft's code), run through imaplib.authenticate,
and it verifies the server signature. Exits 1 if a check failed, 0 when all passed.
"""

import base64
import hashlib
import hmac
import imaplib
import os
import sys

FAILURES = []


def check(cond, what, detail=None):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or detail is None else ": %r" % (detail,)))
    if not cond:
        FAILURES.append(what)


def scram(host, port, user, password):
    """Returns (authenticate result or exception text, server signature verified)."""
    state = {"step": 0, "verified": False}
    cnonce = base64.b64encode(os.urandom(18)).decode()
    bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), cnonce)

    def respond(challenge):
        step = state["step"]
        state["step"] += 1
        if step == 0:
            # imaplib answers the server's empty first challenge with our first message.
            return ("n,," + bare).encode()
        if step == 1:
            sf = challenge.decode()
            attrs = dict(a.split("=", 1) for a in sf.split(","))
            if not attrs["r"].startswith(cnonce):
                raise ValueError("server nonce does not extend ours")
            salted = hashlib.pbkdf2_hmac(
                "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
            )
            ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
            sk = hashlib.sha256(ck).digest()
            without = "c=biws,r=" + attrs["r"]
            am = ",".join([bare, sf, without]).encode()
            sig = hmac.new(sk, am, hashlib.sha256).digest()
            proof = bytes(a ^ b for a, b in zip(ck, sig))
            state["expect"] = "v=" + base64.b64encode(
                hmac.new(hmac.new(salted, b"Server Key", hashlib.sha256).digest(), am, hashlib.sha256).digest()
            ).decode()
            return (without + ",p=" + base64.b64encode(proof).decode()).encode()
        state["verified"] = challenge.decode() == state.get("expect")
        return b""

    m = imaplib.IMAP4(host, port)
    try:
        res = m.authenticate("SCRAM-SHA-256", respond)
        if res[0] == "OK":
            m.select("INBOX")
        return res[0], state["verified"]
    except imaplib.IMAP4.error as e:
        return "NO: %s" % e, state["verified"]
    finally:
        try:
            m.logout()
        except Exception:
            pass


def main():
    host, port, user, pw, suser, spw = sys.argv[1:7]
    port = int(port)
    m = imaplib.IMAP4(host, port)
    check("AUTH=CRAM-MD5" in m.capabilities, "CRAM-MD5 advertised", m.capabilities)
    check("AUTH=SCRAM-SHA-256" in m.capabilities, "SCRAM-SHA-256 advertised", m.capabilities)
    try:
        m.login_cram_md5(user, pw + "x")
        check(False, "CRAM-MD5 wrong password refused")
    except imaplib.IMAP4.error:
        check(True, "CRAM-MD5 wrong password refused")
    m.logout()
    m = imaplib.IMAP4(host, port)
    typ, _ = m.login_cram_md5(user, pw)
    check(typ == "OK", "CRAM-MD5 login", typ)
    typ, data = m.select("INBOX")
    check(typ == "OK", "SELECT after CRAM-MD5", data)
    m.logout()

    for who, secret in [(user, pw), (suser, spw)]:
        res, verified = scram(host, port, who, secret)
        check(res == "OK", "SCRAM-SHA-256 login as %s" % who, res)
        check(verified, "server signature verified for %s" % who)
    res, _ = scram(host, port, user, pw + "x")
    check(res != "OK", "SCRAM-SHA-256 wrong password refused", res)
    res, _ = scram(host, port, "nobody", pw)
    check(res != "OK", "SCRAM-SHA-256 unknown user refused", res)

    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("all sasl checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
