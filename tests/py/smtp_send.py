#!/usr/bin/env python3
"""Sends one message with smtplib, step by step, and prints every reply as JSON.

usage: smtp_send.py HOST PORT MAIL_FROM RCPT[,RCPT...] BODY_FILE [SOURCE_IP]
PEAGE_HELO names the client in EHLO (client.example otherwise); PEAGE_STARTTLS=1 starts TLS;
PEAGE_LOGIN=user and PEAGE_PASSWORD=secret log in (AUTH) before MAIL FROM;
PEAGE_IMPLICIT_TLS=1 speaks TLS from the first byte (port 465). Over TLS, "peer_cert_sha256"
is the SHA-256 of the certificate the server presented.
Prints {"ehlo": [code, text], "mail": [...], "rcpt": [[...], ...], "data": [...]}; a step
that did not happen is absent. Never raises on an SMTP refusal: the test reads the codes.
"""
import hashlib
import json
import os
import smtplib
import ssl
import sys


def main():
    host, port, mail_from, rcpts, body_file = sys.argv[1:6]
    source = (sys.argv[6], 0) if len(sys.argv) > 6 else None
    body = open(body_file, "rb").read()
    out = {}
    if os.environ.get("PEAGE_IMPLICIT_TLS"):
        s = smtplib.SMTP_SSL(host, int(port), source_address=source, timeout=60,
                             context=ssl._create_unverified_context())
    else:
        s = smtplib.SMTP(host, int(port), source_address=source, timeout=60)
    try:
        helo = os.environ.get("PEAGE_HELO", "client.example")
        out["ehlo"] = list(s.ehlo(helo))
        if os.environ.get("PEAGE_STARTTLS"):
            # The test certificate is self-signed: encryption is what is tested here.
            out["starttls"] = list(s.starttls(context=ssl._create_unverified_context()))
            out["ehlo"] = list(s.ehlo(helo))
            out["cipher"] = s.sock.cipher()[0]
        if isinstance(s.sock, ssl.SSLSocket):
            der = s.sock.getpeercert(binary_form=True)
            out["peer_cert_sha256"] = hashlib.sha256(der).hexdigest()
        if os.environ.get("PEAGE_LOGIN"):
            try:
                out["auth"] = list(s.login(os.environ["PEAGE_LOGIN"], os.environ["PEAGE_PASSWORD"]))
            except smtplib.SMTPAuthenticationError as e:
                out["auth"] = [e.smtp_code, e.smtp_error]
            except smtplib.SMTPNotSupportedError as e:
                out["auth"] = [0, str(e)]
        out["mail"] = list(s.mail(mail_from))
        out["rcpt"] = [list(s.rcpt(r)) for r in rcpts.split(",")]
        if any(code == 250 for code, _ in out["rcpt"]):
            out["data"] = list(s.data(body))
        s.quit()
    except smtplib.SMTPServerDisconnected as e:
        out["disconnected"] = str(e)
    for k, v in list(out.items()):
        if isinstance(v, list) and len(v) == 2 and isinstance(v[1], bytes):
            out[k] = [v[0], v[1].decode("utf-8", "replace")]
    out["rcpt"] = [[c, t.decode("utf-8", "replace")] for c, t in out.get("rcpt", [])]
    print(json.dumps(out))


main()
