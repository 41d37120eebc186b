"""Checks a Herald event schema with the `jsonschema` package: it must be a valid draft
2020-12 schema, accept every "valid" payload and refuse every "invalid" one."""
import json
import sys

from jsonschema import Draft202012Validator, FormatChecker

doc = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(doc["schema"])
validator = Draft202012Validator(doc["schema"], format_checker=FormatChecker())
for payload in doc["valid"]:
    errors = list(validator.iter_errors(payload))
    assert not errors, f"valid payload refused: {errors}"
for payload in doc["invalid"]:
    assert list(validator.iter_errors(payload)), f"invalid payload accepted: {payload}"
print(f"schema ok: {len(doc['valid'])} valid, {len(doc['invalid'])} invalid payloads judged as Herald does")
