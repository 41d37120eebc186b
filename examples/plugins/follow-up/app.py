"""follow-up — an asynchronous plug-in (Python) that emits a follow-up event.

After a `contoso_CustomerPurchase` is stored, it emits `contoso_VendorPaymentPosted` with
{"VendorId": <CustomerId>, "Amount": <Total>} through `host.emit` (Herald validates it against
the catalog, stores it, and tracks the depth of the chain) and answers {}. If Herald refuses
the event, the refusal is this attempt's error, and Herald retries the plug-in later.

Registration: an asynchronous plug-in on `contoso_CustomerPurchase`, module
`target/plugins/follow-up.wasm`, no configuration.
Built by scripts/build-plugins.sh with componentize-py (world `plugin` of wit/plugin.wit).
"""
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host


def run(doc: dict) -> str:
    if doc.get("kind") != "async":
        raise Err(f"follow-up is an asynchronous plug-in, not {doc.get('kind')}")
    event = doc.get("event") or {}
    params = event.get("params") or {}
    follow_up = {"VendorId": params.get("CustomerId"), "Amount": params.get("Total")}
    try:
        new_id = host.emit("contoso_VendorPaymentPosted", json.dumps(follow_up))
    except Err as refused:
        raise Err(f"emit failed: {refused.value}")
    host.log(host.Level.INFO, f"{event.get('id')}: emitted contoso_VendorPaymentPosted {new_id}")
    return "{}"


class Handler(exports.Handler):
    def handle(self, input: str) -> str:
        try:
            return run(json.loads(input))
        except Err:
            raise
        except Exception as e:
            # Any other exception would trap the component: answer it as an error instead.
            raise Err(f"{type(e).__name__}: {e}") from e
