/**
 * The page in a real browser: Debian's chromium driven by playwright-core against an all-in-one
 * broker (in-process hub, real agents with the sim driver, real clock). Hosts and leases appear;
 * a lease submitted over gRPC shows up without a reload; the label filter narrows the host list;
 * with 1,000 hosts the list stays virtual (a few dozen rows in the DOM). A screenshot is saved to
 * test-artifacts/dashboard.png.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SimAgents, startSimAgents } from "../../broker/all-in-one.js";
import { Broker } from "../../broker/broker.js";
import { leaseSpec, startDashboardBroker } from "../../broker/dashboard/test-support.js";
import { InProcessHub } from "../../bus/index.js";
import { RealClock, silentLogger } from "../../core/index.js";
import { BrokerApi, HOUR, immediate, reserved } from "../broker/harness.js";
import { CHROMIUM, requireBinary } from "../helpers/index.js";

const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-artifacts");
const HOSTS = 24;
/** Bound on each wait in the page (the machine is shared; nothing here measures speed). */
const WAIT_MS = 15_000;

let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: requireBinary(CHROMIUM),
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
    ],
    timeout: 30_000,
  });
});
afterAll(async () => {
  await browser?.close();
});

/** A page that fails the test on any script error. */
async function openPage(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  await page.goto(url);
  return { page, errors };
}

describe("the dashboard page", () => {
  it("shows hosts and leases, and a new lease without a reload", async () => {
    const clock = new RealClock();
    const logger = silentLogger();
    const hub = new InProcessHub({ clock, logger });
    const broker = new Broker({
      clock,
      logger,
      grpcAddress: "127.0.0.1:0",
      httpAddress: "127.0.0.1:0",
      bus: hub.connect("broker"),
    });
    let agents: SimAgents | undefined;
    let api: BrokerApi | undefined;
    try {
      const grpcPort = await broker.start();
      agents = await startSimAgents({
        count: HOSTS,
        cpus: 16,
        memoryGib: 64,
        clock,
        logger,
        connect: (hostId) => hub.connect(hostId),
      });
      api = new BrokerApi(`127.0.0.1:${grpcPort}`);
      const client = api;
      const now = Date.now();
      await client.submit({ spec: immediate({ memoryGib: 16, cpus: 8 }, 2 * HOUR) });
      await client.submit({ spec: immediate({ memoryGib: 8, cpus: 4 }, 5 * HOUR) });
      await client.submit({
        spec: reserved({ memoryGib: 32, cpus: 16 }, now + 3 * HOUR, 6 * HOUR),
      });

      const { page, errors } = await openPage(broker.dashboard?.url ?? "");
      await page
        .locator("#host-count")
        .filter({ hasText: `(${HOSTS})` })
        .waitFor({ timeout: WAIT_MS });
      await page.locator("#lease-live").filter({ hasText: /^3$/ }).waitFor({ timeout: WAIT_MS });
      await page.locator('#gantt[data-leases="3"]').waitFor({ timeout: WAIT_MS });
      expect(await page.locator("[data-host]").count()).toBeGreaterThan(5);
      expect(
        await page.locator('[data-resource="cpu"] [data-field="allocated"]').textContent(),
      ).toBe("12 cores");
      await page.locator("#conn[data-state='live']").waitFor({ timeout: WAIT_MS });
      await page.locator("#forecast canvas").first().waitFor({ timeout: WAIT_MS });

      // A lease submitted now reaches the open page through the event stream, not a reload.
      const navigations: string[] = [];
      page.on("framenavigated", (frame) => navigations.push(frame.url()));
      // A string, evaluated in the page (this project's types have no DOM).
      await page.evaluate('document.body.dataset.marker = "before-submit"');
      const submitted = await client.submit({ spec: immediate({ memoryGib: 4, cpus: 2 }, HOUR) });
      const hostId = submitted.lease?.hostId ?? "";
      expect(hostId).toMatch(/^sim-/);
      await page.locator("#lease-live").filter({ hasText: /^4$/ }).waitFor({ timeout: WAIT_MS });
      await page.locator('#gantt[data-leases="4"]').waitFor({ timeout: WAIT_MS });
      expect(await page.evaluate("document.body.dataset.marker")).toBe("before-submit");
      expect(navigations).toEqual([]);
      expect(
        await page.locator('[data-resource="cpu"] [data-field="allocated"]').textContent(),
      ).toBe("14 cores");

      // Filter by label: a third of the hosts are in zone-a.
      await page.locator("#host-filter").fill("zone=zone-a");
      await page
        .locator("#host-count")
        .filter({ hasText: `(${HOSTS / 3} of ${HOSTS})` })
        .waitFor({
          timeout: WAIT_MS,
        });
      const zones = await page.locator("[data-host] .labels").allInnerTexts();
      expect(zones.length).toBe(HOSTS / 3);
      for (const labels of zones) expect(labels).toContain("zone=zone-a");
      // …and by state: one host cordoned.
      await broker.hosts.cordon("sim-05");
      await page.locator("#host-filter").fill("state=cordoned");
      await page
        .locator("#host-count")
        .filter({ hasText: `(1 of ${HOSTS})` })
        .waitFor({
          timeout: WAIT_MS,
        });
      expect(await page.locator("[data-host]").getAttribute("data-host")).toBe("sim-05");
      await page.locator("#host-filter").fill("");

      // Sort by leases, busiest first: the top row holds leases.
      await page.locator("#host-sort").selectOption("leases");
      await page.locator("#sort-dir").click();
      const top = page.locator("[data-host]").first();
      await expect
        .poll(async () => Number(await top.locator('[data-field="leases"]').textContent()), {
          timeout: WAIT_MS,
        })
        .toBeGreaterThan(0);

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      api?.raw.close();
      await agents?.stop();
      await broker.stop(1000);
    }
  });

  it("keeps the host list virtual with 1,000 hosts", async () => {
    const dash = await startDashboardBroker({ clock: new RealClock(), hosts: 1000 });
    try {
      for (let i = 0; i < 50; i++) {
        await dash.broker.leases.submit(leaseSpec({ cpus: 4 }));
      }
      const { page, errors } = await openPage(`${dash.base}/`);
      await page.locator("#host-count").filter({ hasText: "(1000)" }).waitFor({ timeout: WAIT_MS });
      await page.locator('#gantt[data-leases="50"]').waitFor({ timeout: WAIT_MS });
      // Only the rows in view (plus a small overscan) exist; scrolling brings others in.
      expect(await page.locator("[data-host]").count()).toBeLessThan(60);
      await page.locator("#hosts").evaluate((el) => {
        el.scrollTop = el.scrollHeight;
      });
      await page.locator('[data-host="sim-1000"]').waitFor({ timeout: WAIT_MS });
      expect(await page.locator("[data-host]").count()).toBeLessThan(60);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await dash.stop();
    }
  });
});
