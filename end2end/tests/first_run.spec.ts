import { expect, test } from "@playwright/test";
import { admin, hydrated, loginAsAdmin } from "./helpers";

// One story, in order, against a fresh server: the first admin is created,
// logs out, mistypes the password, logs in and reaches the dashboard.
test.describe.configure({ mode: "serial" });

const { email, password } = admin;

test("a new installation sends the browser to set-up and creates the admin", async ({ page }) => {
  await page.goto("/");
  await expect(page).toHaveURL(/\/setup$/);
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Create the first admin" })).toBeVisible();

  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByLabel("Repeat the password").fill("something else entirely");
  await page.getByRole("button", { name: "Create admin and log in" }).click();
  await expect(page.getByRole("alert")).toHaveText("The two passwords differ.");

  await page.getByLabel("Repeat the password").fill(password);
  await page.getByRole("button", { name: "Create admin and log in" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
  await expect(page.getByTestId("whoami")).toContainText(email);
  await expect(page.getByTestId("whoami")).toContainText("Admin");
});

test("log out, a wrong password is refused, the right one opens the dashboard", async ({ page }) => {
  // The earlier test's session lives in its own browser context; log in afresh.
  await page.goto("/settings");
  await expect(page).toHaveURL(/\/login\?next=\/settings$/);
  await hydrated(page);

  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Wrong email or password.");

  // A client-side-only reaction proves hydration: the password can be revealed.
  const field = page.getByLabel("Password", { exact: true });
  await expect(field).toHaveAttribute("type", "password");
  await page.getByRole("button", { name: "Show password" }).click();
  await expect(field).toHaveAttribute("type", "text");

  await field.fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(/\/settings$/);
  await expect(page.getByRole("heading", { name: "Settings" })).toBeVisible();

  await page.getByRole("navigation").getByRole("link", { name: "Dashboard" }).click();
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
  await expect(page.getByTestId("system-status")).toContainText("sqlite");
  // Before hydration the button is a plain form, and the click a full page load.
  await hydrated(page);

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto("/");
  await expect(page).toHaveURL(/\/login$/);
});

test("an admin creates an API key, sees it once, and it authenticates the API", async ({ page, request }) => {
  await loginAsAdmin(page);

  await page.getByRole("navigation").getByRole("link", { name: "Settings" }).click();
  const keys = page.getByTestId("api-keys");
  await expect(keys).toContainText("No API keys yet.");
  await keys.getByLabel("Name").fill("e2e reader");
  await keys.getByLabel("Role").selectOption("viewer");
  await keys.getByRole("button", { name: "Create key" }).click();
  const secret = (await page.getByTestId("new-api-key").locator("code").textContent())?.trim() ?? "";
  expect(secret).toMatch(/^nudge_[0-9a-f]{64}$/);
  await expect(keys.locator("tbody tr")).toHaveCount(1);
  await expect(keys.locator("tbody")).toContainText("e2e reader");

  const me = await request.get("/api/v1/me", { headers: { Authorization: `Bearer ${secret}` } });
  expect(me.status()).toBe(200);
  expect(await me.json()).toMatchObject({ kind: "api_key", name: "e2e reader", role: "viewer" });
  const denied = await request.post("/api/v1/api-keys", {
    headers: { Authorization: `Bearer ${secret}` },
    data: { name: "escalate", role: "admin" },
  });
  expect(denied.status()).toBe(403);

  page.once("dialog", (dialog) => dialog.accept());
  await keys.getByRole("button", { name: "Revoke" }).click();
  await expect(keys.locator("tbody")).toContainText("revoked");
  const after = await request.get("/api/v1/me", { headers: { Authorization: `Bearer ${secret}` } });
  expect(after.status()).toBe(401);
});

test("unknown pages answer 404 with a way back", async ({ page }) => {
  await loginAsAdmin(page);
  const res = await page.goto("/no/such/page");
  expect(res?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
});
