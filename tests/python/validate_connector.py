"""Validates Herald's Power Automate connector definition (OpenAPI 2.0) with
`openapi-spec-validator`, and checks the webhook-trigger extensions are where Power Automate
looks for them."""
import json
import sys

from openapi_spec_validator import validate

spec = json.load(open(sys.argv[1]))
validate(spec)
triggers = [op for path in spec["paths"].values() for op in path.values() if op.get("x-ms-trigger") == "single"]
assert len(triggers) >= 2, triggers
for op in triggers:
    body = op["parameters"][0]["schema"]["properties"]
    assert body["notificationUrl"]["x-ms-notification-url"] is True
    assert "schema" in op["x-ms-notification-content"]
print(f"connector valid: {len(triggers)} webhook triggers")
