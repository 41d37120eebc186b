// The emulator as the official JavaScript SDK sees it: one-at-a-time sends, each awaiting its
// settlement. Reads EMULATOR_CONNECTION_STRING and BENCH_MESSAGES; prints one JSON object.
import { ServiceBusClient } from "@azure/service-bus";

const n = Number(process.env.BENCH_MESSAGES ?? 2000);
const body = '{"event":"contoso_order_placed","id":"0190f0aa-0000-7000-8000-000000000000","amount":42}';
const client = new ServiceBusClient(process.env.EMULATOR_CONNECTION_STRING);
const sender = client.createSender("queue1");
await sender.sendMessages({ body }); // opens the link
const t = performance.now();
for (let i = 0; i < n; i++) await sender.sendMessages({ body });
const rate = n / ((performance.now() - t) / 1000);
await sender.close();
const receiver = client.createReceiver("queue1", { receiveMode: "receiveAndDelete" });
let left = n + 1;
while (left > 0) {
  const got = await receiver.receiveMessages(Math.min(left, 500), { maxWaitTimeInMs: 5000 });
  if (got.length === 0) break;
  left -= got.length;
}
await receiver.close();
await client.close();
console.log(JSON.stringify({ javascript_send_one_at_a_time: rate }));
