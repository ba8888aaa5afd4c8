import { expect, test, type Page } from "@playwright/test";
import { hydrated, loginAsAdmin } from "./helpers";

/** Drags a node kind from the palette onto the canvas at (x, y) of the canvas. */
async function drop(page: Page, kind: string, x: number, y: number) {
  await page.getByTestId(`palette-${kind}`).dragTo(page.getByTestId("canvas"), { targetPosition: { x, y } });
  await expect(page.getByTestId(`node-${kind}`)).toBeVisible();
}

/** Drags from an output port to another node, as a person connects them. */
async function connect(page: Page, from: string, port: string, to: string) {
  const a = await page.getByTestId(`port-${from}-${port}`).boundingBox();
  const b = await page.getByTestId(`node-${to}`).boundingBox();
  if (!a || !b) throw new Error(`cannot see ${from}:${port} or ${to}`);
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 8 });
  await page.mouse.up();
  await expect(page.locator(`[data-edge="${from}:${port}"]`)).toHaveCount(1);
}

/** What a viewer must not be offered in the designer: nothing to publish, add, remove or save. */
async function expectNoEditing(page: Page) {
  for (const id of ["publish", "pause", "resume", "palette-offer", "save-state", "delete-node", "no-problems", "problems"]) {
    await expect(page.getByTestId(id), id).toHaveCount(0);
  }
  for (const name of ["Undo", "Redo", "Duplicate", "Delete", "Roll back", "+ Rule", "+ Group"]) {
    await expect(page.getByRole("button", { name, exact: true }), name).toHaveCount(0);
  }
  await expect(page.getByText("can be published")).toHaveCount(0);
  const inspector = page.getByTestId("inspector");
  if ((await inspector.getByTestId("canvas-hints").count()) > 0) {
    await expect(page.getByTestId("read-only-note")).toContainText("takes the editor role");
    await expect(page.getByTestId("canvas-hints")).not.toContainText("Delete");
    await expect(page.getByTestId("canvas-hints")).not.toContainText("Ctrl+D");
  }
}

async function select(page: Page, node: string) {
  await page.getByTestId(`node-${node}`).locator(".node-head").click();
  await expect(page.getByTestId("inspector").locator("code").first()).toHaveText(node);
}

// Room for the palette, a canvas of five columns and the inspector.
test.use({ viewport: { width: 1600, height: 900 } });

