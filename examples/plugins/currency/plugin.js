// currency — a synchronous step (JavaScript) that converts a purchase's total to one currency.
//
// On `contoso_CustomerPurchase` (parameters CustomerId, Total, Currency, PurchasedOn, Items) it
// multiplies `Total` by the rate of `Currency` from its configuration, rounds to cents, and
// sets `Currency` to the target. A currency it has no rate for cancels the event with
// "unknown currency XYZ". It writes one line to Herald's log through `host.log`.
//
// Registration: a step at stage `pre_operation` of `contoso_CustomerPurchase`, module
// `target/plugins/currency.wasm`, unsecure configuration (a JSON string):
//   {"rates": {"USD": 0.92, "GBP": 1.17}, "to": "EUR"}
// Built by scripts/build-plugins.sh with ComponentizeJS (see ../build.mjs).
import { log } from "herald:plugin/host@1.0.0";

function parseConfig(text) {
  let config;
  try {
    config = JSON.parse(text ?? "");
  } catch {
    throw new Error('currency needs a JSON configuration like {"rates": {"USD": 0.92}, "to": "EUR"}');
  }
  if (typeof config?.to !== "string" || typeof config.rates !== "object" || config.rates === null) {
    throw new Error('currency configuration needs "rates" (an object) and "to" (a currency code)');
  }
  return config;
}

function run(doc) {
  if (doc.kind !== "step") {
    throw new Error(`currency is a step plug-in, not ${doc.kind}`);
  }
  const { rates, to } = parseConfig(doc.config);
  const params = doc.event?.params ?? {};
  const from = params.Currency;
  const total = params.Total;
  if (typeof from !== "string" || typeof total !== "number" || from === to) {
    return "{}";
  }
  const rate = rates[from];
  if (typeof rate !== "number") {
    throw new Error(`unknown currency ${from}`);
  }
  const converted = Math.round(total * rate * 100) / 100;
  log("info", `${doc.event.id}: ${total} ${from} is ${converted} ${to} at ${rate}`);
  return JSON.stringify({ parameters: { Total: converted, Currency: to } });
}

export const handler = {
  // ComponentizeJS maps a returned string to `ok` and a returned {tag: "err", val} to `err`; a
  // thrown Error would trap the component instead, so every failure is answered as `err`.
  handle(input) {
    try {
      return run(JSON.parse(input));
    } catch (e) {
      return { tag: "err", val: e instanceof Error ? e.message : String(e?.payload ?? e) };
    }
  },
};
