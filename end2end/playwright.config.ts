import { defineConfig, devices } from "@playwright/test";
import * as os from "os";
import * as path from "path";

// A throw-away data folder per run: the server starts on an empty database.
const dataDir = path.join(os.tmpdir(), `nudge-e2e-${process.pid}-${Date.now()}`);
const port = Number(process.env.NUDGE_E2E_PORT ?? 3199);

export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  // `list` never serves a report and so never hangs CI.
  reporter: "list",
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "off",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  projects: [{ name: "chromium", use: { ...devices["Desktop Chrome"] } }],
  webServer: {
    command: process.env.NUDGE_BIN ?? "target/release/nudge",
    cwd: "..",
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      NUDGE_ADDR: `127.0.0.1:${port}`,
      NUDGE_DATA_DIR: dataDir,
      LEPTOS_SITE_ROOT: "target/site",
      NUDGE_LOG: "warn",
      // A webhook to a closed port fails for good within seconds (runs.spec.ts).
      NUDGE_WEBHOOK_MAX_ATTEMPTS: "2",
    },
  },
});