test("a marketer draws the abandoned-cart workflow, publishes two versions and sees the diff; a viewer cannot edit", async ({
  page,
  browser,
}) => {
  await loginAsAdmin(page);
  await page.getByRole("navigation").getByRole("link", { name: "Workflows" }).click();
  await expect(page.getByRole("heading", { name: "Workflows" })).toBeVisible();
  await hydrated(page);

  // An import that is not a workflow is refused with a clear message.
  await page.getByText("Import a workflow's JSON").click();
  await page.getByTestId("import-json").fill('{"schema_version": 1, "nodes": [{"id": "x", "type": "teleport"}], "edges": []}');
  await page.getByTestId("import").click();
  await expect(page.getByRole("alert")).toContainText("teleport");

  // From an empty canvas.
  await page.getByTestId("new-blank").click();
  await expect(page).toHaveURL(/\/workflows\/[0-9a-f-]{36}$/);
  await hydrated(page);
  await expect(page.getByText("An empty canvas")).toBeVisible();
  await page.getByTestId("workflow-name").fill("Abandoned cart");
  await page.getByRole("button", { name: "Zoom out" }).click();
  await page.getByRole("button", { name: "Zoom out" }).click();

  const inspector = page.getByTestId("inspector");
  await drop(page, "trigger", 100, 300);
  await inspector.getByLabel("Event name").fill("cart_updated");

  await drop(page, "wait_for_event", 300, 300);
  await inspector.getByLabel("Events (comma-separated").fill("checkout_started, order_completed");
  await inspector.getByLabel("Same value of").fill("cart.id");

  await drop(page, "condition", 500, 300);
  await inspector.getByTestId("add-rule").click();
  const rule = inspector.getByTestId("rule");
  await rule.getByLabel("event path").fill("cart.value");
  await rule.getByLabel("Operator").selectOption("gt");
  await rule.getByLabel("Value").fill("50");
  await rule.getByLabel("Compare as").selectOption("number");

  await drop(page, "offer", 700, 150);
  await inspector.getByLabel("Code prefix").fill("CART");

  await drop(page, "goal", 900, 150);
  await inspector.getByLabel("Conversion event").fill("order_completed");
  await inspector.getByLabel("Only when it redeems this run's offer code").check();

  await drop(page, "webhook", 700, 450);
  await inspector.getByLabel("URL").fill("https://crm.example.com/remind");
  await inspector.getByLabel("Body (JSON template)").fill('{"customer":"{{customer.id}}"}');

  await page.getByTestId("fit").click();
  await connect(page, "trigger", "next", "wait_for_event");
  await connect(page, "wait_for_event", "timed_out", "condition");
  await connect(page, "condition", "yes", "offer");
  await connect(page, "condition", "no", "webhook");
  await connect(page, "offer", "next", "goal");

  // Two outputs lead nowhere: publishing is blocked and says why.
  await page.getByTestId("canvas").click({ position: { x: 20, y: 20 } });
  const publish = page.getByTestId("publish");
  await expect(publish).toHaveText("Fix 2 problems to publish");
  await expect(publish).toBeDisabled();
  await expect(page.getByTestId("problems")).toContainText("connect the 'received' output, or end it");
  await expect(page.getByTestId("node-webhook").locator(".node-issues")).toHaveText("1");

  // End them explicitly, with the inspector's output selects.
  await select(page, "wait_for_event");
  await inspector.getByLabel("Then (received)").selectOption("end");
  await select(page, "webhook");
  await inspector.getByLabel("Then (next)").selectOption("end");
  await expect(page.getByTestId("node-webhook").locator(".node-issues")).toHaveCount(0);

  await expect(publish).toHaveText("Publish");
  await publish.click();
  await expect(page.getByTestId("notice")).toHaveText("Published version 1.");
  await expect(page.getByTestId("workflow-status")).toHaveText("Active");
  await expect(publish).toHaveText("Published");
  const url = page.url();

  // After a reload, version 1 is intact.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("active-version")).toHaveText("v1 live");
  await expect(page.getByTestId("workflow-name")).toHaveValue("Abandoned cart");
  await expect(page.locator(".node")).toHaveCount(6);
  await expect(page.locator("[data-edge]")).toHaveCount(5);
  await expect(page.getByTestId("node-offer")).toContainText("10 % off for 24 hours · codes start with CART-");
  await expect(page.getByTestId("node-condition")).toContainText("cart.value > 50");

  // Version 2: a bigger discount; the diff names the changed node.
  await select(page, "offer");
  await inspector.getByLabel("Value", { exact: true }).fill("15");
  await expect(page.getByTestId("node-offer")).toContainText("15 % off");
  await expect(page.getByTestId("save-state")).toHaveText("All changes saved");
  await expect(publish).toHaveText("Publish");
  await publish.click();
  await expect(page.getByTestId("notice")).toHaveText("Published version 2.");
  await page.getByTestId("versions").click();
  await expect(page.getByTestId("version-list")).toContainText("Version 2");
  await page.getByTestId("diff-2").click();
  const diff = page.getByTestId("diff");
  await expect(diff).toContainText("Version 1 → 2");
  await expect(diff).toContainText("Offer offer changed (settings)");
  await expect(diff.locator("li")).toHaveCount(1);

  // Undo and redo work from the keyboard.
  await page.getByTestId("versions").click();
  await select(page, "goal");
  await page.keyboard.press("Delete");
  await expect(page.getByTestId("node-goal")).toHaveCount(0);
  await page.keyboard.press("Control+z");
  await expect(page.getByTestId("node-goal")).toBeVisible();

  // A viewer sees everything and can change nothing; the server refuses too.
  const created = await page.request.post("/api/v1/users", {
    data: { email: "viewer@example.com", password: "a long viewer password", role: "viewer" },
  });
  expect(created.status()).toBe(201);
  const viewer = await browser.newPage();
  await viewer.goto("/login");
  await hydrated(viewer);
  await viewer.getByLabel("Email").fill("viewer@example.com");
  await viewer.getByLabel("Password", { exact: true }).fill("a long viewer password");
  await viewer.getByRole("button", { name: "Log in" }).click();
  await expect(viewer.getByRole("heading", { name: "Dashboard" })).toBeVisible();
  await viewer.goto(url);
  await hydrated(viewer);
  await expect(viewer.locator(".node")).toHaveCount(6);
  await expectNoEditing(viewer);
  await viewer.getByTestId("node-offer").locator(".node-head").click();
  await expect(viewer.getByTestId("inspector").getByLabel("Value", { exact: true })).toBeDisabled();
  await expectNoEditing(viewer);
  await viewer.getByTestId("node-condition").locator(".node-head").click();
  await expect(viewer.getByTestId("rule")).toHaveCount(1);
  await expect(viewer.getByTestId("inspector").getByRole("button")).toHaveCount(0);
  await viewer.keyboard.press("Delete");
  await expect(viewer.getByTestId("node-offer")).toBeVisible();
  const id = url.split("/").pop();
  const put = await viewer.request.put(`/api/v1/workflows/${id}`, { data: { revision: 1 } });
  expect(put.status()).toBe(403);
  await viewer.close();
});

