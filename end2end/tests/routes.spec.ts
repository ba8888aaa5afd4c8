import { expect, test, type Browser, type Page } from "@playwright/test";
import { admin, hydrated, loginAsAdmin, sign } from "./helpers";

// Every route opened directly (a reload, a bookmark, a redirect after login),
// several times, as an admin and as a viewer: a page whose server HTML and
// first browser render differ panics in hydration on some of these loads only,
// and is then dead (no navigation, missing sections). Any console error or
// uncaught exception fails the test.
test.describe.configure({ mode: "serial" });

const viewer = { email: "route-viewer@example.com", password: "a viewer's long password" };
const LOADS = 3;

type Fixture = { workflowId: string; runId: string; customerId: string; slug: string };
let fixture: Fixture;

/** Collects console errors and uncaught exceptions of a page. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`exception: ${err.message}`));
  return problems;
}

async function login(page: Page, who: { email: string; password: string }) {
  await page.goto("/login");
  await hydrated(page);
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password", { exact: true }).fill(who.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
}

/** A source, a published workflow with a run (and a failing webhook), a customer, a viewer. */
async function makeFixture(browser: Browser): Promise<Fixture> {
  const page = await browser.newPage();
  await loginAsAdmin(page);
  const api = page.request;
  const slug = "route-check";
  let res = await api.post("/api/v1/sources", {
    data: {
      name: "Route check",
      slug,
      mapping: { event_name: "$.type", customer_id: "$.customer.id", event_id: "$.id" },
    },
  });
  expect(res.status()).toBe(201);
  const { secret } = await res.json();

  res = await api.post("/api/v1/workflows", { data: { template: "low_inventory", name: "Route check stock" } });
  expect(res.status()).toBe(201);
  const workflowId: string = (await res.json()).workflow_id;
  res = await api.post(`/api/v1/workflows/${workflowId}/publish`);
  expect(res.status()).toBe(200);

  const customerId = "route-customer";
  const body = JSON.stringify({
    id: "route-e1",
    type: "inventory_updated",
    customer: { id: customerId },
    stock: 3,
    sku: "TEE-1",
    store: "Leeds",
  });
  res = await api.post(`/hooks/${slug}`, {
    headers: { "Content-Type": "application/json", "Nudge-Signature": sign(secret, body) },
    data: body,
  });
  expect(res.status()).toBe(202);

  let runId = "";
  await expect
    .poll(async () => {
      const page = await (await api.get(`/api/v1/runs?workflow=${workflowId}`)).json();
      runId = page.items?.[0]?.run_id ?? "";
      return runId;
    })
    .not.toBe("");

  res = await api.post("/api/v1/users", { data: { ...viewer, role: "viewer" } });
  expect([201, 409]).toContain(res.status());
  await page.close();
  return { workflowId, runId, customerId, slug };
}

function routes(f: Fixture): string[] {
  return [
    "/",
    "/workflows",
    `/workflows/${f.workflowId}`,
    `/workflows/${f.workflowId}/dashboard`,
    "/runs",
    `/runs/${f.runId}`,
    "/sources",
    `/sources/${f.slug}`,
    "/events",
    `/customers/${f.customerId}`,
    "/alerts",
    "/settings",
  ];
}

test.beforeAll(async ({ browser }) => {
  fixture = await makeFixture(browser);
});

for (const role of ["admin", "viewer"] as const) {
  test(`every route opened directly as ${role} hydrates without an error, ${LOADS} times each`, async ({ page }) => {
    test.setTimeout(240_000);
    const problems = watch(page);
    await login(page, role === "admin" ? admin : viewer);
    for (const route of routes(fixture)) {
      for (let i = 0; i < LOADS; i++) {
        await page.goto(route);
        await hydrated(page);
        await expect(page.locator("main.content > *").first()).toBeVisible();
        // Let late resources resolve and render before judging the load.
        await page.waitForLoadState("networkidle").catch(() => {});
        expect(problems, `${route}, load ${i + 1}`).toEqual([]);
      }
      // A page that panicked in hydration looks fine but no longer navigates.
      const target = route === "/runs" ? "Alerts" : "Runs";
      await page.getByRole("navigation").getByRole("link", { name: target, exact: true }).click();
      await expect(page).toHaveURL(new RegExp(`/${target.toLowerCase()}$`));
      await expect(page.getByRole("heading", { name: target, exact: false }).first()).toBeVisible();
      expect(problems, `${route}, then the navigation`).toEqual([]);
    }

    // What a role may do is shown to it, and only that.
    await page.goto("/workflows");
    await hydrated(page);
    const newWorkflow = page.getByRole("heading", { name: "New workflow" });
    const newSource = () => page.getByRole("heading", { name: "New source" });
    if (role === "admin") {
      await expect(newWorkflow).toBeVisible();
      await page.goto("/sources");
      await hydrated(page);
      await expect(newSource()).toBeVisible();
    } else {
      await expect(page.getByTestId("workflows")).toBeVisible();
      await expect(newWorkflow).toHaveCount(0);
      await page.goto("/sources");
      await hydrated(page);
      await expect(page.getByTestId("sources")).toBeVisible();
      await expect(newSource()).toHaveCount(0);
      await page.goto(`/sources/${fixture.slug}`);
      await hydrated(page);
      await expect(page.getByTestId("mapping-facts")).toContainText("$.customer.id");
      for (const name of ["Rotate secret", "Disable", "Send test event", "Save mapping", "Delete source"]) {
        await expect(page.getByRole("button", { name })).toHaveCount(0);
      }
    }
    expect(problems).toEqual([]);
  });
}

test("a bookmark to /workflows while logged out: log in, land on the page alive", async ({ page }) => {
  const problems = watch(page);
  for (let i = 0; i < LOADS; i++) {
    await page.context().clearCookies();
    await page.goto("/workflows");
    await expect(page).toHaveURL(/\/login\?next=\/workflows$/);
    await hydrated(page);
    await page.getByLabel("Email").fill(admin.email);
    await page.getByLabel("Password", { exact: true }).fill(admin.password);
    await page.getByRole("button", { name: "Log in" }).click();
    await expect(page).toHaveURL(/\/workflows$/);
    await hydrated(page);
    await expect(page.getByRole("heading", { name: "New workflow" })).toBeVisible();
    await expect(page.getByTestId("template-abandoned_cart")).toBeVisible();
    await page.getByRole("navigation").getByRole("link", { name: "Sources" }).click();
    await expect(page).toHaveURL(/\/sources$/);
    expect(problems, `login ${i + 1}`).toEqual([]);
  }
});

test("the login page and an unknown address load without an error", async ({ page }) => {
  const problems = watch(page);
  await page.goto("/login");
  await hydrated(page);
  await expect(page.getByRole("button", { name: "Log in" })).toBeVisible();
  await login(page, admin);
  const res = await page.goto("/no/such/page");
  expect(res?.status()).toBe(404);
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  // The browser itself reports the 404 document; nothing else may complain.
  expect(problems.filter((p) => !p.includes("404"))).toEqual([]);
});
