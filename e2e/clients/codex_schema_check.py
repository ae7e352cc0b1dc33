"""Validate a JSON-RPC session transcript against codex's own generated JSON schema.

Usage: codex_schema_check.py SCHEMA_DIR TRANSCRIPT.jsonl
SCHEMA_DIR is what `codex app-server generate-json-schema --experimental --out DIR` wrote; each
transcript line is {"kind": "request"|"response"|"notification", "method": ..., "message": ...}.
Requests are checked as (`bad_request` lines, malformed on purpose, are not) `<Method>Params`, results as `<Method>Response`, errors as JSONRPCError,
notifications as `<Method>Notification` (the v2 per-type files; `initialize` from the bundle).
Strict: any schema violation (a missing required field, a wrong type, an unknown enum value) is an
error. Fields the schema does not name are reported as extra, not errors. Methods codex's schema
does not have (voxgate's own extensions) are listed as such. Prints one JSON summary line; exits 1
on any violation.
"""
import json
import os
import sys

import jsonschema


def type_name(method):
    return "".join(part[:1].upper() + part[1:] for part in method.split("/"))


def load(schema_dir, name):
    for sub in ("v2", "v1", "."):
        path = os.path.join(schema_dir, sub, name + ".json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    return None


def resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part, {})
        schema = node
    return schema


def extras(instance, schema, root, path, out):
    """Fields of `instance` that `schema` (and its branches) does not name."""
    schema = resolve(schema, root)
    if not isinstance(schema, dict):
        return
    if isinstance(instance, dict):
        branches = [resolve(b, root) for b in schema.get("oneOf", []) + schema.get("anyOf", []) + schema.get("allOf", [])]
        known = set(schema.get("properties", {}))
        for b in branches:
            if isinstance(b, dict):
                known |= set(b.get("properties", {}))
        if not known and schema.get("additionalProperties", True) is not False and not schema.get("properties"):
            return  # a free-form object (`item: true`)
        for key, value in instance.items():
            if key not in known:
                out.append(f"{path}.{key}")
                continue
            sub = schema.get("properties", {}).get(key)
            if sub is None:
                for b in branches:
                    if isinstance(b, dict) and key in b.get("properties", {}):
                        sub = b["properties"][key]
                        break
            if sub is not None:
                extras(value, sub, root, f"{path}.{key}", out)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(instance):
            extras(v, schema["items"], root, f"{path}[{i}]", out)


def main():
    schema_dir, transcript = sys.argv[1], sys.argv[2]
    bundle_path = os.path.join(schema_dir, "codex_app_server_protocol.schemas.json")
    bundle = json.load(open(bundle_path)) if os.path.exists(bundle_path) else {}
    errors, extra, not_in_codex, checked = [], [], set(), 0
    for line in open(transcript):
        entry = json.loads(line)
        kind, method, msg = entry["kind"], entry["method"], entry["message"]
        if kind == "bad_request":
            continue  # malformed on purpose; its error response is checked
        if kind == "request":
            name, instance = type_name(method) + "Params", msg.get("params", {})
        elif kind == "notification":
            name, instance = type_name(method) + "Notification", msg.get("params", {})
        elif "error" in msg:
            name, instance = "JSONRPCError", msg
        else:
            name, instance = type_name(method) + "Response", msg.get("result")
        schema = load(schema_dir, name)
        if schema is None and name in bundle.get("definitions", {}):
            schema = dict(bundle["definitions"][name], definitions=bundle["definitions"])
        if schema is None:
            not_in_codex.add(f"{kind} {method}")
            continue
        checked += 1
        for err in jsonschema.Draft7Validator(schema).iter_errors(instance):
            errors.append(f"{kind} {method}: {'/'.join(map(str, err.absolute_path))}: {err.message}"[:400])
        found = []
        extras(instance, schema, schema, kind + " " + method, found)
        extra.extend(found)
    summary = {"checked": checked, "errors": errors, "extra_fields": sorted(set(extra)),
               "not_in_codex_schema": sorted(not_in_codex)}
    print(json.dumps(summary))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