/**
 * What is hard to read on the canvas at its zoom: a label or a node's face
 * cut off, lying on a node or on another label, or text under 9 px.
 */
async function readability(page: Page): Promise<string[]> {
  return page.getByTestId("canvas").evaluate((canvas) => {
    const zoom = Number(canvas.getAttribute("data-zoom"));
    const problems: string[] = [];
    const box = (el: Element) => el.getBoundingClientRect();
    const overlap = (a: DOMRect, b: DOMRect) =>
      a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    const shown = (el: Element) => el.getClientRects().length > 0;
    const nodes = [...canvas.querySelectorAll<HTMLElement>(".node")];
    const labels = [...canvas.querySelectorAll(".port-label, .edge-label")].filter(shown);
    if (labels.length === 0) problems.push("no output labels at all");
    labels.forEach((label, i) => {
      const text = label.textContent?.trim() ?? "";
      const r = box(label);
      if (label instanceof HTMLElement && label.scrollWidth > label.clientWidth) problems.push(`'${text}' is cut`);
      for (const n of nodes) {
        if (n !== label.closest(".node") && overlap(r, box(n))) problems.push(`'${text}' lies on ${n.dataset.node}`);
      }
      for (const other of labels.slice(i + 1)) {
        if (overlap(r, box(other))) problems.push(`'${text}' lies on '${other.textContent?.trim()}'`);
      }
    });
    for (const el of canvas.querySelectorAll(".node-kind, .node-summary, .port-label, .edge-label text")) {
      if (!shown(el)) continue;
      const px = parseFloat(getComputedStyle(el).fontSize) * zoom;
      if (px < 9) problems.push(`'${el.textContent?.trim()}' is ${px.toFixed(1)} px`);
    }
    for (const face of canvas.querySelectorAll<HTMLElement>(".node-summary")) {
      if (face.scrollHeight > face.clientHeight + 1) problems.push(`the face '${face.textContent}' is cut`);
    }
    return problems;
  });
}

test("a template opens at a readable zoom, every label and face whole, and scrolling pans to the rest", async ({ page }) => {
  await page.setViewportSize({ width: 1440, height: 900 });
  await loginAsAdmin(page);
  await page.getByRole("navigation").getByRole("link", { name: "Workflows" }).click();
  await hydrated(page);
  await page.getByTestId("template-abandoned_cart").click();
  await expect(page).toHaveURL(/\/workflows\/[0-9a-f-]{36}$/);
  await hydrated(page);

  const canvas = page.getByTestId("canvas");
  await expect(canvas).toHaveAttribute("data-fitted", "true");
  const zoom = Number(await canvas.getAttribute("data-zoom"));
  expect(zoom).toBeGreaterThanOrEqual(0.8);
  await expect(page.locator(".zoom-level")).toHaveText(`${Math.round(zoom * 100)} %`);
  expect(await readability(page)).toEqual([]);
  await expect(page.getByTestId("node-offer")).toContainText("10 % off for 24 hours · codes start with CART-");

  // It starts where the workflow starts; the rest is a scroll away, at the same zoom.
  await expect(page.getByTestId("node-trigger")).toBeInViewport({ ratio: 0.99 });
  await expect(page.getByTestId("node-converted")).not.toBeInViewport();
  await canvas.hover({ position: { x: 300, y: 300 } });
  await page.mouse.wheel(1000, 0);
  await expect(page.getByTestId("node-converted")).toBeInViewport({ ratio: 0.99 });
  await expect(canvas).toHaveAttribute("data-zoom", zoom.toFixed(3));
  // Ctrl+scroll still zooms, and Fit comes back to the readable start.
  await page.keyboard.down("Control");
  await page.mouse.wheel(0, 300);
  await page.keyboard.up("Control");
  expect(Number(await canvas.getAttribute("data-zoom"))).toBeLessThan(zoom);
  await page.getByTestId("fit").click();
  await expect(canvas).toHaveAttribute("data-zoom", zoom.toFixed(3));
  await expect(page.getByTestId("node-trigger")).toBeInViewport({ ratio: 0.99 });

  // A phone: the canvas keeps a usable share of the screen, as readable.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await hydrated(page);
  await expect(canvas).toHaveAttribute("data-fitted", "true");
  expect(Number(await canvas.getAttribute("data-zoom"))).toBeGreaterThanOrEqual(0.8);
  const phone = await canvas.boundingBox();
  expect(phone?.width).toBeGreaterThan(380);
  expect(phone?.height).toBeGreaterThan(300);
  await expect(page.getByTestId("node-trigger")).toBeInViewport({ ratio: 0.99 });
  expect(await readability(page)).toEqual([]);
});
