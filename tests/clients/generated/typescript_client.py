#!/usr/bin/env python3
"""A TypeScript client generated with openapi-generator's typescript-fetch generator (as
Pegasus users make theirs), compiled with tsc and run with node against a real server
(issue 16).

Generates ts/client from `gatehouse openapi`, checks that every operationId became a readable
method name (`projects_create` → `projectsCreate`), installs the pinned TypeScript
(ts/package-lock.json), compiles ts/main.ts with the generated client under `strict`, boots
target/debug/gatehouse and runs it with node (the server's CA trusted through
NODE_EXTRA_CA_CERTS). main.ts records every response; each JSON body is then validated
against its declared schema (schema_check.py).

Usage: python3 tests/clients/generated/typescript_client.py
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from schema_check import SchemaCheck  # noqa: E402
from server import BIN, Server, fail, run  # noqa: E402

TS = os.path.join(HERE, "ts")


def camel(op_id):
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), op_id)


def check_method_names(spec, client):
    """Every operation is a method named after its operationId: nothing renamed or numbered."""
    with open(spec) as f:
        doc = json.load(f)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()
           if isinstance(op, dict) and "operationId" in op]
    source = ""
    apis = os.path.join(client, "apis")
    for name in os.listdir(apis):
        with open(os.path.join(apis, name)) as f:
            source += f.read()
    methods = set(re.findall(r"async (\w+)\(", source))
    missing = [i for i in ids if camel(i) not in methods]
    if missing:
        fail("operations without a readable method: " + ", ".join(f"{i} (no {camel(i)})" for i in missing))
    for must in ("projectsCreate", "variablesPartialUpdate"):
        if must not in methods:
            fail(f"no method {must}")
    print(f"  {len(ids)} operations, each a method named after its operationId")


def path_of(doc, method, url):
    """The document's path template that `url` matches."""
    path = urlsplit(url).path
    for template, item in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "/?$"
        if method in item and re.match(pattern, path):
            return template, item[method]["operationId"]
    fail(f"{method} {url} matches no path of the document")


def main():
    client = os.path.join(TS, "client")
    shutil.rmtree(client, ignore_errors=True)
    shutil.rmtree(os.path.join(TS, "dist"), ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="gatehouse-tsclient-") as tmp:
        spec = os.path.join(tmp, "openapi.json")
        with open(spec, "w") as f:
            subprocess.run([BIN, "openapi"], stdout=f, check=True)
        gen = run(["openapi-generator-cli", "generate", "-i", spec, "-g", "typescript-fetch", "-o", client,
                   "--additional-properties=supportsES6=true"])
        # The one warning expected: the error schema is named `Error`, which the generator
        # renames to `ModelError` in TypeScript (the global Error class keeps its name).
        warnings = {re.sub(r"^.*WARN\s+", "", line) for line in gen.stdout.splitlines() if " WARN " in line}
        warnings.discard("o.o.c.l.AbstractTypeScriptClientCodegen - Error (model name matches existing language type) cannot be used as a model name. Renamed to ModelError")
        if warnings:
            fail("openapi-generator warned:\n" + "\n".join(sorted(warnings)))
        check_method_names(spec, client)
        if not os.path.exists(os.path.join(TS, "node_modules", ".bin", "tsc")):
            run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=TS)
        run([os.path.join(TS, "node_modules", ".bin", "tsc"), "-p", TS])
        responses = os.path.join(tmp, "responses.jsonl")
        with Server() as s:
            env = dict(os.environ, GATEHOUSE_URL=s.url, GATEHOUSE_EMAIL=s.email, GATEHOUSE_PASSWORD=s.password,
                       RESPONSES_FILE=responses, NODE_EXTRA_CA_CERTS=s.ca)
            run(["node", os.path.join(TS, "dist", "main.js")], env=env, timeout=300)
        with open(spec) as f:
            doc = json.load(f)
        check = SchemaCheck(spec)
        with open(responses) as f:
            for line in f:
                r = json.loads(line)
                template, op_id = path_of(doc, r["method"], r["url"])
                check.response(op_id, r["method"], template, r["status"], r["content_type"], r["body"].encode())
        check.finish("typescript")
    print("generated TypeScript client ok")


if __name__ == "__main__":
    main()
