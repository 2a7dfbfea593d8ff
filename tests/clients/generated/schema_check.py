"""Checks what the server sends against the schema a generated client was built from.

Generated clients trust the document: a field declared `string` that arrives as null is a
runtime surprise in TypeScript and a wrong type hint in Python. Each JSON response body is
validated (OpenAPI 3.0 rules: `nullable`, `required`) against the response schema of its
operation and status, and every disagreement is reported with the operation and field path.

`known-schema-gaps.txt` lists the disagreements known and being fixed in the schema (one
`operation status field` a line, list items as `*`): those are reported but do not fail the
check; any other fails it, and a listed one that no longer occurs is named so the list can
shrink.
"""

import json
import os
import re

from openapi_schema_validator import OAS30Validator

from server import fail


class SchemaCheck:
    def __init__(self, spec_path):
        with open(spec_path) as f:
            self.spec = json.load(f)
        self.problems = {}
        self.checked = 0
        known = os.path.join(os.path.dirname(os.path.abspath(__file__)), "known-schema-gaps.txt")
        with open(known) as f:
            self.known = {line.strip() for line in f if line.strip() and not line.startswith("#")}

    def _resolve(self, schema, depth=0):
        """The schema with every `$ref` inlined (the document's schemas are not recursive)."""
        if depth > 40:
            return {}
        if isinstance(schema, dict):
            if "$ref" in schema:
                name = schema["$ref"].rsplit("/", 1)[-1]
                return self._resolve(self.spec["components"]["schemas"][name], depth + 1)
            return {k: self._resolve(v, depth + 1) for k, v in schema.items()}
        if isinstance(schema, list):
            return [self._resolve(v, depth + 1) for v in schema]
        return schema

    def response(self, op_id, method, path, status, content_type, body):
        op = self.spec["paths"][path][method]
        if op.get("operationId") != op_id:
            fail(f"{method} {path} is {op.get('operationId')}, not {op_id}")
        if "json" not in content_type:
            return
        declared = op["responses"].get(str(status), {}).get("content", {})
        media = next((v for k, v in declared.items() if "json" in k), None)
        if media is None:
            self.problems[f"{op_id} {status} (body)"] = "JSON the document does not declare"
            return
        schema = self._resolve(media.get("schema", {}))
        data = json.loads(body)
        for err in OAS30Validator(schema).iter_errors(data):
            where = "/".join(str(p) for p in err.absolute_path) or "(body)"
            where = re.sub(r"/[0-9]+(?=/|$)", "/*", where)
            self.problems.setdefault(f"{op_id} {status} {where}", err.message[:200])
        self.checked += 1

    def finish(self, client):
        new = {k: v for k, v in self.problems.items() if k not in self.known}
        known = sorted(k for k in self.problems if k in self.known)
        if known:
            print(f"  {client}: {len(known)} known schema gaps (known-schema-gaps.txt): " + "; ".join(known))
        if new:
            fail(f"{client} client: the server's responses disagree with the document:\n  "
                 + "\n  ".join(f"{k}: {v}" for k, v in sorted(new.items())))
        stale = sorted(self.known - set(self.problems))
        if stale:
            print(f"  {client}: fixed, remove from known-schema-gaps.txt: " + "; ".join(stale))
        print(f"  {client}: {self.checked} JSON responses checked against their declared schemas")
