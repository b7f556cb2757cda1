// @ts-check
/**
 * The capacity dashboard page: one Server-Sent Events stream (`/api/v1/events`) feeds every
 * panel. `snapshot` events (at most 2 a second, coalesced by the server) carry capacity, hosts,
 * the next 24 h of leases, migrations and the autoscale signal; `forecast` events the 7-day
 * buckets. Drawing is cheap at 1,000 hosts: the host list renders only its visible rows, the lease
 * timeline is one canvas that draws only the visible rows, and a burst of events costs one frame.
 *
 * Shapes are the JSON API's (broker/dashboard/cluster-view.ts, server.ts); amounts are in base
 * units: cpu cores, memory and disk bytes, gpus counts.
 */
// Relative paths throughout, so that the page also works behind a proxy under a path prefix.
import uPlot from "../vendor/uplot.esm.js";

/** @typedef {Record<string, number>} Amounts */
/**
 * @typedef {{ id: string, state: string, cordoned: boolean, labels: Record<string, string>,
 *   allocatable: Amounts, allocated: Amounts, peak24h: Amounts, leases: number }} HostRow
 */
/**
 * @typedef {{ id: string, hostId: string, state: string, start: number, end: number,
 *   tenant: string, name: string, window: string, resources: Amounts }} LeaseBar
 */
/**
 * @typedef {{ resource: string, unit: string, capacity: number, allocatable: number,
 *   allocated: number, free: number, reservedFuture: number }} ResourceCapacity
 */
/**
 * @typedef {{ id: string, leaseId: string, sourceHostId: string, targetHostId: string,
 *   state: string, progress: number, reason: string, startedAt: number }} MigrationView
 */
/**
 * @typedef {{ at: number,
 *   capacity: { hosts: { total: number, byState: Record<string, number> }, resources: ResourceCapacity[] },
 *   hosts: HostRow[],
 *   leases: { from: number, to: number, leases: LeaseBar[], byState: Record<string, number> },
 *   migrations: { attached: boolean, migrations: MigrationView[] },
 *   autoscale: { attached: boolean, signal: null | { at: number, direction: string, hostsDelta: number, reason: string, resource?: string } } }} Snapshot
 */
/**
 * @typedef {{ at: number, bucketMs: number, buckets: { start: number, end: number, hosts: number,
 *   allocatable: Amounts, allocated: Amounts, free: Amounts }[] }} Forecast
 */

const HOUR = 3_600_000;
const GIB = 1024 ** 3;
const ROW = 24;
const GANTT_ROW = 18;
const GANTT_AXIS = 22;
const GANTT_LABEL = 110;
const HOST_STATE_ORDER = ["DOWN", "SUSPECT", "DRAINING", "CORDONED", "READY"];
const BAR_COLOURS = /** @type {Record<string, string>} */ ({
  ACTIVE: "#2e9d5b",
  STARTING: "#3b73d9",
  RESERVED: "#f0b429",
  ENDING: "#9aa1ae",
  MIGRATING: "#8256d0",
  SUSPENDED: "#6b7fa8",
});

