import { expect, test } from "@playwright/test";
import { execFileSync } from "child_process";
import { hydrated, loginAsAdmin, sign } from "./helpers";

test("a source receives signed events, shows them, and replays a dead letter once fixed", async ({ page, request }) => {
  await loginAsAdmin(page);
  await page.getByRole("navigation").getByRole("link", { name: "Sources" }).click();
  await expect(page.getByRole("heading", { name: "Sources" })).toBeVisible();
  await hydrated(page);

  // Create the source; the secret is shown once.
  await page.getByLabel("Name", { exact: true }).fill("Web shop");
  await page.getByLabel("Slug (in the URL)").fill("web-shop");
  await page.getByLabel("Profile attributes").fill("email = $.customer.email");
  await page.getByRole("button", { name: "Create source" }).click();
  const secret = ((await page.getByTestId("source-secret").locator("code").textContent()) ?? "").trim();
  expect(secret).toMatch(/^whsec_[0-9a-f]{48}$/);
  await expect(page.getByTestId("sources")).toContainText("/hooks/web-shop");

  // Its page offers a signed curl example that works as it is.
  await page.getByRole("link", { name: "Open the source" }).click();
  await expect(page.getByRole("heading", { name: /Web shop/ })).toBeVisible();
  await hydrated(page);
  const curl = page.getByTestId("curl-example");
  await expect(curl).toContainText("/hooks/web-shop");
  await expect(curl).toContainText("Nudge-Signature: t=");
  const command = (await curl.textContent()) ?? "";
  const out = execFileSync("bash", ["-c", command.replace(/^curl /, "curl -s -w '\\n%{http_code}' ")]).toString();
  expect(out.trim().split("\n").pop()).toBe("202");

  // With the events explorer open and live, a sender posts a signed event
  // through the real endpoint: it appears without a reload.
  await page.getByRole("navigation").getByRole("link", { name: "Events" }).click();
  await expect(page.getByTestId("live-status")).toHaveText("● Live");
  const events = page.getByTestId("events");
  await expect(events).not.toContainText("order-1");
  const body = JSON.stringify({ id: "order-1", type: "cart_updated", customer: { id: "cust-42", email: "ana@example.com" }, cart_value: 120 });
  const res = await request.post("/hooks/web-shop", {
    headers: { "Content-Type": "application/json", "Nudge-Signature": sign(secret, body) },
    data: body,
  });
  expect(res.status()).toBe(202);
  expect(await res.json()).toMatchObject({ status: "accepted", event_id: "order-1" });
  await expect(events).toContainText("order-1");
  await expect(events).toContainText("cart_updated");

  // Its payload opens in place; the customer's page has the mapped email.
  await hydrated(page);
  await events.getByText("order-1").click();
  await expect(page.locator("tr.payload-row")).toContainText('"cart_value": 120');
  await events.getByRole("link", { name: "cust-42" }).click();
  await expect(page.getByRole("heading", { name: "cust-42" })).toBeVisible();
  await expect(page.getByTestId("customer-profile")).toContainText("ana@example.com");

  // An event the mapping cannot read is refused with the path named and kept.
  const bad = JSON.stringify({ id: "order-2", type: "order_completed", buyer: { id: "cust-43" } });
  const rejected = await request.post("/hooks/web-shop", {
    headers: { "Content-Type": "application/json", "Nudge-Signature": sign(secret, bad) },
    data: bad,
  });
  expect(rejected.status()).toBe(422);
  expect((await rejected.json()).detail).toContain("$.customer.id");

  await page.goto("/sources/web-shop");
  await hydrated(page);
  const letters = page.getByTestId("dead-letters");
  await expect(letters).toContainText("$.customer.id is missing");
  await page.getByLabel("Customer id").fill("$.buyer.id");
  await page.getByRole("button", { name: "Save mapping" }).click();
  await expect(page.getByText("Saved.")).toBeVisible();
  await letters.getByRole("button", { name: "Replay" }).click();
  await expect(letters).toContainText("Replayed as event");
  await expect(letters).toContainText("replayed:");
  await expect(page.getByTestId("source-counters")).toContainText("3 accepted");

  await page.goto("/events?customer=cust-43");
  await expect(page.getByTestId("events")).toContainText("order_completed");
});

test("the new-source form checks its fields in the browser and says what is wrong beside each one", async ({ page }) => {
  await loginAsAdmin(page);
  await page.goto("/sources");
  await hydrated(page);
  const form = page.locator("form.source-form");
  const input = (name: string) => form.locator(`input[name="${name}"]`);
  const note = (name: string) => form.locator(`[data-field="${name}"]`);
  const create = page.getByRole("button", { name: "Create source" });

  // Empty required fields: a message beside each, nothing sent.
  await input("event_name").fill("");
  await create.click();
  await expect(note("name")).toHaveText("Required.");
  await expect(note("slug")).toHaveText("Required.");
  await expect(note("event_name")).toHaveText("Required.");
  await input("name").fill("Check shop");
  await expect(note("name")).toHaveCount(0);

  // The slug's pattern runs in the browser (it compiles under the v flag).
  await input("slug").fill("Bad Slug!");
  await input("event_name").fill("$.type");
  expect(await input("slug").evaluate((el: HTMLInputElement) => el.validity.patternMismatch)).toBe(true);
  await create.click();
  await expect(note("slug")).toContainText("Lower-case letters, digits");
  await expect(page.getByTestId("source-secret")).toHaveCount(0);

  // A path the server refuses is named, beside its field.
  await input("slug").fill("check-shop");
  await expect(note("slug")).toHaveCount(0);
  await input("customer_id").fill("$..[[");
  await create.click();
  await expect(note("customer_id")).toHaveText("Customer id: '$..[[' has an empty segment.");
  await expect(page.getByTestId("source-secret")).toHaveCount(0);

  // Fixed, it is created.
  await input("customer_id").fill("$.customer.id");
  await create.click();
  await expect(page.getByTestId("source-secret")).toBeVisible();
  await expect(page.getByTestId("sources")).toContainText("/hooks/check-shop");
});
