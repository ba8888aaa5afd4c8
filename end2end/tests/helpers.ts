import { expect, type Page } from "@playwright/test";
import { createHmac } from "crypto";

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

/** Signs like a sender: t=<unix seconds>,v1=HMAC-SHA256(secret, "<t>.<body>"). */
export function sign(secret: string, body: string): string {
  const t = Math.floor(Date.now() / 1000);
  return `t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`;
}
