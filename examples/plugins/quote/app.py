"""quote — a synchronous step (Python) that answers the caller with a price quote.

It reads the event's `Total` parameter and answers the response property `Quote`, the total
with the margin of its configuration added, rounded half-up to cents:
{"response": {"Quote": 110.0}}. The event's parameters are left as they are.

Registration: a step at stage `post_operation` of `contoso_CustomerPurchase` (response
properties are what a synchronous publish answers), module `target/plugins/quote.wasm`,
unsecure configuration:
    {"margin": 0.1}
Built by scripts/build-plugins.sh with componentize-py (world `plugin` of wit/plugin.wit).
"""
import json
from decimal import Decimal, ROUND_HALF_UP

from componentize_py_types import Err
from wit_world import exports


def run(doc: dict) -> str:
    if doc.get("kind") != "step":
        raise Err(f"quote is a step plug-in, not {doc.get('kind')}")
    try:
        margin = json.loads(doc.get("config") or "{}").get("margin", 0)
    except (ValueError, AttributeError):
        raise Err('quote needs a JSON configuration like {"margin": 0.1}')
    total = ((doc.get("event") or {}).get("params") or {}).get("Total")
    if not isinstance(total, (int, float)) or isinstance(total, bool):
        raise Err("quote needs a numeric Total parameter")
    quote = (Decimal(str(total)) * (1 + Decimal(str(margin)))).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return json.dumps({"response": {"Quote": float(quote)}})


class Handler(exports.Handler):
    def handle(self, input: str) -> str:
        try:
            return run(json.loads(input))
        except Err:
            raise
        except Exception as e:
            # Any other exception would trap the component: answer it as an error instead.
            raise Err(f"{type(e).__name__}: {e}") from e
