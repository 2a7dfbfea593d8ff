#!/usr/bin/env python3
"""A Pegasus-style client of Gatehouse's TOTP 2FA (issue 18), as a SPA or script would run it:
register, log in, enrol TOTP, activate, log in again (otp_required), verify-otp with a pyotp
code, refresh the JWT and PATCH the user. Exits non-zero with a message on the first surprise.

Usage: pegasus_2fa.py --url https://127.0.0.1:PORT --cacert CA.pem
"""

import argparse
import sys
import time
import uuid

import pyotp
import requests


def fail(msg, resp=None):
    extra = f": {resp.status_code} {resp.text}" if resp is not None else ""
    print(f"pegasus_2fa: {msg}{extra}", file=sys.stderr)
    sys.exit(1)


def expect(resp, status, what):
    if resp.status_code != status:
        fail(f"{what}: expected {status}", resp)
    return resp.json()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--cacert", required=True)
    args = ap.parse_args()
    s = requests.Session()
    # Trust exactly the server's CA: with trust_env on, REQUESTS_CA_BUNDLE would override it
    # (and proxy variables would route 127.0.0.1 elsewhere).
    s.trust_env = False
    s.verify = args.cacert
    base = args.url.rstrip("/")
    name = "pegasus_" + uuid.uuid4().hex[:12]
    email = f"{name}@example.com"
    password = "pegasus-" + uuid.uuid4().hex

    # dj-rest-auth's registration body; KeyNest's body where the server does not take it yet.
    r = s.post(f"{base}/api/auth/register/",
               json={"email": email, "password1": password, "password2": password})
    if r.status_code != 201:
        r = s.post(f"{base}/api/auth/register/",
                   json={"username": name, "email": email, "password": password,
                         "confirm_password": password})
    expect(r, 201, "register")

    body = expect(s.post(f"{base}/api/auth/login/", json={"email": email, "password": password}),
                  200, "first login")
    if body.get("status") != "success" or "access" not in body.get("jwt", {}):
        fail(f"first login: not a Pegasus success answer: {body}")
    bearer = {"Authorization": "Bearer " + body["jwt"]["access"]}
    # A JWT client: the session cookie the login also set is not ours to send (a cookie-
    # authenticated POST must come from the server's own origin).
    s.cookies.clear()

    enrol = expect(s.post(f"{base}/api/auth/2fa/totp/", headers=bearer), 201, "enrol")
    parsed = pyotp.parse_uri(enrol["otpauth_uri"])
    if parsed.secret != enrol["secret"] or parsed.issuer != "Gatehouse":
        fail(f"otpauth URI does not match the secret: {enrol['otpauth_uri']}")
    totp = pyotp.TOTP(enrol["secret"])

    # Activate with the previous step's code, keeping the current one for the login below
    # (a code is accepted once). Stay clear of a step boundary.
    if time.time() % 30 > 27:
        time.sleep(4)
    act = expect(s.post(f"{base}/api/auth/2fa/totp/activate/", headers=bearer,
                        json={"otp": totp.at(time.time() - 30)}), 200, "activate")
    if len(act.get("recovery_codes", [])) != 10:
        fail(f"activate: expected 10 recovery codes: {act}")

    body = expect(s.post(f"{base}/api/auth/login/", json={"email": email, "password": password}),
                  200, "2FA login")
    if body.get("status") != "otp_required" or "jwt" in body:
        fail(f"2FA login: expected otp_required and no JWT: {body}")
    uuid.UUID(body["temp_otp_token"], version=4)

    r = s.post(f"{base}/api/auth/verify-otp/",
               json={"temp_otp_token": body["temp_otp_token"], "otp": totp.now()})
    pair = expect(r, 200, "verify-otp")
    for field in ("access", "refresh", "user"):
        if field not in pair:
            fail(f"verify-otp: no {field}: {pair}")
    if pair["user"]["email"] != email:
        fail(f"verify-otp: wrong user: {pair['user']}")
    s.cookies.clear()

    refreshed = expect(s.post(f"{base}/api/auth/token/refresh/", json={"refresh": pair["refresh"]}),
                       200, "refresh")
    bearer = {"Authorization": "Bearer " + refreshed["access"]}
    user = expect(s.patch(f"{base}/api/auth/user/", headers=bearer, json={"first_name": "Pega"}),
                  200, "PATCH user")
    if user.get("first_name") != "Pega":
        fail(f"PATCH user: first_name not changed: {user}")
    print("pegasus_2fa: ok")


if __name__ == "__main__":
    main()
