// Builds Herald's example plug-ins written in JavaScript into WebAssembly components with
// ComponentizeJS (`componentize()`), against the WIT world `plugin` of ../../wit.
//
//   node examples/plugins/build.mjs <source.js> <output.wasm> [<source.js> <output.wasm> ...]
//   node examples/plugins/build.mjs --version
//
// Called by scripts/build-plugins.sh, which decides what needs building. Prints one line per
// component built: "built <output> <bytes> <milliseconds>".
import { componentize, version } from "@bytecodealliance/componentize-js";
import { mkdir, writeFile, rename } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const witPath = resolve(here, "../../wit");

// The engine's WASI features that a plug-in does without, so that its component imports fewer
// WASI interfaces: `random` (Math.random is then deterministic: the same sequence in every
// instance), `clocks` (Date.now() then answers the time the component was built, and timers
// trap), `http` (no fetch() global: plug-ins reach the network only through `host.fetch`) and
// `fetch-event` (no incoming HTTP handler). `stdio` stays: it carries console.log and the
// engine's report of an uncaught error to stderr; without it both are lost silently.
export const disableFeatures = ["random", "clocks", "http", "fetch-event"];

const args = process.argv.slice(2);
if (args[0] === "--version") {
  console.log(`componentize-js ${version} disable=${disableFeatures.join(",")}`);
  process.exit(0);
}
if (args.length === 0 || args.length % 2 !== 0) {
  console.error("usage: build.mjs <source.js> <output.wasm> [...]");
  process.exit(2);
}

for (let i = 0; i < args.length; i += 2) {
  const sourcePath = resolve(args[i]);
  const output = resolve(args[i + 1]);
  const started = performance.now();
  const { component } = await componentize({
    sourcePath,
    witPath,
    worldName: "plugin",
    disableFeatures,
  });
  await mkdir(dirname(output), { recursive: true });
  await writeFile(`${output}.tmp`, component);
  await rename(`${output}.tmp`, output);
  console.log(`built ${args[i + 1]} ${component.length} ${Math.round(performance.now() - started)}`);
}
