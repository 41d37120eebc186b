// The operator console in a real browser: Playwright (playwright-core) drives Debian's
// chromium against a live `herald serve` whose Service Bus endpoint is the local emulator and
// whose webhook endpoint is a receiver this script runs (it answers 200, or 400 when told).
// Every step waits for a condition under a timeout; every process started here is stopped by
// its PID. Screenshots of every page go to $HERALD_CONSOLE_SHOTS (target/console-screenshots).
//
// Usage: node tests/browser/console.mjs <herald binary> <local-emulator binary>

import { spawn } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const [heraldBin, emulatorBin] = process.argv.slice(2);
const shots = process.env.HERALD_CONSOLE_SHOTS || join(here, "../../target/console-screenshots");
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8");

const children = [];
const dir = mkdtempSync(join(tmpdir(), "herald-console-"));
let failures = 0;

function stopAll() {
  for (const c of children) {
    if (c.exitCode === null) c.kill("SIGTERM");
  }
}
process.on("exit", () => { stopAll(); rmSync(dir, { recursive: true, force: true }); });

function check(ok, what) {
  if (ok) {
    console.log(`ok   ${what}`);
  } else {
    failures += 1;
    console.log(`FAIL ${what}`);
  }
}

/** Waits until `f` returns a truthy value, polling, for at most `ms`. */
async function until(what, f, ms = 15000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** Starts a program and resolves with the first line of its output matching `pattern`. */
function start(bin, args, pattern, log) {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin} did not start: ${out}`)), 60000);
    const seen = (chunk) => {
      out += chunk;
      writeFileSync(log, out);
      const m = out.match(pattern);
      if (m) { clearTimeout(timer); resolve(m); }
    };
    child.stdout.on("data", seen);
    child.stderr.on("data", seen);
    child.on("exit", (code) => reject(new Error(`${bin} exited with ${code}: ${out}`)));
  });
}

// A webhook receiver: 200, or 400 with a JSON reason while `refusing`. It keeps what came to
// paths other than /hook (endpoints made in the console), to check their signatures.
let refusing = false;
let received = 0;
const kept = [];
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    received += 1;
    if (!req.url.startsWith("/hook")) kept.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
    if (refusing) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "CustomerId is unknown here" }));
    } else {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("thanks");
    }
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const receiverBase = `http://127.0.0.1:${receiver.address().port}`;
const receiverUrl = `${receiverBase}/hook`;

/** Whether `r` carries a Standard Webhooks v1 signature made with `secret` (whsec_…). */
function signedWith(r, secret) {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key)
    .update(`${r.headers["webhook-id"]}.${r.headers["webhook-timestamp"]}.${r.body}`).digest("base64");
  return r.headers["webhook-signature"].split(" ").includes(`v1,${expected}`);
}

// The local emulator with one queue.
writeFileSync(join(dir, "Config.json"), JSON.stringify({
  UserConfig: { Namespaces: [{ Name: "sbemulatorns", Queues: [{ Name: "console-orders", Properties: {} }] }] },
}));
const [, amqp] = await start(emulatorBin, ["--port", "0", "--config", join(dir, "Config.json")], /AMQP\s+\S+:(\d+)/, join(dir, "emulator.log"));

const admin = "hk_console_admin_" + randomBytes(16).toString("hex");
const viewer = "hk_console_viewer_" + randomBytes(16).toString("hex");
const webhookSecret = "whsec_" + randomBytes(32).toString("base64");
const sha = (s) => createHash("sha256").update(s).digest("hex");
writeFileSync(join(dir, "herald.toml"), `
api_key = "${admin}"
[[api_keys]]
name = "contoso-viewer"
sha256 = "${sha(viewer)}"
solutions = ["contoso"]
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://${join(dir, "herald.db")}"
[webhooks]
allow_networks = ["127.0.0.0/8", "::1/128"]
[[endpoints]]
name = "orders-webhook"
kind = "webhook"
url = "${receiverUrl}"
secret = "${webhookSecret}"
[[endpoints]]
name = "orders-queue"
kind = "service_bus"
connection_string = "Endpoint=sb://localhost:${amqp};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
entity = "console-orders"
[[subscriptions]]
name = "purchases-to-webhook"
event = "contoso_CustomerPurchase"
endpoint = "orders-webhook"
[[subscriptions]]
name = "purchases-to-queue"
event = "contoso_CustomerPurchase"
endpoint = "orders-queue"
`);
const [, base] = await start(heraldBin, ["serve", "--config", join(dir, "herald.toml")], /listening on (http:\/\/\S+)/, join(dir, "herald.log"));
console.log(`herald at ${base}, emulator AMQP port ${amqp}, receiver ${receiverUrl}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

/** Runs axe on the page; fails on any serious or critical violation. */
async function axe(page, name) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) console.log(`     axe ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
  check(bad.length === 0, `axe finds no serious or critical violation on ${name}`);
}

