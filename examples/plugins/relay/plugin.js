// relay — an asynchronous plug-in (JavaScript) that raises another event with the parameters
// of the one it handles, as a flow's "when this happens, raise that" step would.
//
// It calls `host.emit(<event of its configuration>, <the event's parameters>)`. Herald
// validates the new event against the catalog, stores it, and makes it one level deeper than
// the event handled, so a relay that raises the event it listens to stops at
// `pipeline.max_depth` (Herald's tests use it to prove that). A refusal is this attempt's error.
//
// Registration: an endpoint of kind `plugin` with `"plugin": "relay"` and the unsecure
// configuration {"event": "contoso_OrderRelayed"}, subscribed asynchronously to the events to
// relay. Built by scripts/build-plugins.sh with ComponentizeJS (see ../build.mjs).
import { emit, log } from "herald:plugin/host@1.0.0";

function run(doc) {
  const target = JSON.parse(doc.config ?? "{}").event;
  if (typeof target !== "string") {
    throw new Error('relay needs a configuration like {"event": "contoso_OrderRelayed"}');
  }
  let id;
  try {
    id = emit(target, JSON.stringify(doc.event?.params ?? {}));
  } catch (e) {
    throw new Error(`relaying to ${target} was refused: ${e?.payload ?? e?.message ?? e}`);
  }
  log("info", `${doc.event?.id} relayed as ${target} ${id}`);
  return "{}";
}

export const handler = {
  // A returned {tag: "err", val} is `err`; a thrown Error would trap the component instead.
  handle(input) {
    try {
      return run(JSON.parse(input));
    } catch (e) {
      return { tag: "err", val: e instanceof Error ? e.message : String(e?.payload ?? e) };
    }
  },
};