/** @param {string} id */
function $(id) {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from the page`);
  return el;
}

/** Last HTML written per element: an unchanged panel is not rewritten (nor re-laid-out, repainted). */
const written = new WeakMap();

/** @param {Element} el @param {string} html */
function setHtml(el, html) {
  if (written.get(el) === html) return;
  written.set(el, html);
  el.innerHTML = html;
}

/** @param {string} resource @param {number} value */
function fmt(resource, value) {
  if (resource === "memory" || resource === "disk") {
    const gib = value / GIB;
    return gib >= 1024 ? `${(gib / 1024).toFixed(1)} TiB` : `${gib.toFixed(gib < 10 ? 1 : 0)} GiB`;
  }
  if (resource === "cpu") {
    if (value >= 10_000)
      return `${Number((value / 1000).toFixed(value >= 100_000 ? 0 : 1))}k cores`;
    return `${Number.isInteger(value) ? value : value.toFixed(1)} cores`;
  }
  return String(Math.round(value * 100) / 100);
}

/** @param {number} used @param {number} total */
function ratio(used, total) {
  return total > 0 ? used / total : 0;
}

/** @param {number} r */
function meter(r) {
  const pct = Math.round(r * 100);
  const cls = r >= 0.95 ? "full" : r >= 0.8 ? "hi" : "";
  return `<div class="meter"><div class="bar"><i class="${cls}" style="width:${Math.min(100, pct)}%"></i></div><span>${pct}%</span></div>`;
}

/** @param {string} text */
function esc(text) {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}

/** @param {number} t */
function clock(t) {
  return new Date(t).toISOString().slice(11, 16);
}

// ── state ──────────────────────────────────────────────────────────────────────────────────

const state = {
  /** @type {Snapshot | null} */ snapshot: null,
  /** @type {Forecast | null} */ forecast: null,
  /** Hosts after filter and sort: both the list and the timeline show them in this order. */
  /** @type {HostRow[]} */ shown: [],
  /** @type {Map<string, LeaseBar[]>} */ byHost: new Map(),
  sortKey: "id",
  sortDesc: false,
  filter: "",
  /** The timeline's view: [viewStart, viewStart + viewSpan). */
  viewStart: 0,
  viewSpan: 24 * HOUR,
  /** True once the user moved the view (then pushes no longer reset it). */
  viewMoved: false,
  /** Server time minus browser time, from the last snapshot. */
  skew: 0,
  snapshots: 0,
};

// ── filter and sort ────────────────────────────────────────────────────────────────────────

/**
 * "zone=zone-a, rack!=rack-2 web": every term must hold; `k=v` and `k!=v` test labels (and
 * `state=down` the host's state), other text must appear in the host id or a label.
 * @param {string} text
 * @returns {(h: HostRow) => boolean}
 */
function parseFilter(text) {
  const terms = text
    .split(/[\s,]+/)
    .map((t) => t.trim())
    .filter((t) => t !== "");
  /** @type {((h: HostRow) => boolean)[]} */
  const tests = terms.map((term) => {
    const m = /^([^!=]+)(!?=)(.*)$/.exec(term);
    if (m !== null) {
      const [, key = "", op, value = ""] = m;
      // `state=down` tests the host's state; other keys its labels.
      /** @type {(h: HostRow) => string | undefined} */
      const get = key === "state" ? (h) => h.state.toLowerCase() : (h) => h.labels[key];
      const want = key === "state" ? value.toLowerCase() : value;
      return op === "=" ? (h) => get(h) === want : (h) => get(h) !== want;
    }
    const needle = term.toLowerCase();
    return (h) =>
      h.id.toLowerCase().includes(needle) ||
      Object.entries(h.labels).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(needle));
  });
  return (h) => tests.every((t) => t(h));
}

/** @param {string} key @returns {(h: HostRow) => number | string} */
function sortValue(key) {
  switch (key) {
    case "state":
      return (h) => HOST_STATE_ORDER.indexOf(h.state);
    case "cpu":
      return (h) => ratio(h.allocated.cpu ?? 0, h.allocatable.cpu ?? 0);
    case "memory":
      return (h) => ratio(h.allocated.memory ?? 0, h.allocatable.memory ?? 0);
    case "peak":
      return (h) => ratio(h.peak24h.cpu ?? 0, h.allocatable.cpu ?? 0);
    case "leases":
      return (h) => h.leases;
    default:
      return (h) => h.id;
  }
}

function reshape() {
  const snap = state.snapshot;
  if (snap === null) return;
  const keep = parseFilter(state.filter);
  const value = sortValue(state.sortKey);
  const dir = state.sortDesc ? -1 : 1;
  state.shown = snap.hosts
    .filter(keep)
    .map((h) => ({ h, v: value(h) }))
    .sort((a, b) => (a.v < b.v ? -dir : a.v > b.v ? dir : a.h.id < b.h.id ? -1 : 1))
    .map((x) => x.h);
  state.byHost = new Map();
  for (const lease of snap.leases.leases) {
    if (lease.hostId === "") continue;
    let list = state.byHost.get(lease.hostId);
    if (list === undefined) {
      list = [];
      state.byHost.set(lease.hostId, list);
    }
    list.push(lease);
  }
}

// ── panels ─────────────────────────────────────────────────────────────────────────────────

/** @param {Snapshot} snap */
function renderCapacity(snap) {
  const names = /** @type {Record<string, string>} */ ({
    cpu: "CPU",
    memory: "Memory",
    disk: "Disk",
    gpu: "GPU",
  });
  // A resource no host has (GPUs on a CPU cluster) gets no card.
  const shown = snap.capacity.resources.filter((r) => r.capacity > 0 || r.resource === "cpu");
  const cards = shown.map((r) => {
    const used = ratio(r.allocated, r.allocatable);
    return `<div class="card" data-resource="${esc(r.resource)}">
      <h2>${esc(names[r.resource] ?? r.resource)}</h2>
      <div class="big">${Math.round(used * 100)}% <small class="muted">committed</small></div>
      ${meter(used)}
      <dl>
        <dt>allocated</dt><dd data-field="allocated">${fmt(r.resource, r.allocated)}</dd>
        <dt>allocatable</dt><dd>${fmt(r.resource, r.allocatable)}</dd>
        <dt>free (ready hosts)</dt><dd>${fmt(r.resource, r.free)}</dd>
        <dt>reserved ahead</dt><dd>${fmt(r.resource, r.reservedFuture)}</dd>
        <dt>raw capacity</dt><dd>${fmt(r.resource, r.capacity)}</dd>
      </dl></div>`;
  });
  const by = snap.capacity.hosts.byState;
  cards.unshift(`<div class="card"><h2>Hosts</h2>
    <div class="big" id="hosts-total">${snap.capacity.hosts.total}</div>
    <dl>${HOST_STATE_ORDER.slice()
      .reverse()
      .map(
        (s) => `<dt><span class="state ${s}">${s.toLowerCase()}</span></dt><dd>${by[s] ?? 0}</dd>`,
      )
      .join("")}</dl></div>`);
  setHtml($("capacity"), cards.join(""));
}

/** @param {Snapshot} snap */
function renderSummary(snap) {
  const order = ["PENDING", "RESERVED", "STARTING", "ACTIVE", "MIGRATING", "SUSPENDED", "ENDING"];
  const by = snap.leases.byState;
  const live = order.reduce((n, s) => n + (by[s] ?? 0), 0);
  const ended = Object.entries(by)
    .filter(([s]) => !order.includes(s))
    .reduce((n, [, c]) => n + c, 0);
  const el = $("lease-summary");
  el.dataset.live = String(live);
  setHtml(
    el,
    [
      `<span>live <b id="lease-live">${live}</b></span>`,
      ...order.map((s) => `<span>${s.toLowerCase()} <b data-state="${s}">${by[s] ?? 0}</b></span>`),
      `<span class="muted">finished ${ended}</span>`,
    ].join(""),
  );
}

/** @param {Snapshot} snap */
function renderMigrations(snap) {
  const el = $("migrations");
  const m = snap.migrations;
  if (!m.attached) {
    el.className = "muted";
    setHtml(el, "No migrations: this broker has no migration orchestrator yet.");
    return;
  }
  const flying = m.migrations.filter((x) => x.state !== "COMPLETED" && x.state !== "ABORTED");
  if (flying.length === 0) {
    el.className = "muted";
    setHtml(el, "No migrations in flight.");
    return;
  }
  el.className = "";
  setHtml(
    el,
    `<table class="mig"><tbody>${flying
      .slice(0, 50)
      .map(
        (x) =>
          `<tr><td>${esc(x.leaseId)}</td><td>${esc(x.sourceHostId)} → ${esc(x.targetHostId)}</td><td>${esc(x.state.toLowerCase())}</td><td style="width:30%">${meter(x.progress)}</td><td class="muted">${esc(x.reason)}</td></tr>`,
      )
      .join(
        "",
      )}</tbody></table>${flying.length > 50 ? `<div class="muted">and ${flying.length - 50} more</div>` : ""}`,
  );
}

/** @param {Snapshot} snap */
function renderAutoscale(snap) {
  const el = $("autoscale");
  const a = snap.autoscale;
  if (!a.attached || a.signal === null) {
    el.className = "muted";
    setHtml(
      el,
      a.attached
        ? "No signal: capacity is in balance."
        : "No signal: this broker has no autoscaling hook yet.",
    );
    return;
  }
  const s = a.signal;
  el.className = "";
  const what =
    s.direction === "up"
      ? `scale up by ${s.hostsDelta} host${s.hostsDelta === 1 ? "" : "s"}`
      : s.direction === "down"
        ? `scale down by ${-s.hostsDelta} host${s.hostsDelta === -1 ? "" : "s"}`
        : "no change";
  setHtml(
    el,
    `<div class="big">${esc(what)}</div><div>${esc(s.reason)}</div><div class="muted">at ${esc(new Date(s.at).toISOString())}${s.resource === undefined ? "" : ` · ${esc(s.resource)}`}</div>`,
  );
}

// ── the host list (virtualised: only the visible rows exist in the DOM) ─────────────────────

const hostList = {
  el: /** @type {HTMLElement} */ ($("hosts")),
  spacer: /** @type {HTMLElement} */ ($("hosts").querySelector(".spacer")),
  rows: /** @type {HTMLElement} */ ($("hosts").querySelector(".rows")),
};

/**
 * Scroll positions and sizes, read once at the start of a frame, before anything is written:
 * a read after a DOM write would force a layout in the middle of the frame.
 * @typedef {{ hostsTop: number, hostsHeight: number, ganttTop: number, ganttWidth: number, ganttHeight: number }} Geometry
 */

/** @returns {Geometry} */
function readGeometry() {
  return {
    hostsTop: hostList.el.scrollTop,
    hostsHeight: hostList.el.clientHeight,
    ganttTop: gantt.box.scrollTop,
    ganttWidth: gantt.box.clientWidth,
    ganttHeight: gantt.box.clientHeight,
  };
}

/** @param {Geometry} geo */
function renderHosts(geo) {
  const total = state.snapshot?.hosts.length ?? 0;
  $("host-count").textContent =
    state.shown.length === total ? `(${total})` : `(${state.shown.length} of ${total})`;
  hostList.spacer.style.height = `${state.shown.length * ROW}px`;
  const first = Math.max(0, Math.floor(geo.hostsTop / ROW) - 5);
  const last = Math.min(state.shown.length, first + Math.ceil(geo.hostsHeight / ROW) + 10);
  hostList.rows.style.transform = `translateY(${first * ROW}px)`;
  const html = [];
  for (let i = first; i < last; i++) {
    const h = /** @type {HostRow} */ (state.shown[i]);
    const labels = Object.entries(h.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    html.push(`<div class="vrow" data-host="${esc(h.id)}" data-state="${h.state}">
      <span>${esc(h.id)}</span><span><span class="state ${h.state}">${h.state.toLowerCase()}</span></span>
      ${meter(ratio(h.allocated.cpu ?? 0, h.allocatable.cpu ?? 0))}
      ${meter(ratio(h.allocated.memory ?? 0, h.allocatable.memory ?? 0))}
      ${meter(ratio(h.peak24h.cpu ?? 0, h.allocatable.cpu ?? 0))}
      <span class="num" data-field="leases">${h.leases}</span><span class="labels" title="${esc(labels)}">${esc(labels)}</span></div>`);
  }
  setHtml(hostList.rows, html.join(""));
}

// ── the lease timeline (one canvas; only visible rows are drawn) ───────────────────────────

const gantt = {
  box: /** @type {HTMLElement} */ ($("gantt")),
  canvas: /** @type {HTMLCanvasElement} */ ($("gantt").querySelector("canvas")),
  spacer: /** @type {HTMLElement} */ ($("gantt").querySelector(".spacer")),
  tip: /** @type {HTMLElement} */ ($("gantt-tip")),
};

function serverNow() {
  return Date.now() + state.skew;
}

/** Keeps the view within [now − 1 h, now + 24 h]. */
function clampView() {
  const now = serverNow();
  state.viewSpan = Math.min(25 * HOUR, Math.max(15 * 60_000, state.viewSpan));
  const min = now - HOUR;
  const max = now + 24 * HOUR - state.viewSpan;
  state.viewStart = Math.min(Math.max(state.viewStart, min), Math.max(min, max));
}

/** @param {Geometry} geo */
function drawGantt(geo) {
  const { box, canvas, spacer } = gantt;
  const width = geo.ganttWidth;
  const height = geo.ganttHeight;
  spacer.style.height = `${Math.max(0, state.shown.length * GANTT_ROW + GANTT_AXIS - height)}px`;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  if (ctx === null) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  const plotW = Math.max(1, width - GANTT_LABEL);
  const t0 = state.viewStart;
  const span = state.viewSpan;
  /** @param {number} t */
  const x = (t) => GANTT_LABEL + ((t - t0) / span) * plotW;
  const first = Math.floor(geo.ganttTop / GANTT_ROW);
  const count = Math.ceil((height - GANTT_AXIS) / GANTT_ROW) + 1;
  let drawn = 0;
  for (let i = first; i < Math.min(state.shown.length, first + count); i++) {
    const h = /** @type {HostRow} */ (state.shown[i]);
    const y = GANTT_AXIS + (i - first) * GANTT_ROW;
    if ((i & 1) === 1) {
      ctx.fillStyle = "#f7f8fa";
      ctx.fillRect(0, y, width, GANTT_ROW);
    }
    ctx.fillStyle = h.state === "READY" ? "#1d2330" : "#d1433f";
    ctx.fillText(h.id, 4, y + 13);
    const inner = GANTT_ROW - 3;
    // Leases come sorted by start: those still open when a lease starts are the ones under it.
    /** @type {{ end: number, top: number }[]} */
    let open = [];
    for (const lease of state.byHost.get(h.id) ?? []) {
      if (lease.end <= t0 || lease.start >= t0 + span) continue;
      const x0 = Math.max(GANTT_LABEL, x(lease.start));
      const x1 = Math.min(width, x(lease.end));
      // Bar height is the lease's share of the host (its larger share of CPU or memory, at
      // least a sliver), stacked over the leases it overlaps: the host's commitment over time.
      const bh = Math.max(2, Math.round(inner * leaseShare(lease, h)));
      open = open.filter((o) => o.end > lease.start);
      const below = open.reduce((top, o) => Math.max(top, o.top), 0);
      const bottom = Math.min(inner - bh, below);
      open.push({ end: lease.end, top: bottom + bh });
      const top = y + GANTT_ROW - 1 - bottom - bh;
      ctx.fillStyle = BAR_COLOURS[lease.state] ?? "#9aa1ae";
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), bh);
      if (lease.state === "RESERVED") {
        ctx.strokeStyle = "#b07d00";
        ctx.strokeRect(x0 + 0.5, top + 0.5, Math.max(1, x1 - x0 - 1), bh - 1);
      }
      drawn++;
    }
  }
  // The time axis, on top.
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, GANTT_AXIS);
  ctx.strokeStyle = "#e2e5eb";
  ctx.beginPath();
  ctx.moveTo(0, GANTT_AXIS - 0.5);
  ctx.lineTo(width, GANTT_AXIS - 0.5);
  ctx.stroke();
  const step =
    [15 * 60_000, 30 * 60_000, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR].find(
      (s) => (s / span) * plotW >= 70,
    ) ?? 6 * HOUR;
  ctx.fillStyle = "#6b7385";
  for (let t = Math.ceil(t0 / step) * step; t < t0 + span; t += step) {
    const px = x(t);
    ctx.fillText(clock(t), px + 2, 14);
    ctx.fillRect(px, GANTT_AXIS - 5, 1, 5);
  }
  const now = serverNow();
  if (now >= t0 && now <= t0 + span) {
    ctx.fillStyle = "#d1433f";
    ctx.fillRect(x(now), 0, 1.5, height);
  }
  box.dataset.leases = String(
    state.snapshot?.leases.leases.filter((l) => l.hostId !== "").length ?? 0,
  );
  box.dataset.drawn = String(drawn);
}

/** @param {LeaseBar} lease @param {HostRow} host */
function leaseShare(lease, host) {
  let share = 0;
  for (const resource of ["cpu", "memory"]) {
    const total = host.allocatable[resource] ?? 0;
    if (total > 0) share = Math.max(share, (lease.resources[resource] ?? 0) / total);
  }
  return Math.min(1, share);
}

/** @param {MouseEvent} ev @returns {LeaseBar | undefined} */
function leaseAt(ev) {
  const rect = gantt.canvas.getBoundingClientRect();
  const px = ev.clientX - rect.left;
  const py = ev.clientY - rect.top;
  if (px < GANTT_LABEL || py < GANTT_AXIS) return undefined;
  const row =
    Math.floor(gantt.box.scrollTop / GANTT_ROW) + Math.floor((py - GANTT_AXIS) / GANTT_ROW);
  const host = state.shown[row];
  if (host === undefined) return undefined;
  const t = state.viewStart + ((px - GANTT_LABEL) / (rect.width - GANTT_LABEL)) * state.viewSpan;
  return (state.byHost.get(host.id) ?? []).find((l) => l.start <= t && t < l.end);
}

function setupGantt() {
  let dragX = /** @type {number | null} */ (null);
  gantt.box.addEventListener("scroll", () => schedule());
  gantt.box.addEventListener(
    "wheel",
    (ev) => {
      if (!ev.ctrlKey && !ev.metaKey) return;
      ev.preventDefault();
      const rect = gantt.canvas.getBoundingClientRect();
      const f = Math.max(
        0,
        Math.min(1, (ev.clientX - rect.left - GANTT_LABEL) / (rect.width - GANTT_LABEL)),
      );
      const at = state.viewStart + f * state.viewSpan;
      state.viewSpan *= ev.deltaY > 0 ? 1.25 : 0.8;
      clampView();
      state.viewStart = at - f * state.viewSpan;
      state.viewMoved = true;
      clampView();
      schedule();
    },
    { passive: false },
  );
  gantt.box.addEventListener("mousedown", (ev) => {
    dragX = ev.clientX;
  });
  window.addEventListener("mouseup", () => {
    dragX = null;
  });
  gantt.box.addEventListener("mousemove", (ev) => {
    if (dragX !== null) {
      const w = gantt.canvas.getBoundingClientRect().width - GANTT_LABEL;
      state.viewStart -= ((ev.clientX - dragX) / w) * state.viewSpan;
      state.viewMoved = true;
      dragX = ev.clientX;
      clampView();
      schedule();
    }
    const lease = leaseAt(ev);
    if (lease === undefined) {
      gantt.tip.hidden = true;
      return;
    }
    gantt.tip.hidden = false;
    gantt.tip.style.left = `${ev.clientX + 12}px`;
    gantt.tip.style.top = `${ev.clientY + 12}px`;
    gantt.tip.textContent = `${lease.id}  ${lease.state.toLowerCase()}  (${lease.window})\n${lease.tenant}${lease.name === "" ? "" : ` / ${lease.name}`}\n${new Date(lease.start).toISOString()} → ${new Date(lease.end).toISOString()}\n${fmt("cpu", lease.resources.cpu ?? 0)}, ${fmt("memory", lease.resources.memory ?? 0)}`;
  });
  gantt.box.addEventListener("mouseleave", () => {
    gantt.tip.hidden = true;
  });
  for (const button of document.querySelectorAll(".zoom button")) {
    button.addEventListener("click", () => {
      state.viewSpan = Number(/** @type {HTMLElement} */ (button).dataset.span) * HOUR;
      state.viewStart = serverNow() - state.viewSpan * 0.05;
      state.viewMoved = state.viewSpan !== 24 * HOUR;
      clampView();
      schedule();
    });
  }
}

// ── the forecast chart (uPlot) ─────────────────────────────────────────────────────────────

/** @type {uPlot | null} */
let chart = null;

function drawForecast() {
  const f = state.forecast;
  if (f === null) return;
  const resource = /** @type {HTMLSelectElement} */ ($("forecast-resource")).value;
  const xs = f.buckets.map((b) => b.start / 1000);
  const committed = f.buckets.map((b) => b.allocated[resource] ?? 0);
  const free = f.buckets.map((b) => b.free[resource] ?? 0);
  const alloc = f.buckets.map((b) => b.allocatable[resource] ?? 0);
  /** @type {uPlot.AlignedData} */
  const data = [xs, committed, free, alloc];
  const el = $("forecast");
  el.dataset.buckets = String(xs.length);
  const width = Math.max(300, el.clientWidth);
  if (chart?.series[1]?.label?.startsWith(resource)) {
    chart.setData(data);
    if (Math.abs(chart.width - width) > 4) chart.setSize({ width, height: 240 });
    return;
  }
  chart?.destroy();
  /** @param {uPlot} _u @param {number[]} ticks */
  const axisValues = (_u, ticks) => ticks.map((v) => fmt(resource, v));
  chart = new uPlot(
    {
      width,
      height: 240,
      series: [
        {},
        {
          label: `${resource} committed`,
          stroke: "#3b73d9",
          fill: "rgba(59,115,217,0.25)",
          width: 2,
        },
        { label: `${resource} free (ready hosts)`, stroke: "#2e9d5b", width: 2 },
        {
          label: `${resource} allocatable (ready hosts)`,
          stroke: "#6b7385",
          dash: [4, 4],
          width: 1,
        },
      ],
      axes: [{}, { values: axisValues, size: 90 }],
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.05)] } },
    },
    data,
    el,
  );
}

// ── the render loop: every change schedules one frame ──────────────────────────────────────

let frame = 0;
let reshapeNeeded = false;
let panelsNeeded = false;

function schedule(options = { reshape: false, panels: false }) {
  reshapeNeeded ||= options.reshape;
  panelsNeeded ||= options.panels;
  if (frame !== 0) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const snap = state.snapshot;
    if (snap === null) return;
    const geo = readGeometry();
    if (reshapeNeeded) reshape();
    if (panelsNeeded) {
      renderCapacity(snap);
      renderSummary(snap);
      renderMigrations(snap);
      renderAutoscale(snap);
      $("updated").textContent =
        `updated ${new Date(snap.at).toISOString().replace("T", " ").slice(0, 19)} UTC`;
    }
    reshapeNeeded = false;
    panelsNeeded = false;
    if (!state.viewMoved) {
      state.viewStart = serverNow() - state.viewSpan * 0.02;
    }
    clampView();
    renderHosts(geo);
    drawGantt(geo);
  });
}

function setupControls() {
  const filter = /** @type {HTMLInputElement} */ ($("host-filter"));
  filter.addEventListener("input", () => {
    state.filter = filter.value;
    schedule({ reshape: true, panels: false });
  });
  const sort = /** @type {HTMLSelectElement} */ ($("host-sort"));
  const setSort = (/** @type {string} */ key) => {
    state.sortKey = key;
    sort.value = key;
    for (const span of document.querySelectorAll("#host-head span[data-sort]"))
      span.classList.toggle("on", /** @type {HTMLElement} */ (span).dataset.sort === key);
    schedule({ reshape: true, panels: false });
  };
  sort.addEventListener("change", () => setSort(sort.value));
  for (const span of document.querySelectorAll("#host-head span[data-sort]")) {
    span.addEventListener("click", () => {
      const key = /** @type {HTMLElement} */ (span).dataset.sort ?? "id";
      if (key === state.sortKey) state.sortDesc = !state.sortDesc;
      else setSort(key);
      $("sort-dir").textContent = state.sortDesc ? "↑" : "↓";
      schedule({ reshape: true, panels: false });
    });
  }
  $("sort-dir").addEventListener("click", () => {
    state.sortDesc = !state.sortDesc;
    $("sort-dir").textContent = state.sortDesc ? "↑" : "↓";
    schedule({ reshape: true, panels: false });
  });
  hostList.el.addEventListener("scroll", () => schedule());
  $("forecast-resource").addEventListener("change", () => drawForecast());
  window.addEventListener("resize", () => {
    drawForecast();
    schedule();
  });
  setSort("id");
}

function connect() {
  const conn = $("conn");
  const events = new EventSource("api/v1/events");
  events.addEventListener("open", () => {
    conn.dataset.state = "live";
    conn.textContent = "live";
  });
  events.addEventListener("error", () => {
    conn.dataset.state = "reconnecting";
    conn.textContent = "reconnecting…";
  });
  events.addEventListener("snapshot", (ev) => {
    const snap = /** @type {Snapshot} */ (JSON.parse(/** @type {MessageEvent} */ (ev).data));
    state.snapshot = snap;
    state.skew = snap.at - Date.now();
    state.snapshots++;
    document.body.dataset.snapshots = String(state.snapshots);
    schedule({ reshape: true, panels: true });
  });
  events.addEventListener("forecast", (ev) => {
    state.forecast = /** @type {Forecast} */ (JSON.parse(/** @type {MessageEvent} */ (ev).data));
    drawForecast();
  });
}

setupControls();
setupGantt();
connect();
