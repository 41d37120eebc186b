// A Herald plug-in in JavaScript: a WebAssembly component of the WIT world
// herald:plugin@1.0.0 (wit/plugin.wit). `handle` takes a JSON document and answers one; see
// docs/plugins.md for what each kind of call (`step`, `async`, `transform`) gets and answers.
//
// Build: node build.mjs plugin.js plugin.wasm (ComponentizeJS, see README.md)
// Push:  herald plugin push --name NAME --solution SOLUTION plugin.wasm
import { log } from "herald:plugin/host@1.0.0";

function run(doc) {
  const params = doc.event?.params ?? {};
  log("info", `${doc.kind} ${doc.event?.name} ${doc.event?.id}`);
  switch (doc.kind) {
    case "step":
      // Change parameters, set response properties or shared variables; or refuse.
      return JSON.stringify({ shared_variables: { seen_by: doc.plugin.name }, parameters: {}, response: {} });
    case "async":
      return "{}";
    case "transform":
      // Reshape the message, or answer {"drop": true}.
      return JSON.stringify({ message: { body: { event: doc.event.name, params } } });
    default:
      throw new Error(`unexpected kind ${doc.kind}`);
  }
}

export const handler = {
  // A returned {tag: "err", val} is an error answer (a step's refusal); a thrown Error would
  // trap the component, so every failure is answered as an error.
  handle(input) {
    try {
      return run(JSON.parse(input));
    } catch (e) {
      return { tag: "err", val: e instanceof Error ? e.message : String(e?.payload ?? e) };
    }
  },
};
