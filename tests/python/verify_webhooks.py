"""Verifies Herald's webhook requests with the Standard Webhooks reference library from
PyPI (`standardwebhooks`), as a receiver written in Python would. Also checks that a
tampered body is refused, so the check cannot pass vacuously."""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

doc = json.load(open(sys.argv[1]))
wh = Webhook(doc["secret"])
requests = doc["requests"]
assert requests, "no requests to verify"
for r in requests:
    payload = wh.verify(r["body"], r["headers"])
    assert payload["specversion"] == "1.0", payload
try:
    wh.verify(requests[0]["body"] + " ", requests[0]["headers"])
except WebhookVerificationError:
    pass
else:
    raise SystemExit("a tampered body was accepted")
print(f"verified {len(requests)} requests with standardwebhooks")
