import { expect, test, type APIRequestContext } from "@playwright/test";
import { hydrated, loginAsAdmin, sign } from "./helpers";

// Room for the designer's palette, canvas and inspector.
test.use({ viewport: { width: 1600, height: 900 } });

async function post(request: APIRequestContext, secret: string, event: object) {
  const body = JSON.stringify(event);
  const res = await request.post("/hooks/shop", {
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
  await expect(runs.locator("tr", { hasText: "bob" })).toContainText("wait_checkout");

  // Ana checks out in time: her run completes, live.
  await post(request, secret, { id: "e2e-k1", type: "checkout_started", customer: ana, cart: { id: "c1" } });
  await expect(runs.locator("tr", { hasText: "ana" })).toContainText("completed");

  // Bob's run, on the graph of its version: waiting at the wait.
  await runs.locator("tr", { hasText: "bob" }).getByRole("link").first().click();
  await expect(page.getByRole("heading", { name: /Run of bob/ })).toBeVisible();
  await hydrated(page);
  const graph = page.getByTestId("run-graph");
  await expect(graph.getByTestId("graph-node-wait_checkout")).toHaveClass(/current/);
  await expect(graph.getByTestId("graph-node-offer")).toHaveClass(/untouched/);

  // A minute later the timer fires: alert, offer, and a wait at the goal — live.
  await expect(graph.getByTestId("graph-node-converted")).toHaveClass(/current/, { timeout: 90_000 });
  await expect(graph.getByTestId("graph-node-alert_service")).toHaveClass(/passed/);
  await expect(graph.locator('[data-edge="wait_checkout:timed_out"]')).toHaveClass(/taken/);
  await expect(graph.locator('[data-edge="worth_offer:no"]')).not.toHaveClass(/taken/);
  const trace = page.getByTestId("trace");
  await expect(trace).toContainText("CART-");
  await expect(page.getByTestId("actions")).toContainText("issue offer");

  // The offer on Bob's page.
  await page.getByRole("link", { name: "bob" }).first().click();
  const engagement = page.getByTestId("customer-engagement");
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
  await page.getByTestId("runs").locator("tr", { hasText: "bob" }).getByRole("link").first().click();
  await hydrated(page);
  await expect(page.getByTestId("live-status")).toHaveText("● Live");
  await post(request, secret, { id: "e2e-o1", type: "order_completed", customer: bob, order: { coupon: code } });
  await expect(page.getByTestId("run-status-badge")).toHaveText("converted");
  await expect(page.getByTestId("graph-node-converted")).toHaveClass(/passed/);
});
