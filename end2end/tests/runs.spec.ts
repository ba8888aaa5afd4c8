import { expect, test, type APIRequestContext } from "@playwright/test";
import * as http from "http";
import * as net from "net";
import { hydrated, loginAsAdmin, sign } from "./helpers";

// Room for the designer's palette, canvas and inspector.
test.use({ viewport: { width: 1600, height: 900 } });

async function post(request: APIRequestContext, secret: string, event: object, slug = "shop") {
  const body = JSON.stringify(event);
  const res = await request.post(`/hooks/${slug}`, {
    headers: { "Content-Type": "application/json", "Nudge-Signature": sign(secret, body) },
    data: body,
  });
  expect(res.status()).toBe(202);
}

test("the abandoned-cart template runs on real events: a checkout in time ends the run, an abandoned cart gets an alert and an offer that converts", async ({
  page,
  request,
}) => {
  // The wait is shortened to one minute (its smallest unit), so this test waits for it.
  test.setTimeout(180_000);
  await loginAsAdmin(page);

  // A source for the shop.
  await page.getByRole("navigation").getByRole("link", { name: "Sources" }).click();
  await hydrated(page);
  await page.getByLabel("Name", { exact: true }).fill("Shop");
  await page.getByLabel("Slug (in the URL)").fill("shop");
  await page.getByLabel("Profile attributes").fill("email = $.customer.email");
  await page.getByLabel("Offer code redeemed").fill("$.order.coupon");
  await page.getByRole("button", { name: "Create source" }).click();
  const secret = ((await page.getByTestId("source-secret").locator("code").textContent()) ?? "").trim();
  expect(secret).toMatch(/^whsec_/);

  // The template, its wait shortened to a minute, published.
  await page.getByRole("navigation").getByRole("link", { name: "Workflows" }).click();
  await hydrated(page);
  await page.getByTestId("template-abandoned_cart").click();
  await expect(page).toHaveURL(/\/workflows\/[0-9a-f-]{36}$/);
  await hydrated(page);
  await page.getByTestId("node-wait_checkout").locator(".node-head").click();
  const inspector = page.getByTestId("inspector");
  await inspector.getByLabel("Time out after: amount").fill("1");
  await expect(page.getByTestId("node-wait_checkout")).toContainText("1 minute");
  await expect(page.getByTestId("save-state")).toHaveText("All changes saved");
  await page.getByTestId("publish").click();
  await expect(page.getByTestId("notice")).toHaveText("Published version 1.");

  // The workflow's runs, live: two carts start two runs without a reload.
  await page.getByTestId("workflow-runs").click();
  await expect(page.getByRole("heading", { name: "Runs" })).toBeVisible();
  await expect(page.getByTestId("live-status")).toHaveText("● Live");
  await expect(page.getByTestId("no-runs")).toBeVisible();
  const ana = { id: "ana", email: "ana@example.com" };
  const bob = { id: "bob", email: "bob@example.com" };
  await post(request, secret, { id: "e2e-c1", type: "cart_updated", customer: ana, cart: { id: "c1", value: 80 } });
  await post(request, secret, { id: "e2e-c2", type: "cart_updated", customer: bob, cart: { id: "c2", value: 640 } });
  const runs = page.getByTestId("runs");
  await expect(runs.locator("tr", { hasText: "ana" })).toContainText("waiting");
  // What a run waits for reads in the node's words, not its id.
  await expect(runs.locator("tr", { hasText: "bob" })).toContainText(
    "Waiting for checkout started or order completed, until",
  );
  await expect(runs.locator("tr", { hasText: "bob" })).not.toContainText("wait_checkout");

  // Ana checks out in time: her run completes, live.
  await post(request, secret, { id: "e2e-k1", type: "checkout_started", customer: ana, cart: { id: "c1" } });
  await expect(runs.locator("tr", { hasText: "ana" })).toContainText("completed");

  // Bob's run, on the graph of its version: waiting at the wait.
  await runs.locator("tr", { hasText: "bob" }).getByRole("link").first().click();
  await expect(page.getByRole("heading", { name: /Run of bob/ })).toBeVisible();
  await hydrated(page);
  const graph = page.getByTestId("run-graph");
  await expect(graph.getByTestId("graph-node-wait_checkout")).toHaveClass(/current/);
  await expect(page.getByTestId("run-workflow")).toHaveText("Abandoned cart rescue version 1");
  await expect(graph.getByTestId("graph-node-offer")).toHaveClass(/untouched/);

  // A minute later the timer fires: alert, offer, and a wait at the goal — live.
  await expect(graph.getByTestId("graph-node-converted")).toHaveClass(/current/, { timeout: 90_000 });
  await expect(graph.getByTestId("graph-node-alert_service")).toHaveClass(/passed/);
  await expect(graph.locator('[data-edge="wait_checkout:timed_out"]')).toHaveClass(/taken/);
  await expect(graph.locator('[data-edge="worth_offer:no"]')).not.toHaveClass(/taken/);
  await expect(page.getByTestId("run-waiting")).toContainText(
    "Waiting for goal: order completed with the code, until",
  );
  const trace = page.getByTestId("trace");
  await expect(trace).toContainText("CART-");
  // Each step by its node's kind and settings; the id only small beside them.
  await expect(trace.locator("li").first()).toContainText("Trigger cart_updated");
  await expect(trace).toContainText("Wait for event checkout_started or order_completed · 1 minute");
  // An offer is no delivery: it has no attempts to count.
  await expect(page.getByTestId("action-offer")).toContainText("done");
  await expect(page.getByTestId("action-offer").locator("td.num")).toHaveText("—");
  await expect(page.getByTestId("actions")).toContainText("issue offer");

  // The offer on Bob's page.
  await page.getByRole("link", { name: "bob" }).first().click();
  await expect(page.getByTestId("crumbs")).toHaveText("Events / Customer bob");
  const engagement = page.getByTestId("customer-engagement");
  await expect(engagement).toContainText("of Abandoned cart rescue · waiting · Waiting for goal: order completed");
  await expect(engagement).toContainText("Offer CART-");
  const code = ((await engagement.locator("code").first().textContent()) ?? "").trim();
  expect(code).toMatch(/^CART-[0-9A-Z]{10}$/);

  // The alert in the inbox, acknowledged.
  await page.getByRole("navigation").getByRole("link", { name: "Alerts" }).click();
  await hydrated(page);
  const alerts = page.getByTestId("alerts");
  const alert = alerts.locator("tr", { hasText: "Cart c2 worth 640 abandoned by bob@example.com" });
  await expect(alert).toContainText("warning");
  await alert.getByRole("button", { name: "Acknowledge" }).click();
  await page.getByTestId("alert-status").selectOption("acknowledged");
  await expect(alerts.locator("tr", { hasText: "Cart c2" })).toContainText("by admin@example.com");

  // Bob orders with the code: the run converts, live on its page.
  await page.goto("/runs");
  await hydrated(page);
  await page.getByTestId("runs").locator("tr", { hasText: "bob" }).getByRole("link").first().click();
  await hydrated(page);
  await expect(page.getByTestId("live-status")).toHaveText("● Live");
  await post(request, secret, { id: "e2e-o1", type: "order_completed", customer: bob, order: { coupon: code } });
  await expect(page.getByTestId("run-status-badge")).toHaveText("converted");
  await expect(page.getByTestId("graph-node-converted")).toHaveClass(/passed/);
  // Over: no line about waiting.
  await expect(page.getByTestId("run-waiting")).toHaveCount(0);
  await expect(page.getByTestId("run-facts")).not.toContainText("Waiting");
});

