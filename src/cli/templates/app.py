"""A Herald plug-in in Python: a WebAssembly component of the WIT world herald:plugin@1.0.0
(wit/plugin.wit). `handle` takes a JSON document and answers one; see docs/plugins.md for what
each kind of call (`step`, `async`, `transform`) gets and answers.

Build: pip install componentize-py==0.25.1
       componentize-py -d wit -w plugin componentize app -o plugin.wasm
Push:  herald plugin push --name NAME --solution SOLUTION plugin.wasm
"""
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host


def run(doc: dict) -> str:
    event = doc.get("event") or {}
    host.log(host.Level.INFO, f"{doc.get('kind')} {event.get('name')} {event.get('id')}")
    kind = doc.get("kind")
    if kind == "step":
        # Change parameters, set response properties or shared variables; or raise Err.
        return json.dumps({"shared_variables": {"seen_by": doc["plugin"]["name"]}})
    if kind == "async":
        return "{}"
    if kind == "transform":
        # Reshape the message, or answer {"drop": true}.
        return json.dumps({"message": {"body": {"event": event.get("name"), "params": event.get("params")}}})
    raise Err(f"unexpected kind {kind}")


class Handler(exports.Handler):
    def handle(self, input: str) -> str:
        try:
            return run(json.loads(input))
        except Err:
            raise
        except Exception as e:
            # Any other exception would trap the component: answer it as an error instead.
            raise Err(f"{type(e).__name__}: {e}") from e
