// The official JavaScript Service Bus SDK (@azure/service-bus) against the emulator: sessions,
// the rule manager (add, list, remove rules with SQL actions), deferral and receive by
// sequence number. Reads EMULATOR_CONNECTION_STRING; the entities come from
// tests/config/features.json. Prints one `OK <step>` per step that passed and exits non-zero on
// the first failure.
import assert from "node:assert/strict";
import { ServiceBusClient } from "@azure/service-bus";

const conn = process.env.EMULATOR_CONNECTION_STRING;
const WAIT = { maxWaitTimeInMs: 5000 };
const ok = (step) => console.log(`OK ${step}`);

async function receiveAll(receiver, expected) {
  const got = [];
  while (got.length < expected) {
    const batch = await receiver.receiveMessages(expected - got.length, WAIT);
    assert.ok(batch.length > 0, `only ${got.length} of ${expected} arrived`);
    got.push(...batch);
  }
  return got;
}

async function sessions(client) {
  const sender = client.createSender("sessions");
  for (let i = 0; i < 3; i++) {
    for (const s of ["js-a", "js-b"]) {
      await sender.sendMessages({ body: `${s}-${i}`, sessionId: s });
    }
  }
  await sender.close();

  const b = await client.acceptSession("sessions", "js-b");
  assert.equal(b.sessionId, "js-b");
  assert.ok(b.sessionLockedUntilUtc instanceof Date && b.sessionLockedUntilUtc > new Date());
  const got = await receiveAll(b, 3);
  assert.deepEqual(got.map((m) => m.body), ["js-b-0", "js-b-1", "js-b-2"]);
  for (const m of got) await b.completeMessage(m);
  const before = b.sessionLockedUntilUtc;
  const after = await b.renewSessionLock();
  assert.ok(after >= before, `${after} < ${before}`);
  await b.setSessionState("js-state");
  assert.equal(String(await b.getSessionState()), "js-state");
  await b.close();
  ok("session receiver in order, lock renewal and state");

  const next = await client.acceptNextSession("sessions");
  assert.equal(next.sessionId, "js-a");
  const rest = await receiveAll(next, 3);
  assert.deepEqual(rest.map((m) => m.body), ["js-a-0", "js-a-1", "js-a-2"]);
  for (const m of rest) await next.completeMessage(m);
  await next.close();
  ok("next available session");
}

async function list(manager) {
  const out = [];
  // The SDK's pager yields one `undefined` for a subscription without rules.
  for await (const r of manager.listRules()) if (r !== undefined) out.push(r);
  return out;
}

async function rules(client) {
  const manager = client.createRuleManager("orders", "managed");
  const initial = await list(manager);
  assert.deepEqual(initial.map((r) => r.name), ["$Default"]);
  await manager.createRule("vip", { sqlExpression: "Total > 100" }, { sqlExpression: "SET Tier = 'gold'" });
  await manager.createRule("by-subject", { subject: "refund", applicationProperties: { region: "eu" } });
  await assert.rejects(manager.createRule("vip", { sqlExpression: "1=1" }), (e) => e.code === "MessagingEntityAlreadyExists");
  await manager.deleteRule("$Default");
  const listed = await list(manager);
  assert.deepEqual(listed.map((r) => r.name).sort(), ["by-subject", "vip"]);
  const vip = listed.find((r) => r.name === "vip");
  assert.equal(vip.filter.sqlExpression, "Total > 100");
  assert.equal(vip.action.sqlExpression, "SET Tier = 'gold'");
  const bySubject = listed.find((r) => r.name === "by-subject");
  assert.equal(bySubject.filter.subject, "refund");
  assert.equal(bySubject.filter.applicationProperties.region, "eu");
  ok("rule manager adds and lists rules");

  const sender = client.createSender("orders");
  await sender.sendMessages([
    { body: "small", applicationProperties: { Total: 5 } },
    { body: "big", applicationProperties: { Total: 500 } },
    { body: "refund", subject: "refund", applicationProperties: { region: "eu", Total: 1 } },
  ]);
  await sender.close();
  const receiver = client.createReceiver("orders", "managed");
  const got = await receiveAll(receiver, 2);
  const bodies = got.map((m) => m.body).sort();
  assert.deepEqual(bodies, ["big", "refund"]);
  const big = got.find((m) => m.body === "big");
  assert.equal(big.applicationProperties.Tier, "gold");
  assert.equal(big.applicationProperties.RuleName, "vip");
  for (const m of got) await receiver.completeMessage(m);
  assert.equal((await receiver.receiveMessages(5, { maxWaitTimeInMs: 1000 })).length, 0, "'small' matched no rule");
  await receiver.close();
  ok("rules with actions select and change messages");

  await manager.deleteRule("vip");
  await manager.deleteRule("by-subject");
  assert.deepEqual(await list(manager), []);
  await assert.rejects(manager.deleteRule("vip"), (e) => e.code === "MessagingEntityNotFound");
  await manager.createRule("$Default", { sqlExpression: "1=1" });
  ok("rule manager removes rules");
}

async function deferral(client) {
  const sender = client.createSender("deferrals");
  await sender.sendMessages({ body: "later" });
  await sender.close();
  const receiver = client.createReceiver("deferrals");
  const [m] = await receiver.receiveMessages(1, WAIT);
  assert.equal(m.body, "later");
  await receiver.deferMessage(m, { deferredBy: "js" });
  const [d] = await receiver.receiveDeferredMessages(m.sequenceNumber);
  assert.equal(d.body, "later");
  assert.equal(d.state, "deferred");
  assert.equal(d.applicationProperties.deferredBy, "js", "properties to modify are applied");
  await receiver.completeMessage(d);
  assert.deepEqual(await receiver.peekMessages(5, { fromSequenceNumber: m.sequenceNumber }), []);
  await receiver.close();
  ok("defer and receive by sequence number");

  const again = client.createSender("deferrals");
  await again.sendMessages({ body: "retry me" });
  await again.close();
  const r2 = client.createReceiver("deferrals");
  const [first] = await r2.receiveMessages(1, WAIT);
  await r2.abandonMessage(first, { attempt: 2 });
  const [second] = await r2.receiveMessages(1, WAIT);
  assert.equal(second.body, "retry me");
  assert.equal(second.applicationProperties.attempt, 2);
  assert.ok(second.deliveryCount >= 1);
  await r2.completeMessage(second);
  await r2.close();
  ok("abandon with properties to modify");
}

const client = new ServiceBusClient(conn);
try {
  await sessions(client);
  await rules(client);
  await deferral(client);
  console.log("DONE");
} finally {
  await client.close();
}