/** A local port nothing listens on (yet). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

test("a completed run whose webhook failed says so, is found by the failing filter, and an editor retries it with the same idempotency key", async ({
  page,
}) => {
  // Two attempts (the e2e server's NUDGE_WEBHOOK_MAX_ATTEMPTS) two seconds apart.
  test.setTimeout(90_000);
  await loginAsAdmin(page);
  const api = page.request; // the admin's session

  // A source, and a workflow that calls a receiver that is not there yet.
  const created = await api.post("/api/v1/sources", {
    data: {
      name: "Signups",
      slug: "signups",
      mapping: { event_name: "$.type", customer_id: "$.customer.id", event_id: "$.id" },
    },
  });
  expect(created.status()).toBe(201);
  const secret: string = (await created.json()).secret;
  const port = await freePort();
  const definition = {
    schema_version: 1,
    settings: { re_entry: { policy: "every_time" } },
    nodes: [
      { id: "trigger", x: 40, y: 200, type: "trigger", event: "signed_up" },
      {
        id: "welcome",
        x: 320,
        y: 200,
        type: "webhook",
        method: "POST",
        url: `http://127.0.0.1:${port}/welcome`,
        headers: [["Content-Type", "application/json"]],
        body: '{"customer":"{{customer.id}}"}',
      },
    ],
    edges: [
      { from: "trigger", port: "next", to: "welcome" },
      { from: "welcome", port: "next", to: "end" },
    ],
  };
  const workflow = await api.post("/api/v1/workflows", { data: { name: "Welcome call", definition } });
  expect(workflow.status()).toBe(201);
  const workflowId: string = (await workflow.json()).workflow_id;
  const published = await api.post(`/api/v1/workflows/${workflowId}/publish`);
  expect(published.status(), await published.text()).toBe(200);

  // Cleo signs up: her run completes at once, its webhook fails twice.
  await page.goto(`/runs?workflow=${workflowId}`);
  await hydrated(page);
  await post(page.request, secret, { id: "su-1", type: "signed_up", customer: { id: "cleo" } }, "signups");
  const row = page.getByTestId("runs").locator("tr", { hasText: "cleo" });
  await expect(row).toContainText("completed");
  await expect(row.getByTestId("action-health")).toHaveText("webhook failed", { timeout: 20_000 });

  // The filter finds it among all workflows' runs; every run it lists has a failing webhook.
  await page.goto("/runs?actions=failing");
  await hydrated(page);
  await expect(page.getByTestId("run-actions")).toHaveValue("failing");
  const failing = page.getByTestId("runs");
  await expect(failing.locator("tr", { hasText: "cleo" })).toBeVisible();
  await expect(failing.locator("tbody tr").filter({ hasNotText: /webhooks? (failed|failing)/ })).toHaveCount(0);
  await page.getByTestId("run-actions").selectOption("");
  await page.getByTestId("run-actions").selectOption("failing");
  await expect(failing.locator("tr", { hasText: "cleo" })).toBeVisible();

  // Its page: completed, yet the webhook failed after two attempts.
  await failing.locator("tr", { hasText: "cleo" }).getByRole("link").first().click();
  await expect(page.getByRole("heading", { name: /Run of cleo/ })).toBeVisible();
  await hydrated(page);
  await expect(page.getByTestId("run-status-badge")).toHaveText("completed");
  await expect(page.getByRole("heading", { name: /Run of cleo/ }).getByTestId("action-health")).toHaveText(
    "webhook failed",
  );
  await expect(page.getByTestId("run-workflow")).toHaveText("Welcome call version 1");
  await expect(page.getByTestId("run-facts")).not.toContainText("Waiting");
  const action = page.getByTestId("action-welcome");
  await expect(action).toContainText(`Webhook POST 127.0.0.1:${port}`);
  await expect(action).toContainText("failed");
  await expect(action.locator("td.num")).toHaveText("2");
  await expect(action).toContainText("could not connect");
  const runId = page.url().split("/").pop();

  // The receiver is up now; the retry delivers, with the same key every attempt had.
  const keys: string[] = [];
  const receiver = http.createServer((req, res) => {
    keys.push(String(req.headers["idempotency-key"] ?? ""));
    req.resume();
    req.on("end", () => res.writeHead(200).end("ok"));
  });
  await new Promise<void>((resolve) => receiver.listen(port, "127.0.0.1", resolve));
  try {
    await action.getByTestId("retry-action").click();
    await expect(action).toContainText("delivered", { timeout: 15_000 });
    await expect(action.locator("td.num")).toHaveText("1");
    await expect(action.getByTestId("retry-action")).toHaveCount(0);
    await expect(page.getByRole("heading", { name: /Run of cleo/ }).getByTestId("action-health")).toHaveCount(0);
    expect(keys).toEqual([`${runId}:welcome`]);
  } finally {
    await new Promise((resolve) => receiver.close(resolve));
  }

  // Delivered: a second retry is refused with the reason.
  const again = await api.post(`/api/v1/actions/${runId}:welcome/retry`);
  expect(again.status()).toBe(409);
  expect((await again.json()).detail).toContain("was delivered");
});
