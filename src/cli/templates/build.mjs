// Builds plugin.js into a component of the WIT world herald:plugin@1.0.0 with ComponentizeJS:
//   npm install @bytecodealliance/componentize-js@0.23.0 @bytecodealliance/preview2-shim@0.17.9
//   node build.mjs plugin.js plugin.wasm
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";

const [source = "plugin.js", output = "plugin.wasm"] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath: resolve(source),
  witPath: resolve("wit"),
  worldName: "plugin",
  disableFeatures: ["random", "clocks", "http", "fetch-event"],
});
await writeFile(output, component);
console.log(`built ${output} (${component.length} bytes)`);
