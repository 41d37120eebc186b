// enrich — a synchronous step (JavaScript) that looks the customer up in a CRM over HTTP.
//
// It sends `GET <url><CustomerId>` through `host.fetch` (Herald allows only the hosts listed in
// the registration, and never private or loopback addresses), expects a JSON answer like
// {"tier": "gold"}, and passes the tier to the plug-ins and subscriptions after it as the
// shared variable `tier`. A failed request, an HTTP error or an answer without a tier cancels
// the event with "enrichment failed: <reason>".
//
// Registration: a step at stage `pre_operation` of `contoso_CustomerPurchase`, module
// `target/plugins/enrich.wasm`, allowed hosts ["crm.contoso.example"], unsecure configuration:
//   {"url": "https://crm.contoso.example/customers/"}
// Built by scripts/build-plugins.sh with ComponentizeJS (see ../build.mjs).
import { fetch as hostFetch } from "herald:plugin/host@1.0.0";

function failed(reason) {
  return new Error(`enrichment failed: ${reason}`);
}

function lookUp(url) {
  let response;
  try {
    response = hostFetch({
      method: "GET",
      url,
      headers: [["accept", "application/json"]],
      body: new Uint8Array(0),
    });
  } catch (e) {
    // An import's error variant arrives as a thrown ComponentError whose payload is the reason.
    throw failed(e?.payload ?? e?.message ?? String(e));
  }
  if (response.status < 200 || response.status > 299) {
    throw failed(`HTTP ${response.status} from ${url}`);
  }
  let answer;
  try {
    answer = JSON.parse(new TextDecoder().decode(response.body));
  } catch (e) {
    throw failed(`the answer is not JSON (${e.message})`);
  }
  if (typeof answer?.tier !== "string") {
    throw failed('the answer has no "tier"');
  }
  return answer.tier;
}

function run(doc) {
  if (doc.kind !== "step") {
    throw new Error(`enrich is a step plug-in, not ${doc.kind}`);
  }
  let base;
  try {
    base = JSON.parse(doc.config ?? "").url;
  } catch {}
  if (typeof base !== "string") {
    throw failed('the configuration needs {"url": "https://.../customers/"}');
  }
  const customer = doc.event?.params?.CustomerId;
  if (typeof customer !== "string") {
    throw failed("the event has no CustomerId");
  }
  const tier = lookUp(base + encodeURIComponent(customer));
  return JSON.stringify({ shared_variables: { tier } });
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
