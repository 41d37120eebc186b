// chat-card — a subscription's transformation (JavaScript) that turns an event into a chat
// message for Microsoft Teams: an Adaptive Card with the event's name and a fact per parameter.
//
// It drops (does not deliver) events whose `Total` parameter is below `min_total` from its
// configuration; events without a numeric `Total` are always delivered.
//
// Registration: the transformation of a webhook subscription (to a Teams incoming webhook or a
// Power Automate flow) on `contoso_CustomerPurchase`, module `target/plugins/chat-card.wasm`,
// unsecure configuration:
//   {"min_total": 10}
// Built by scripts/build-plugins.sh with ComponentizeJS (see ../build.mjs).

function factValue(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map(factValue).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function run(doc) {
  if (doc.kind !== "transform") {
    throw new Error(`chat-card is a transformation, not ${doc.kind}`);
  }
  let minTotal = null;
  if (doc.config) {
    const config = JSON.parse(doc.config);
    if (typeof config.min_total === "number") minTotal = config.min_total;
  }
  const event = doc.event ?? {};
  const params = event.params ?? {};
  if (minTotal !== null && typeof params.Total === "number" && params.Total < minTotal) {
    return JSON.stringify({ drop: true });
  }
  const facts = Object.entries(params).map(([title, value]) => ({ title, value: factValue(value) }));
  const card = {
    type: "AdaptiveCard",
    version: "1.4",
    body: [
      { type: "TextBlock", text: event.name ?? "event", weight: "Bolder", size: "Medium", wrap: true },
      { type: "FactSet", facts },
    ],
  };
  return JSON.stringify({
    message: {
      body: {
        type: "message",
        attachments: [{ contentType: "application/vnd.microsoft.card.adaptive", content: card }],
      },
    },
  });
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
