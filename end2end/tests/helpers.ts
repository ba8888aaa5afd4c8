import { expect, type Page } from "@playwright/test";

export const admin = { email: "admin@example.com", password: "correct horse battery staple" };

/** Server-rendered buttons exist before the wasm hydrates; a click then is lost. */
export async function hydrated(page: Page) {
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
}

/** Logs in as the admin, creating it first if this server is new. */
export async function loginAsAdmin(page: Page) {
  await page.goto("/");
  await hydrated(page);
  if (page.url().endsWith("/setup")) {
    await page.getByLabel("Email").fill(admin.email);
    await page.getByLabel("Password", { exact: true }).fill(admin.password);
    await page.getByLabel("Repeat the password").fill(admin.password);
    await page.getByRole("button", { name: "Create admin and log in" }).click();
  } else if (page.url().includes("/login")) {
    await page.getByLabel("Email").fill(admin.email);
    await page.getByLabel("Password", { exact: true }).fill(admin.password);
    await page.getByRole("button", { name: "Log in" }).click();
  }
  await expect(page.getByRole("heading", { name: "Dashboard" })).toBeVisible();
}
