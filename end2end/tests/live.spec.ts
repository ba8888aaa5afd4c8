import { expect, test, type APIRequestContext } from "@playwright/test";
import { hydrated, loginAsAdmin, sign } from "./helpers";

test.use({ viewport: { width: 1600, height: 900 } });

async function post(request: APIRequestContext, secret: string, event: object) {
  const body = JSON.stringify(event);
  const res = await request.post("/hooks/bank", {
    headers: { "Content-Type": "application/json", "Nudge-Signature": sign(secret, body) },
    data: body,
  });
  expect(res.status()).toBe(202);
}

test("events posted to the webhook move the dashboard, the canvas, the explorer and the inbox live, and a page that lost its connection catches up", async ({
  page,
  context,
  browser,
  request,
}) => {
  test.setTimeout(120_000);
  await loginAsAdmin(page);

  // A bank's source and the high-value transaction template, published.
  await page.getByRole("navigation").getByRole("link", { name: "Sources" }).click();
  await hydrated(page);
  await page.getByLabel("Name", { exact: true }).fill("Bank");
  await page.getByLabel("Slug (in the URL)").fill("bank");
  await page.getByRole("button", { name: "Create source" }).click();
  const secret = ((await page.getByTestId("source-secret").locator("code").textContent()) ?? "").trim();
  expect(secret).toMatch(/^whsec_/);
  await page.getByRole("navigation").getByRole("link", { name: "Workflows" }).click();
  await hydrated(page);
  await page.getByTestId("template-high_value_transaction").click();
  await expect(page).toHaveURL(/\/workflows\/[0-9a-f-]{36}$/);
  await hydrated(page);
  await page.getByTestId("publish").click();
  await expect(page.getByTestId("notice")).toHaveText("Published version 1.");
  const canvas = page; // stays on the designer

  // Three more pages, each following the live stream; the dashboard in a
  // browser context of its own, so it can lose its connection alone.
  const dashboardContext = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const dashboard = await dashboardContext.newPage();
  await loginAsAdmin(dashboard);
  await hydrated(dashboard);
  await expect(dashboard.getByTestId("live-status")).toHaveText("● Live");
  await expect(dashboard.getByTestId("kpi-events")).toContainText("Events received0");
  // No event yet: the first steps show what is done and what is left.
  await expect(dashboard.getByTestId("setup-progress")).toHaveText("2 of 3 done");
  await expect(dashboard.getByTestId("setup-events")).not.toHaveClass(/done/);
  await expect(dashboard.getByTestId("kpi-latency")).toContainText("—");
  const inbox = await context.newPage();
  await inbox.goto("/alerts");
  await hydrated(inbox);
  await expect(inbox.getByTestId("live-status")).toHaveText("● Live");
  const explorer = await context.newPage();
  await explorer.goto("/events");
  await hydrated(explorer);
  await expect(explorer.getByTestId("live-status")).toHaveText("● Live");

  // A big transaction (starts a run: alert and offer at once) and a small one.
  await post(request, secret, { id: "tx-1", type: "transaction_completed", customer: { id: "vera" }, amount: 25_000, currency: "EUR" });
  await post(request, secret, { id: "tx-2", type: "transaction_completed", customer: { id: "walt" }, amount: 90, currency: "EUR" });

  // The explorer shows both, with their payload's sender ids.
  const events = explorer.getByTestId("events");
  await expect(events.locator("tr", { hasText: "vera" })).toContainText("transaction_completed");
  await expect(events.locator("tr", { hasText: "walt" })).toBeVisible();

  // The inbox shows the advisor's alert.
  await expect(inbox.getByTestId("alerts").locator("tr", { hasText: "vera moved 25000 EUR" })).toContainText("info");
  // It arrived while the inbox was open: marked new, counted in the heading and the tab title.
  await expect(inbox.getByTestId("alerts").locator("tr", { hasText: "vera" }).getByTestId("alert-new")).toBeVisible();
  await expect(inbox.getByTestId("new-alerts")).toContainText("1 new alert");
  await expect(inbox).toHaveTitle(/^\(1\) Alerts/);

  // The dashboard's tiles and chart moved without a reload.
  await expect(dashboard.getByTestId("kpi-events")).toContainText("Events received2");
  await expect(dashboard.getByTestId("kpi-runs")).toContainText("Runs started1");
  await expect(dashboard.getByTestId("kpi-offers")).toContainText("Offers issued1");
  await expect(dashboard.getByTestId("kpi-alerts")).toContainText("Open alerts1");
  await expect(dashboard.getByTestId("chart").locator("rect.chart-bar")).toHaveCount(1);
  await expect(dashboard.getByTestId("top-events")).toContainText("transaction_completed2");
  // The lists follow too: the source by its name, the offer under its workflow's;
  // the first steps are all done, so their card goes; the latency tile moves.
  await expect(dashboard.getByTestId("top-sources")).toContainText("Bank2");
  await expect(dashboard.getByTestId("top-sources")).not.toContainText(/[0-9a-f]{8}-[0-9a-f]{4}/);
  const offered = dashboard.getByTestId("offers-by-workflow").locator("tbody tr");
  await expect(offered).toHaveCount(1);
  await expect(offered).toContainText("High-value transaction offer");
  await expect(offered.locator("td").nth(1)).toHaveText("1");
  await expect(dashboard.getByTestId("getting-started")).toHaveCount(0);
  await expect(dashboard.getByTestId("kpi-latency")).toContainText(/\d ms/);
  await expect(dashboard.getByTestId("kpi-latency")).toContainText(/p95 \d/);
  // Every tile's figure fits its tile at 1440 px.
  const overflowing = await dashboard
    .locator(".kpi-value, .kpi-detail")
    .evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.textContent));
  expect(overflowing).toEqual([]);

  // The canvas counts the run on its nodes: in at the trigger, waiting at the goal.
  await expect(canvas.getByTestId("live-trigger")).toContainText("1 in");
  await expect(canvas.getByTestId("live-offer")).toContainText("1 in · next 1");
  await expect(canvas.getByTestId("live-accepted")).toContainText("1 waiting");
  // A node click lists the runs that passed it.
  await canvas.getByTestId("node-offer").locator(".node-head").click();
  await expect(canvas.getByTestId("node-runs")).toContainText("vera");

  // The dashboard loses its connection; events sent meanwhile arrive when it is back.
  // Offline emulation blocks new requests; stopping the page's loads drops the open stream.
  await dashboardContext.setOffline(true);
  await dashboard.evaluate(() => window.stop());
  await expect(dashboard.getByTestId("live-status")).toHaveText("○ Reconnecting…", { timeout: 20_000 });
  await post(request, secret, { id: "tx-3", type: "transaction_completed", customer: { id: "xena" }, amount: 40_000, currency: "EUR" });
  await expect(inbox.getByTestId("alerts").locator("tr", { hasText: "xena" })).toBeVisible();
  await expect(inbox.getByTestId("new-alerts")).toContainText("2 new alerts");
  await dashboardContext.setOffline(false);
  await expect(dashboard.getByTestId("live-status")).toHaveText("● Live", { timeout: 20_000 });
  await expect(dashboard.getByTestId("kpi-events")).toContainText("Events received3");
  await expect(dashboard.getByTestId("kpi-runs")).toContainText("Runs started2");
  await expect(dashboard.getByTestId("kpi-alerts")).toContainText("Open alerts2");

  // Acknowledging an alert in the inbox lowers the open count on the dashboard.
  await inbox.getByTestId("alerts").locator("tr", { hasText: "vera" }).getByRole("button", { name: "Acknowledge" }).click();
  await expect(dashboard.getByTestId("kpi-alerts")).toContainText("Open alerts1");
  // Working it took its mark; "Mark seen" takes the rest.
  await expect(inbox.getByTestId("new-alerts")).toContainText("1 new alert");
  await inbox.getByTestId("new-alerts").getByRole("button", { name: "Mark seen" }).click();
  await expect(inbox.getByTestId("new-alerts")).toHaveCount(0);
  await expect(inbox.getByTestId("alert-new")).toHaveCount(0);
  await expect(inbox.getByTestId("alerts").locator("tr", { hasText: "xena" })).toBeVisible();
  await dashboardContext.close();
});

