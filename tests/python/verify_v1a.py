"""Verifies Herald's `v1a` webhook signatures (Standard Webhooks, ed25519) with PyPI's
`cryptography` — an ed25519 implementation nobody on this team wrote — using only the public
key Herald publishes, fetched without credentials as a receiver would. Also checks that a
tampered body and another key are refused, so the check cannot pass vacuously; and, when a
`whsec_` secret is given, that the `v1` signatures of the same requests verify with
`standardwebhooks`."""
import base64
import json
import sys
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

doc = json.load(open(sys.argv[1]))
with urllib.request.urlopen(doc["public_keys_url"]) as answer:
    published = json.load(answer)
keys = [
    Ed25519PublicKey.from_public_bytes(base64.b64decode(k["public_key"].removeprefix("whpk_")))
    for k in published["keys"]
]
assert keys, f"no public key published: {published}"


def verified(request, keys):
    h = request["headers"]
    content = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + request["body"].encode()
    for item in h["webhook-signature"].split(" "):
        version, _, sig = item.partition(",")
        if version != "v1a":
            continue
        for key in keys:
            try:
                key.verify(base64.b64decode(sig), content)
                return True
            except InvalidSignature:
                pass
    return False


requests = doc["requests"]
assert requests, "no requests to verify"
for r in requests:
    assert verified(r, keys), f"v1a signature not verified: {r['headers']}"
tampered = dict(requests[0], body=requests[0]["body"] + " ")
assert not verified(tampered, keys), "a tampered body was accepted"
stranger = Ed25519PrivateKey.generate().public_key()
assert not verified(requests[0], [stranger]), "another key was accepted"
print(f"verified {len(requests)} v1a requests with cryptography, {len(keys)} published key(s)")

if doc.get("secret"):
    from standardwebhooks.webhooks import Webhook

    wh = Webhook(doc["secret"])
    for r in requests:
        wh.verify(r["body"], r["headers"])
    print(f"verified {len(requests)} v1 requests with standardwebhooks")
