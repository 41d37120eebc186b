// The official JavaScript ServiceBusAdministrationClient against the emulator's
// administration API (HTTPS on the AMQP port; the emulator's certificate is trusted through
// NODE_EXTRA_CA_CERTS). Reads EMULATOR_CONNECTION_STRING. Prints one `OK <step>` per step that
// passed and exits non-zero on the first failure.
import assert from "node:assert/strict";
import { ServiceBusAdministrationClient, ServiceBusClient } from "@azure/service-bus";

const conn = process.env.EMULATOR_CONNECTION_STRING;
const ok = (step) => console.log(`OK ${step}`);
const admin = new ServiceBusAdministrationClient(conn);

const q = await admin.createQueue("made-by-js", { maxDeliveryCount: 3, requiresSession: true, lockDuration: "PT45S" });
assert.equal(q.name, "made-by-js");
assert.equal(q.maxDeliveryCount, 3);
const got = await admin.getQueue("made-by-js");
assert.equal(got.lockDuration, "PT45S");
assert.equal(got.requiresSession, true);
assert.equal(await admin.queueExists("made-by-js"), true);
assert.equal(await admin.queueExists("never-made"), false);
await assert.rejects(admin.createQueue("made-by-js"), (e) => e.statusCode === 409);
got.maxDeliveryCount = 9;
await admin.updateQueue(got);
assert.equal((await admin.getQueue("made-by-js")).maxDeliveryCount, 9);
const names = [];
for await (const item of admin.listQueues()) names.push(item.name);
assert.ok(names.includes("made-by-js"), names.join(","));
ok("queue created, read, updated and listed");

const client = new ServiceBusClient(conn);
const sender = client.createSender("made-by-js");
await sender.sendMessages([{ body: "x", sessionId: "s" }, { body: "y", sessionId: "s" }]);
await sender.close();
const rt = await admin.getQueueRuntimeProperties("made-by-js");
assert.equal(rt.activeMessageCount, 2);
assert.equal(rt.totalMessageCount, 2);
ok("runtime counts");

await admin.createTopic("js-topic");
await admin.createSubscription("js-topic", "eu", {
  defaultRuleOptions: { name: "eu-only", filter: { sqlExpression: "region = 'eu'" } },
});
const rule = await admin.getRule("js-topic", "eu", "eu-only");
assert.equal(rule.filter.sqlExpression, "region = 'eu'");
await admin.createRule("js-topic", "eu", "refunds", { subject: "refund" }, { sqlExpression: "SET kind = 'refund'" });
const rules = [];
for await (const r of admin.listRules("js-topic", "eu")) rules.push(r.name);
assert.deepEqual(rules.sort(), ["eu-only", "refunds"]);
const topicSender = client.createSender("js-topic");
await topicSender.sendMessages([
  { body: "us", applicationProperties: { region: "us" } },
  { body: "eu", applicationProperties: { region: "eu" } },
]);
await topicSender.close();
const receiver = client.createReceiver("js-topic", "eu");
const msgs = await receiver.receiveMessages(5, { maxWaitTimeInMs: 3000 });
assert.deepEqual(msgs.map((m) => m.body), ["eu"]);
await receiver.completeMessage(msgs[0]);
await receiver.close();
const subRt = await admin.getSubscriptionRuntimeProperties("js-topic", "eu");
assert.equal(subRt.activeMessageCount, 0);
assert.equal((await admin.getTopicRuntimeProperties("js-topic")).subscriptionCount, 1);
ok("topic, subscription with a SQL default rule, rules listed");

await admin.deleteRule("js-topic", "eu", "refunds");
await admin.deleteSubscription("js-topic", "eu");
await admin.deleteTopic("js-topic");
await admin.deleteQueue("made-by-js");
assert.equal(await admin.topicExists("js-topic"), false);
await assert.rejects(admin.getQueue("made-by-js"), (e) => e.statusCode === 404);
ok("deleted");
await client.close();
console.log("DONE");