/** Screenshot, axe, and the phone check of the page open in `page`. */
async function review(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  await axe(page, name);
}

/** Signs in through the form; returns the page. */
async function signIn(context, key) {
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  await until("the sign-in form", () => page.url().includes("/console/sign-in"));
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/console`);
  return page;
}

const pages = ["/console", "/console/catalog", "/console/catalog/contoso_CustomerPurchase", "/console/endpoints", "/console/endpoints/new", "/console/deliveries", "/console/dead-letters", "/console/plugins", "/console/sources", "/console/tail"];

try {
  // --- Sign-in, and the session cookie's attributes.
  // axe is injected as an inline script, which the console's Content-Security-Policy forbids:
  // the test's contexts bypass it (the header itself is checked below).
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  const signInPage = await ctx.newPage();
  const first = await signInPage.goto(`${base}/console/sign-in`);
  const csp = first.headers()["content-security-policy"] || "";
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'"), "pages carry a Content-Security-Policy that allows only Herald's own scripts");
  await review(signInPage, "sign-in");
  await signInPage.close();
  const page = await signIn(ctx, admin);
  // A plug-in (the JavaScript echo example, built by scripts/build-plugins.sh), so the
  // Plug-ins page shows a version and its statistics.
  const wasm = readFileSync(new URL("../../target/plugins/echo.wasm", import.meta.url));
  const pushed = await page.request.post(`${base}/v1/plugins?name=echo&solution=contoso`, {
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/wasm" },
    data: wasm,
    timeout: 120000,
  });
  check(pushed.status() === 201, `a plug-in is pushed (${pushed.status()})`);
  const cookie = (await ctx.cookies()).find((c) => c.name === "herald_session");
  check(cookie && cookie.httpOnly && cookie.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");

  // --- A test event from the catalog, watched in the live tail.
  const tail = await ctx.newPage();
  await tail.goto(`${base}/console/tail`);
  await until("the live tail to connect", async () => (await tail.locator("#tail-status").textContent()).includes("Live"));
  await page.goto(`${base}/console/catalog`);
  await page.getByRole("link", { name: "contoso_CustomerPurchase" }).click();
  // First a wrong value: the API's own validation, shown beside the field.
  await page.getByLabel(/^CustomerId/).fill("not-a-guid");
  await page.getByLabel(/^Total/).fill("42.50");
  await page.getByLabel(/^Currency/).fill("EUR");
  await page.getByLabel(/^PurchasedOn/).fill("2026-11-22T10:30:00Z");
  await page.getByRole("button", { name: "Send test event" }).click();
  const fieldError = page.locator("#e-CustomerId");
  check(await fieldError.isVisible(), "an invalid parameter is refused with its error beside the field");
  check((await page.getByLabel(/^CustomerId/).getAttribute("aria-invalid")) === "true", "the invalid field is marked aria-invalid");
  await page.getByLabel(/^CustomerId/).fill("6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10");
  await page.getByRole("button", { name: "Send test event" }).click();
  await until("the event to be accepted", () => page.locator("#accepted").isVisible());
  await until("the tail to show both deliveries succeeded", async () =>
    (await tail.locator('#tail tbody tr[data-kind="attempted"]').filter({ hasText: "succeeded" }).count()) >= 2);
  const tailText = await tail.locator("#tail tbody").textContent();
  check(tailText.includes("orders-webhook") && tailText.includes("orders-queue") && tailText.includes("event accepted"),
    "the live tail shows the event and its attempts at the webhook and the queue");
  await until("the accepted deliveries to turn succeeded live", async () =>
    (await page.locator("#accepted [data-state]").allTextContents()).every((t) => t === "succeeded"));
  await review(tail, "tail");
  await review(page, "catalog-event");

  // --- A receiver answering 400: a dead letter; fix it; replay; delivered.
  refusing = true;
  const traceId = randomBytes(16).toString("hex");
  const sent = await page.request.post(`${base}/v1/events/contoso_CustomerPurchase`, {
    headers: { authorization: `Bearer ${admin}`, traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    data: { CustomerId: "0b6c8e2e-1111-4e0c-9a55-2b8f3c7d9e10", Total: 7, Currency: "EUR", PurchasedOn: "2026-11-23T09:00:00Z" },
  });
  check(sent.status() === 202, "an event sent through the API is accepted");
  await page.goto(`${base}/console/dead-letters`);
  const deadRow = await until("the dead letter to appear", async () => {
    await page.reload();
    const rows = page.locator("tbody tr[data-delivery]");
    return (await rows.count()) > 0 ? rows.first() : null;
  });
  const deadId = await deadRow.getAttribute("data-delivery");
  await review(page, "dead-letters");
  await page.goto(`${base}/console/deliveries/${deadId}`);
  const timeline = await page.locator(".timeline").textContent();
  check(timeline.includes("HTTP 400") && timeline.includes("CustomerId is unknown here"), "the attempt timeline shows the status and the start of the answer");
  check(timeline.includes("webhook-signature") && timeline.includes("v1,••••••") && !/v1,[A-Za-z0-9+/]{20,}/.test(timeline),
    "the signature is masked in the request shown");
  check((await page.locator("[data-trace-id]").textContent()) === traceId, "the delivery page shows the trace id the caller sent");
  await page.locator("details").first().evaluate((d) => { d.open = true; });
  await review(page, "delivery");
  refusing = false;
  await page.goto(`${base}/console/dead-letters`);
  await page.locator(`input[name="ids"][value="${deadId}"]`).check();
  await page.getByRole("button", { name: "Replay selected" }).click();
  await page.waitForURL(`${base}/console/dead-letters/replay`);
  await until("the replayed delivery to succeed, live", async () =>
    (await page.locator(`[data-delivery="${deadId}"] [data-state]`).textContent()) === "succeeded");
  check(true, "a replayed dead letter is delivered once the receiver is fixed");
  await review(page, "replayed");

  // --- Secret rotation: shown once.
  await page.goto(`${base}/console/endpoints`);
  await page.getByRole("link", { name: "orders-webhook" }).click();
  const endpointUrl = page.url();
  await page.getByRole("button", { name: "Rotate secret" }).click();
  const shown = await page.locator("#shown-secret").inputValue();
  check(/^whsec_[A-Za-z0-9+/=]{30,}$/.test(shown), "a rotated secret is shown once on the page that made it");
  await review(page, "endpoint");
  await page.goto(endpointUrl);
  check(!(await page.content()).includes(shown), "the secret is not shown again");

  // --- A webhook endpoint made in the console: problems beside their fields, then its secret
  // shown once, and deliveries signed with it.
  await page.goto(`${base}/console/endpoints`);
  await page.getByRole("link", { name: "New webhook endpoint" }).click();
  await page.getByLabel(/^Name/).fill("alerts-webhook");
  await page.getByLabel(/^URL/).fill("not a url");
  await page.getByRole("button", { name: "Create endpoint" }).click();
  check(await page.locator("#e-url").isVisible(), "a URL the registry refuses is shown beside its field");
  check((await page.getByLabel(/^URL/).getAttribute("aria-invalid")) === "true", "the refused URL field is marked aria-invalid");
  await review(page, "endpoint-new-refused");
  await page.getByLabel(/^URL/).fill(`${receiverBase}/alerts`);
  await page.getByLabel(/^Subscribe to/).selectOption("contoso_CustomerPurchase");
  await page.getByRole("button", { name: "Create endpoint" }).click();
  const made = await page.locator("#shown-secret").inputValue();
  check(/^whsec_[A-Za-z0-9+/=]{30,}$/.test(made), "a new endpoint's secret is shown once on the page that made it");
  check((await page.locator("#subs-h + div tbody").textContent()).includes("contoso_CustomerPurchase"), "the new endpoint's subscription is listed on its page");
  const madeUrl = (await page.locator("form[action$='/subscriptions']").getAttribute("action")).replace("/subscriptions", "");
  await page.goto(`${base}${madeUrl}`);
  check(!(await page.content()).includes(made.slice(6, 30)), "the new endpoint's secret is not shown again");
  const toAlerts = await page.request.post(`${base}/v1/events/contoso_CustomerPurchase`, {
    headers: { authorization: `Bearer ${admin}` },
    data: { CustomerId: "0b6c8e2e-2222-4e0c-9a55-2b8f3c7d9e10", Total: 9, Currency: "EUR", PurchasedOn: "2026-11-24T09:00:00Z" },
  });
  check(toAlerts.status() === 202, "an event for the new endpoint is accepted");
  const alert = await until("the new endpoint's delivery", () => kept.find((r) => r.path === "/alerts"));
  check(signedWith(alert, made), "the new endpoint's deliveries are signed with the secret shown");

  // --- A form without the CSRF token is refused, and changes nothing.
  const endpointId = endpointUrl.split("/").pop();
  const forged = await page.request.post(`${base}/console/endpoints/${endpointId}/disable`, { form: { reason: "forged" } });
  check(forged.status() === 403, "a form posted without the CSRF token is refused (403)");
  const health = await page.request.get(`${base}/v1/endpoints/${endpointId}/health`, { headers: { authorization: `Bearer ${admin}` } });
  check((await health.json()).state === "healthy", "the forged form changed nothing");

  // --- Every page: screenshot, axe, and usable on a phone without zooming.
  for (const path of pages) {
    await page.goto(`${base}${path}`);
    const name = path === "/console" ? "overview" : path.replace("/console/", "").replaceAll("/", "-");
    await review(page, name);
  }
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, bypassCSP: true });
  await phone.addCookies([{ ...cookie }]);
  const small = await phone.newPage();
  for (const path of pages) {
    await small.goto(`${base}${path}`);
    const fits = await small.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
    check(fits, `${path} fits a phone's width without zooming`);
  }
  await small.screenshot({ path: join(shots, "phone-tail.png"), fullPage: true });
  await small.goto(`${base}/console`);
  await small.screenshot({ path: join(shots, "phone-overview.png"), fullPage: true });
  await phone.close();

  // --- Keyboard: the skip link is the first stop and leads to the content.
  await page.goto(`${base}/console`);
  await page.keyboard.press("Tab");
  check((await page.evaluate(() => document.activeElement.textContent)) === "Skip to content", "the first Tab stop is the skip link");

  // --- Sign out ends the session.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.goto(`${base}/console/endpoints`);
  check(page.url().includes("/console/sign-in"), "after signing out, pages ask to sign in again");
  await until("the live tail left open to say the session ended", async () =>
    (await tail.locator("#tail-status").textContent()).includes("Your session ended"), 30000);
  check((await tail.getByRole("link", { name: "Sign in again" }).count()) === 1, "a live tail left open says the session ended and offers to sign in again");

  // --- A key that is not an admin sees, and cannot act.
  const viewerCtx = await browser.newContext({ bypassCSP: true });
  const v = await signIn(viewerCtx, viewer);
  await v.goto(`${endpointUrl}`);
  check((await v.getByRole("button", { name: /Disable|Enable|Rotate secret|Retire|Subscribe|Unsubscribe/ }).count()) === 0, "a read-only key sees no action on the endpoint page");
  const csrf = await v.locator('input[name="csrf"]').first().inputValue();
  const refused = await v.request.post(`${base}/console/endpoints/${endpointId}/disable`, { form: { csrf, reason: "viewer" } });
  check(refused.status() === 403, "a read-only key's action is refused (403) even with its CSRF token");
  await v.goto(`${base}/console/dead-letters`);
  check((await v.getByRole("button", { name: /Replay/ }).count()) === 0, "a read-only key cannot replay");
  await viewerCtx.close();
  await ctx.close();
} catch (e) {
  failures += 1;
  console.log(`FAIL ${e.stack || e}`);
  console.log(readFileSync(join(dir, "herald.log"), "utf8").split("\n").slice(-40).join("\n"));
} finally {
  await browser.close();
  receiver.close();
  stopAll();
}
console.log(failures === 0 ? "console browser tests passed" : `${failures} console browser check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
