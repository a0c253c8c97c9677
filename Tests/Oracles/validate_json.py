#!/usr/bin/env python3
"""Validate JSON documents against a JSON Schema with the `jsonschema` package (the oracle of FormatTests).

    validate_json.py SCHEMA DOCUMENT...

SCHEMA is a schema file, or the name of one in the repository's schemas/ folder (`report` = schemas/report.schema.json).
Every schema in schemas/ is registered under its `$id`, so `urn:ezmsi:schema:report` references resolve. The
validator class follows the schema's `$schema` (draft 2020-12 for ours, draft-04 for SARIF 2.1.0), the schema itself
is checked against its metaschema first, and formats are checked where jsonschema can.

Prints `ok DOCUMENT` or `invalid DOCUMENT: <json path>: <message>` (every error) per document; exits 0 when all are
valid, 1 when one is not, 2 on a usage or schema problem.
"""
import json
import os
import sys

import jsonschema
from jsonschema.validators import validator_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = os.path.join(REPO, "schemas")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def own_schemas():
    out = {}
    for name in sorted(os.listdir(SCHEMAS)):
        if name.endswith(".schema.json"):
            schema = load(os.path.join(SCHEMAS, name))
            out[schema["$id"]] = schema
    return out


def make_validator(schema):
    cls = validator_for(schema)
    cls.check_schema(schema)
    store = own_schemas()
    for other in store.values():
        validator_for(other).check_schema(other)
    kwargs = {"format_checker": cls.FORMAT_CHECKER} if hasattr(cls, "FORMAT_CHECKER") else {}
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        registry = Registry().with_resources(
            (uri, Resource.from_contents(s, default_specification=DRAFT202012)) for uri, s in store.items())
        return cls(schema, registry=registry, **kwargs)
    except ImportError:  # older jsonschema (Debian 12's 4.10)
        resolver = jsonschema.RefResolver.from_schema(schema, store=store)
        return cls(schema, resolver=resolver, **kwargs)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    spec = argv[1]
    path = spec if spec.endswith(".json") else os.path.join(SCHEMAS, spec + ".schema.json")
    try:
        validator = make_validator(load(path))
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        print(f"schema problem: {path}: {e}", file=sys.stderr)
        return 2
    bad = 0
    for doc_path in argv[2:]:
        try:
            document = load(doc_path)
        except (OSError, ValueError) as e:
            print(f"invalid {doc_path}: not JSON: {e}")
            bad += 1
            continue
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if not errors:
            print(f"ok {doc_path}")
            continue
        bad += 1
        for e in errors:
            where = "$" + "".join(f"[{p!r}]" for p in e.absolute_path)
            print(f"invalid {doc_path}: {where}: {e.message[:500]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