test("the funnel shows branches: an output nobody took is no loss, drop-off is only where runs ended; a new source is named live", async ({
  page,
  request,
}) => {
  test.setTimeout(120_000);
  await loginAsAdmin(page);
  // The installation's dashboard stays open while a source it has never seen sends events.
  const dashboard = await page.context().newPage();
  await dashboard.goto("/");
  await hydrated(dashboard);
  await expect(dashboard.getByTestId("live-status")).toHaveText("● Live");

  await page.getByRole("navigation").getByRole("link", { name: "Sources" }).click();
  await hydrated(page);
  await page.getByLabel("Name", { exact: true }).fill("Store");
  await page.getByLabel("Slug (in the URL)").fill("store");
  await page.getByRole("button", { name: "Create source" }).click();
  const secret = ((await page.getByTestId("source-secret").locator("code").textContent()) ?? "").trim();
  expect(secret).toMatch(/^whsec_/);

  // A purchase over 100 alerts sales, any other tags the customer: two branches.
  const definition = {
    schema_version: 1,
    settings: { re_entry: { policy: "every_time" } },
    nodes: [
      { id: "trigger", x: 40, y: 200, type: "trigger", event: "purchase", sources: [] },
      {
        id: "check",
        x: 300,
        y: 200,
        type: "condition",
        rules: { join: "all", items: [{ operand: { kind: "event", path: "amount" }, op: "gt", value_type: "number", value: 100 }] },
      },
      { id: "vip", x: 560, y: 100, type: "alert", severity: "info", message: "{{customer.id}} spent a lot", audience: "Sales" },
      { id: "tag", x: 560, y: 300, type: "update_profile", changes: [{ action: "add_tag", tag: "small_spender" }] },
    ],
    edges: [
      { from: "trigger", port: "next", to: "check" },
      { from: "check", port: "yes", to: "vip" },
      { from: "check", port: "no", to: "tag" },
      { from: "vip", port: "next", to: "end" },
      { from: "tag", port: "next", to: "end" },
    ],
  };
  const created = await page.request.post("/api/v1/workflows", { data: { name: "Purchase branches", definition } });
  expect(created.status()).toBe(201);
  const id = (await created.json()).workflow_id as string;
  expect((await page.request.post(`/api/v1/workflows/${id}/publish`)).status()).toBe(200);

  await page.goto(`/workflows/${id}/dashboard`);
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Purchase branches — dashboard" })).toBeVisible();
  await expect(page.getByTestId("live-status")).toHaveText("● Live");
  const funnel = page.getByTestId("funnel");
  await expect(funnel.locator("tbody tr")).toHaveCount(4);

  // Two small purchases, live: both take `no`.
  for (const [n, customer] of [["1", "ann"], ["2", "ben"]]) {
    const body = JSON.stringify({ id: `p-${n}`, type: "purchase", customer: { id: customer }, amount: 40 });
    const res = await request.post("/hooks/store", {
      headers: { "Content-Type": "application/json", "Nudge-Signature": sign(secret, body) },
      data: body,
    });
    expect(res.status()).toBe(202);
  }
  const row = (node: string) => funnel.locator(`tr[data-node="${node}"]`);
  await expect(row("trigger").locator(".funnel-count")).toHaveText("2");
  await expect(row("check").locator('[data-output="no"]')).toHaveText("no 2");
  await expect(row("check").locator('[data-output="yes"]')).toHaveText("yes 0");
  // Each branch is drawn under its output, one step in.
  await expect(row("vip")).toHaveAttribute("data-depth", "1");
  await expect(row("vip").locator(".funnel-via")).toContainText("yes");
  await expect(row("tag").locator(".funnel-via")).toContainText("no");
  // The untaken `yes` branch is no loss, and neither is the condition the runs passed.
  await expect(row("vip")).toHaveClass(/untaken/);
  await expect(funnel.locator(".funnel-left")).toHaveCount(1);
  await expect(row("vip").locator(".funnel-end")).toHaveText("");
  await expect(row("check").locator(".funnel-end")).toHaveText("");
  // The runs ended after tagging: that is where they left.
  await expect(row("tag").locator(".funnel-count")).toHaveText("2");
  await expect(row("tag").locator(".funnel-left")).toHaveText("−2 ended here");

  // The dashboard that was open names the new source on the live update.
  await expect(dashboard.getByTestId("top-sources")).toContainText("Store2");
  await expect(dashboard.getByTestId("top-sources")).not.toContainText(/[0-9a-f]{8}-[0-9a-f]{4}/);
});
