#!/usr/bin/env python3
"""TLS scan of a real server with sslyze (issue 16): fails on any violation of the policy.

Policy: SSL 2/3, TLS 1.0 and 1.1 refused; TLS 1.2 and 1.3 offered; every accepted cipher
suite an AEAD (GCM, CCM or ChaCha20-Poly1305) with forward secrecy; the certificate chain
valid for the server's own CA (`ca.pem` in the data dir, `--certinfo_ca_file`) and naming
the host; no TLS compression, no insecure renegotiation, not vulnerable to Heartbleed or the
OpenSSL CCS injection.

Usage: python3 tests/tls/scan.py   (boots target/debug/gatehouse; GATEHOUSE_BIN overrides)
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "generated"))
from server import Server, fail  # noqa: E402

REFUSED = ["ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites"]
OFFERED = ["tls_1_2_cipher_suites", "tls_1_3_cipher_suites"]
AEAD_MARKERS = ("_GCM_", "_CCM", "CHACHA20_POLY1305")


def problems(scan):
    out = []
    for name, cmd in scan.items():
        if cmd is not None and cmd.get("status") not in ("COMPLETED", "NOT_SCHEDULED"):
            out.append(f"{name} did not complete: {cmd.get('status')} {cmd.get('error_reason')}")

    def result(name):
        cmd = scan.get(name) or {}
        return cmd.get("result") or {}

    for name in REFUSED:
        accepted = result(name).get("accepted_cipher_suites") or []
        if accepted:
            out.append(f"{name}: accepts {[s['cipher_suite']['name'] for s in accepted]}")
    for name in OFFERED:
        accepted = result(name).get("accepted_cipher_suites") or []
        if not accepted:
            out.append(f"{name}: not offered")
        for s in accepted:
            suite = s["cipher_suite"]["name"]
            if not any(m in suite for m in AEAD_MARKERS):
                out.append(f"{name}: {suite} is not an AEAD suite")
            if name == "tls_1_2_cipher_suites" and "_ECDHE_" not in suite:
                out.append(f"{name}: {suite} has no forward secrecy")
    deployments = result("certificate_info").get("certificate_deployments") or []
    if not deployments:
        out.append("certificate_info: no certificate seen")
    for d in deployments:
        supplied = [v for v in d.get("path_validation_results", []) if v["trust_store"]["name"] == "Supplied CA file"]
        if not supplied or not all(v.get("was_validation_successful") for v in supplied):
            out.append(f"certificate chain does not validate against ca.pem: {supplied}")
        # sslyze 6 validates the chain for the SNI name (`localhost`) already; the leaf's SAN
        # is checked here as well so that the report says which name is missing.
        chain = d.get("received_certificate_chain") or [{}]
        san = (chain[0].get("subject_alternative_name") or {})
        if "localhost" not in (san.get("dns_names") or []) or "127.0.0.1" not in (san.get("ip_addresses") or []):
            out.append(f"the leaf certificate does not name localhost and 127.0.0.1: {san}")
    if result("tls_compression").get("supports_compression"):
        out.append("TLS compression is on (CRIME)")
    reneg = result("session_renegotiation")
    if reneg.get("is_vulnerable_to_client_renegotiation_dos") or reneg.get("supports_secure_renegotiation") is False and reneg.get("accepts_client_renegotiation"):
        out.append(f"insecure renegotiation: {reneg}")
    if result("heartbleed").get("is_vulnerable_to_heartbleed"):
        out.append("vulnerable to Heartbleed")
    if result("openssl_ccs_injection").get("is_vulnerable_to_ccs_injection"):
        out.append("vulnerable to the OpenSSL CCS injection")
    return out


def main():
    with Server() as s, tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "sslyze.json")
        target = f"localhost:{s.port}{{127.0.0.1}}"
        cmd = ["sslyze", "--quiet", f"--json_out={report}", "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1",
               "--tlsv1_2", "--tlsv1_3", "--certinfo", f"--certinfo_ca_file={s.ca}", "--compression",
               "--reneg", "--heartbleed", "--openssl_ccs", target]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if not os.path.exists(report):
            fail(f"sslyze wrote no report (exit {p.returncode}): {p.stdout[-2000:]} {p.stderr[-2000:]}")
        doc = json.load(open(report))
    results = doc.get("server_scan_results") or []
    if len(results) != 1 or results[0].get("scan_status") != "COMPLETED":
        fail(f"sslyze could not scan the server: {[(r.get('scan_status'), r.get('connectivity_error_trace')) for r in results]}")
    found = problems(results[0]["scan_result"])
    if found:
        fail("TLS policy violations:\n  " + "\n  ".join(found))
    tls12 = [x["cipher_suite"]["name"] for x in results[0]["scan_result"]["tls_1_2_cipher_suites"]["result"]["accepted_cipher_suites"]]
    tls13 = [x["cipher_suite"]["name"] for x in results[0]["scan_result"]["tls_1_3_cipher_suites"]["result"]["accepted_cipher_suites"]]
    print(f"TLS scan ok: TLS 1.2 {tls12}; TLS 1.3 {tls13}; chain valid for ca.pem")


if __name__ == "__main__":
    main()
