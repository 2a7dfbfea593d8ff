#!/usr/bin/env python3
"""Seeding and probing helpers for bench/run, over the public API only (stdlib, no pip).

Every command prints shell assignments (NAME=value) on stdout for `eval`, or a number.
A route that answers 404 prints nothing for the values it would have given, so the caller can
mark the scenario "not available" instead of failing.
"""

import contextlib
import http.client
import io
import json
import os
import ssl
import sys
import time
import urllib.parse
import uuid

BASE = os.environ.get("BENCH_URL", "https://127.0.0.1:8443").rstrip("/")
CA = os.environ.get("BENCH_CA", "")
TOKEN = os.environ.get("BENCH_TOKEN", "")
ADMIN_EMAIL = os.environ.get("GATEHOUSE_ADMIN_EMAIL", "")
ADMIN_PASSWORD = os.environ.get("GATEHOUSE_ADMIN_PASSWORD", "")


class Unavailable(Exception):
    """The route answered 404: the capability is not there (yet)."""


def connection():
    u = urllib.parse.urlsplit(BASE)
    if u.scheme == "https":
        if CA:
            ctx = ssl.create_default_context(cafile=CA)
        else:
            # --against a server whose CA we don't have: load testing only, no secrets at stake.
            ctx = ssl._create_unverified_context()
        return http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=120)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120)


_CONN = None


def call(method, path, body=None, token=None, headers=None, raw=None, ok=(200, 201, 204)):
    """One request on a kept-alive connection; returns (status, parsed JSON or text)."""
    global _CONN
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = token if " " in token else f"Token {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    for attempt in range(2):
        if _CONN is None:
            _CONN = connection()
        try:
            _CONN.request(method, urllib.parse.urlsplit(BASE).path + path, body=data, headers=hdrs)
            resp = _CONN.getresponse()
            text = resp.read().decode("utf-8", "replace")
            break
        except (http.client.HTTPException, OSError):
            _CONN = None
            if attempt:
                raise
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    if resp.status == 404 and ok and 404 not in ok:
        raise Unavailable(f"{method} {path} → 404")
    if ok and resp.status not in ok:
        raise SystemExit(f"bench: {method} {path} → {resp.status}: {text[:300]}")
    return resp.status, parsed


def login():
    """The staff account's login token (TOKEN), and a JWT access token if login gives one."""
    if TOKEN:
        return {"token": TOKEN}
    _, body = call("POST", "/api/auth/login/", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    return body


def emit(**values):
    for k, v in values.items():
        print(f"{k}={v if v is not None else ''}")


def cmd_auth():
    """TOKEN, JWT (Bearer access token), APIKEY; empty where the route is missing."""
    body = login()
    token = body["token"]
    jwt = body.get("access") or ""
    if not jwt:
        try:
            _, t = call("POST", "/api/auth/token/", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            jwt = t.get("access", "")
        except (Unavailable, SystemExit):
            jwt = ""
    apikey = ""
    try:
        _, k = call("POST", "/api/api-keys/", {"name": f"bench-{uuid.uuid4().hex[:8]}", "key_type": "service"}, token=token)
        apikey = k.get("key", "")
    except (Unavailable, SystemExit):
        apikey = ""
    emit(TOKEN=token, JWT=jwt, APIKEY=apikey)


def env_file(n, tag="V", vary=False):
    """n KEY=value lines; with vary, every value carries wrk's {t}-{n} so each request changes
    all of them (a re-import of unchanged values writes nothing)."""
    lines = [f"# bench: {n} variables"]
    stamp = "-{t}-{n}" if vary else ""
    for i in range(n):
        lines.append(f"BENCH_{tag}_{i:05d}=value-{i}-abcdefghijklmnopqrstuvwxyz012345{stamp}")
    return "\n".join(lines) + "\n"


def multipart(text):
    boundary = "----gatehousebench" + uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.env\"\r\n"
        f"Content-Type: text/plain\r\n\r\n{text}\r\n--{boundary}--\r\n"
    ).encode()
    return boundary, body


def new_environment(token):
    name = f"bench-{uuid.uuid4().hex[:8]}"
    _, project = call("POST", "/api/projects/", {"name": name, "description": "bench"}, token=token)
    _, env = call(
        "POST",
        "/api/environments/",
        {"name": "bench", "project": project["id"], "environment_type": "development"},
        token=token,
    )
    return env["id"]


def cmd_env(n):
    """ENV_ID of a new environment holding n variables (import if available, else POSTs)."""
    token = login()["token"]
    env_id = new_environment(token)
    if n:
        try:
            boundary, raw = multipart(env_file(n))
            call(
                "POST",
                f"/api/environments/{env_id}/import/",
                token=token,
                raw=raw,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
        except Unavailable:
            for i in range(n):
                call("POST", "/api/variables/", {"key": f"BENCH_V_{i:05d}", "value": f"value-{i}-abcdefghijklmnopqrstuvwxyz012345", "environment": env_id}, token=token)
    emit(ENV_ID=env_id)


def cmd_multipart_file(n, path):
    """Writes a multipart body with an n-line .env file whose values change per request (a
    wrk body template); prints its boundary."""
    boundary, raw = multipart(env_file(n, "I", vary=True))
    with open(path, "wb") as f:
        f.write(raw)
    emit(BOUNDARY=boundary)


SERVICES = [f"bench.Service{i}" for i in range(8)]
METHODS = ["Get", "List", "Create", "Update", "Delete", "Watch"]


def log_item(i, now, span):
    ok = i % 10 != 0
    return {
        "service_name": SERVICES[i % len(SERVICES)],
        "method_name": METHODS[(i // 8) % len(METHODS)],
        "status": "success" if ok else "error",
        "duration_ms": (i * 7919) % 250,
        "grpc_status_code": "OK" if ok else "INTERNAL",
        "error_message": "" if ok else f"backend failure {i % 97}",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - (i * span) // max(1, TOTAL[0]))),
        "request_id": f"bench-{i:08d}",
        "client_ip": f"10.0.{(i >> 8) & 255}.{i & 255}",
    }


TOTAL = [1]


def cmd_logs(n, batch=1000):
    """Ingests n request-log records spread over the last 23 hours; prints LOGS_SEEDED."""
    token = login()["token"]
    TOTAL[0] = n
    now = int(time.time())
    started = time.monotonic()
    done = 0
    while done < n:
        items = [log_item(i, now, 23 * 3600) for i in range(done, min(n, done + batch))]
        _, r = call("POST", "/api/grpc/monitor/requests/", {"requests": items}, token=token)
        done += len(items)
        if r.get("rejected"):
            raise SystemExit(f"bench: ingest rejected items: {json.dumps(r.get('errors'))[:300]}")
        if done % 100_000 == 0:
            print(f"bench: seeded {done} records ({done / (time.monotonic() - started):.0f}/s)", file=sys.stderr)
    emit(LOGS_SEEDED=done, LOGS_SEED_SECONDS=f"{time.monotonic() - started:.1f}")


def cmd_ingest_body(n, path):
    TOTAL[0] = n
    now = int(time.time())
    with open(path, "w") as f:
        json.dump({"requests": [log_item(i, now, 60) for i in range(n)]}, f)


def cmd_wait_count(n, timeout):
    """Waits until the request list counts at least n records; prints WAITED seconds."""
    token = login()["token"]
    started = time.monotonic()
    while True:
        try:
            _, r = call("GET", "/api/grpc/monitor/requests/?page_size=1&hours=720", token=token, ok=(200,))
            count = r.get("count", 0) if isinstance(r, dict) else 0
        except SystemExit:
            count = 0
        if count >= n or time.monotonic() - started > timeout:
            break
        time.sleep(0.2)
    emit(WAITED=f"{time.monotonic() - started:.2f}", COUNTED=count)


def cmd_probe(method, path, auth, body_file, ctype):
    """One request as the scenario would send it; prints its status (and the body on stderr)."""
    raw = open(body_file, "rb").read() if body_file else None
    headers = {"Content-Type": ctype} if ctype else {}
    try:
        status, body = call(method, path, token=auth or None, raw=raw, headers=headers, ok=())
    except OSError as e:
        print(f"bench: probe failed: {e}", file=sys.stderr)
        print(0)
        return
    if status >= 300:
        print(f"bench: probe {method} {path} → {status}: {str(body)[:300]}", file=sys.stderr)
    print(status)


def cmd_deploy():
    """An API deployment for the deploy-* scenarios: a project and environment in the staff
    account's first organization holding TOKEN, a json workflow reading it and input.name, and
    a deployment of it (rate limit out of the way); prints ORG_ID, WORKFLOW_ID and DEPLOY_KEY."""
    body = login()
    token = body["token"]
    orgs = body.get("organizations") or []
    if orgs:
        org_id = orgs[0]["id"]
    else:
        _, org = call("POST", "/api/organizations/", {"name": f"bench-org-{uuid.uuid4().hex[:8]}"}, token=token)
        org_id = org["id"]
    name = f"bench-{uuid.uuid4().hex[:8]}"
    _, project = call("POST", "/api/projects/", {"name": name, "description": "bench", "organization": org_id}, token=token)
    _, env = call(
        "POST",
        "/api/environments/",
        {"name": "bench", "project": project["id"], "environment_type": "production"},
        token=token,
    )
    call("POST", "/api/variables/", {"key": "TOKEN", "value": "bench-secret-token-0123456789", "environment": env["id"]}, token=token)
    template = '{"greeting": "hello {{ input.name }}", "token": "{{ env.TOKEN }}"}'
    _, wf = call(
        "POST",
        f"/unstract/{org_id}/api/v2/workflow/",
        {"workflow_name": "bench", "template": template, "environment": env["id"], "output_format": "json"},
        token=token,
    )
    _, dep = call(
        "POST",
        f"/unstract/{org_id}/api/v2/api-deployment/",
        {"api_name": name, "workflow": wf["id"], "rate_limit_per_minute": 1000000},
        token=token,
    )
    emit(ORG_ID=org_id, WORKFLOW_ID=wf["id"], DEPLOY_KEY=dep["api_key"])


def cmd_orgs(n):
    """Creates n organizations, each with one project (so each has series of its own)."""
    token = login()["token"]
    for i in range(n):
        _, org = call("POST", "/api/organizations/", {"name": f"bench-org-{uuid.uuid4().hex[:8]}-{i}"}, token=token)
        call("POST", "/api/projects/", {"name": f"bench-{i}", "organization": org["id"]}, token=token)
    emit(ORGS=n)


def session_cookie():
    """A console session: the API login's Set-Cookie, as a Cookie header value."""
    global _CONN
    conn = connection()
    body = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
    conn.request("POST", "/api/auth/login/", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    for value in resp.headers.get_all("Set-Cookie") or []:
        if value.startswith("gatehouse_session="):
            return value.split(";", 1)[0]
    raise SystemExit("bench: the login set no session cookie")


def cmd_console_page(n, rounds=50):
    """The console's variables page of an environment holding n variables: its weight (HTML,
    the stylesheet and the script) and the time to its last byte over a kept-alive connection
    (median and p95 of `rounds`), as PAGE_HTML, PAGE_CSS, PAGE_JS (bytes), PAGE_P50_US and
    PAGE_P95_US."""
    token = login()["token"]
    env_id = new_environment(token)
    boundary, raw = multipart(env_file(n))
    call("POST", f"/api/environments/{env_id}/import/", token=token, raw=raw,
         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    cookie = {"Cookie": session_cookie()}
    path = f"/admin/environments/{env_id}/"
    times = []
    html = ""
    for _ in range(rounds):
        t0 = time.perf_counter()
        status, html = call("GET", path, headers=cookie, ok=(200,))
        times.append(time.perf_counter() - t0)
    if html.count("BENCH_V_") < n:
        raise SystemExit(f"bench: {path} does not list the {n} variables")
    _, css = call("GET", "/admin/static/console.css", ok=(200,))
    _, js = call("GET", "/admin/static/console.js", ok=(200,))
    times.sort()
    emit(PAGE_HTML=len(html.encode()), PAGE_CSS=len(css.encode()), PAGE_JS=len(js.encode()),
         PAGE_P50_US=int(times[len(times) // 2] * 1e6),
         PAGE_P95_US=int(times[min(len(times) - 1, int(len(times) * 0.95))] * 1e6))


def cmd_soak_plan(path):
    """The soak's request mix (bench/soak), written to path as tab-separated lines of method,
    path, Authorization, Content-Type and body ({t}: wrk thread, {n}: per-thread counter); a
    line appears as often as its share of the mix. Seeds what the mix reads and writes: an
    environment of 20 variables, an API key, an API deployment; the ingest batch holds
    SOAK_INGEST_BATCH records."""
    body = login()
    token = body["token"]
    _, k = call("POST", "/api/api-keys/", {"name": f"soak-{uuid.uuid4().hex[:8]}", "key_type": "service"}, token=token)
    apikey = k["key"]
    env_id = new_environment(token)
    var_ids = []
    for i in range(20):
        _, v = call("POST", "/api/variables/", {"key": f"SOAK_V_{i:02d}", "value": f"soak-value-{i}-0123456789abcdef", "environment": env_id}, token=token)
        var_ids.append(v["id"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cmd_deploy()
    deploy_key = dict(line.split("=", 1) for line in out.getvalue().split())["DEPLOY_KEY"]
    batch = int(os.environ.get("SOAK_INGEST_BATCH", "20"))
    TOTAL[0] = batch
    ingest = json.dumps({"requests": [log_item(i, int(time.time()), 60) for i in range(batch)]})
    tok, key, bearer, js = f"Token {token}", f"Api-Key {apikey}", f"Bearer {deploy_key}", "application/json"
    mix = [
        (6, "GET", f"/api/variables/?environment={env_id}", tok, "", ""),
        (3, "GET", "/api/auth/profile/", tok, "", ""),
        (1, "GET", "/api/auth/profile/", key, "", ""),
        (1, "GET", "/api/projects/", tok, "", ""),
        (1, "GET", f"/api/environments/{env_id}/export/", tok, "", ""),
        (1, "GET", "/api/audit-logs/?page_size=20", tok, "", ""),
        (1, "GET", "/api/grpc/monitor/requests/?page_size=20&hours=1", tok, "", ""),
        (1, "GET", "/api/grpc/monitor/overview/?hours=1", tok, "", ""),
        (1, "POST", "/api/grpc/monitor/requests/", tok, js, ingest),
        (1, "POST", f"/deployment/{deploy_key}/", bearer, js, '{"input_data": {"name": "soak-{t}-{n}"}, "timeout": 30}'),
    ]
    with open(path, "w") as f:
        for weight, method, p, auth, ctype, b in mix:
            for _ in range(weight):
                f.write("\t".join((method, p, auth, ctype, b)) + "\n")
        # Writes: each variable in turn gets a new value (a new version in its history).
        for vid in var_ids[:3]:
            f.write("\t".join(("PATCH", f"/api/variables/{vid}/", tok, js, '{"value": "soak-{t}-{n}"}')) + "\n")
    emit(SOAK_LINES=sum(m[0] for m in mix) + 3)


def main(argv):
    cmd, args = argv[1], argv[2:]
    try:
        if cmd == "auth":
            cmd_auth()
        elif cmd == "env":
            cmd_env(int(args[0]))
        elif cmd == "multipart":
            cmd_multipart_file(int(args[0]), args[1])
        elif cmd == "logs":
            cmd_logs(int(args[0]))
        elif cmd == "ingest-body":
            cmd_ingest_body(int(args[0]), args[1])
        elif cmd == "wait-count":
            cmd_wait_count(int(args[0]), float(args[1]))
        elif cmd == "deploy":
            cmd_deploy()
        elif cmd == "orgs":
            cmd_orgs(int(args[0]))
        elif cmd == "console-page":
            cmd_console_page(int(args[0]))
        elif cmd == "soak-plan":
            cmd_soak_plan(args[0])
        elif cmd == "probe":
            cmd_probe(args[0], args[1], args[2], args[3], args[4])
        else:
            raise SystemExit(f"bench/api.py: unknown command {cmd}")
    except Unavailable as e:
        print(f"bench: not available: {e}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main(sys.argv)
