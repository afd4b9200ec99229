// twintap dashboard: plain JavaScript, no framework, no external asset.
// The server pushes JSON over one WebSocket (/ws); actions are JSON POSTs to /api/*.
"use strict";

const S = {
  devices: [], events: [], acks: [], selected: null, skew: 0, window: 90, config: {},
  tap: { connected: false, variables: [], monitor: { ids: [], period_ms: 500 } },
  tapSeries: new Map(), tapErrors: {}, propsKey: "", tapKey: "", urlTouched: false,
};
const MAX_EVENTS = 5000;
const MAX_POINTS = 600;
const COLORS = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#57606a"];

// -- small helpers ------------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Make an element: el("td", {class: "num", "data-n": "x"}, "text", child...). */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

/** An SVG element with attributes. */
function svgEl(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const key = (app, cid) => `${app}/${cid}`;
const now = () => Date.now() / 1000 + S.skew;
const pad2 = (n) => String(n).padStart(2, "0");

function fmtTime(t) {
  if (t === null || t === undefined) return "–";
  const d = new Date(t * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function fmtDate(t) {
  if (t === null || t === undefined) return "–";
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtTime(t)}`;
}

/** Today's times as HH:MM:SS, older ones as YYYY-MM-DD HH:MM. */
function fmtShort(t) {
  if (t === null || t === undefined) return "–";
  const d = new Date(t * 1000), today = new Date();
  if (d.toDateString() === today.toDateString()) return fmtTime(t);
  return fmtDate(t).slice(0, 16);
}

function ago(t) {
  if (t === null || t === undefined) return "never";
  const s = Math.max(0, Math.round(now() - t));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}

/** A value as the page shows it. */
function fmtValue(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.map(fmtValue).join(", ");
  return JSON.stringify(v);
}

function numeric(v) {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  return null;
}

async function api(path, body) {
  try {
    const r = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
    });
    const j = await r.json();
    if (!r.ok && j.ok === undefined) j.ok = false;
    return j;
  } catch (e) {
    return { ok: false, error: `the dashboard server did not answer (${e.message})` };
  }
}

function schedule(name, fn) {
  // one redraw per frame per kind
  schedule.pending = schedule.pending || {};
  if (schedule.pending[name]) return;
  schedule.pending[name] = true;
  requestAnimationFrame(() => { schedule.pending[name] = false; fn(); });
}

// -- live connection ----------------------------------------------------------------------
let retry = 500;
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => { retry = 500; setConn(true); };
  ws.onclose = () => { setConn(false); setTimeout(connect, retry); retry = Math.min(retry * 2, 5000); };
  ws.onmessage = (m) => {
    let msg;
    try { msg = JSON.parse(m.data); } catch (e) { return; }
    handle(msg);
  };
}

function setConn(on) {
  const c = $("#conn");
  c.textContent = on ? "live" : "offline: reconnecting…";
  c.className = `pill ${on ? "on" : "off"}`;
}

function handle(msg) {
  switch (msg.type) {
    case "hello":
      S.config = msg.config; S.window = msg.config.window; S.skew = msg.now - Date.now() / 1000;
      S.events = msg.events; S.acks = msg.acks;
      setStoreError(msg.store_error);
      if (!S.urlTouched && msg.config.tap_link && !$("#tap-url").value) $("#tap-url").value = msg.config.tap_link;
      setDevices(msg.devices);
      setTap(msg.tap);
      setBench(msg.bench);
      schedule("events", renderEvents);
      renderAcks();
      break;
    case "devices":
      S.skew = msg.now - Date.now() / 1000;
      setDevices(msg.devices);
      break;
    case "events":
      S.events.push(...msg.events);
      if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
      schedule("events", renderEvents);
      break;
    case "acks":
      S.acks.push(...msg.acks);
      if (S.acks.length > 500) S.acks.splice(0, S.acks.length - 500);
      renderAcks();
      break;
    case "store":
      setStoreError(msg.error);
      break;
    case "tap":
      setTap(msg);
      break;
    case "tap_values":
      tapValues(msg);
      break;
    case "bench":
      setBench(msg);
      break;
  }
}

function setStoreError(err) {
  const e = $("#store-error");
  e.hidden = !err;
  e.textContent = err || "";
}

// -- devices ------------------------------------------------------------------------------
function setDevices(list) {
  S.devices = list;
  if (!S.selected && list.length) S.selected = key(list[0].app, list[0].cid);
  renderDevices();
  renderTwin();
  schedule("events", renderEvents);
}

function renderDevices() {
  const tb = $("#devices tbody");
  $("#no-devices").hidden = S.devices.length > 0;
  tb.replaceChildren(...S.devices.map((d) => {
    const k = key(d.app, d.cid);
    const state = d.online ? "online" : "offline";
    return el("tr", { "data-key": k, class: k === S.selected ? "selected" : null, onclick: () => select(k) },
      el("td", { class: "device" }, k),
      el("td", { class: "state" }, el("span", { class: `dot ${state}` }), state),
      el("td", { class: "seen", "data-t": d.last_seen ?? "" }, ago(d.last_seen)),
      el("td", { class: "registered", title: fmtDate(d.registered) }, fmtShort(d.registered)),
      el("td", { class: "num" }, String(d.registrations)),
      el("td", { class: "num events" }, String(d.events)),
      el("td", { class: `num gaps ${d.gaps ? "bad" : ""}` }, String(d.gaps)),
      el("td", { class: `num ${d.missing ? "bad" : ""}` }, String(d.missing)),
      el("td", { class: "num" }, String(d.dups)));
  }));
}

function select(k) {
  S.selected = k;
  S.propsKey = "";
  $("#ssr-ack").hidden = true;
  renderDevices();
  renderTwin();
  renderAcks();
  const d = current();
  if (d) { $("#ev-device").value = k; S.plotChoice = null; }
  schedule("events", renderEvents);
}

function current() {
  return S.devices.find((d) => key(d.app, d.cid) === S.selected) || null;
}

// -- twin ---------------------------------------------------------------------------------
function renderTwin() {
  const d = current();
  $("#twin").hidden = !d;
  $("#twin-title").textContent = d ? `${d.app}/cid/${d.cid}` : "no device selected";
  if (!d) return;
  const att = Object.entries(d.att || {});
  if (d.loc) att.push(["location", `${d.loc.lat}, ${d.loc.lng}`]);
  $("#attributes tbody").replaceChildren(...att.map(([n, v]) =>
    el("tr", {}, el("td", {}, n), el("td", { class: "value" }, fmtValue(v)))));
  const props = d.props.filter((p) => p.declared);
  const pk = key(d.app, d.cid) + "|" + props.map((p) => `${p.n}:${p.dt}:${p.rwx}:${p.u}`).join(",");
  if (pk !== S.propsKey) {
    S.propsKey = pk;
    $("#props tbody").replaceChildren(...props.map((p) => propRow(d, p)));
  }
  for (const p of props) {
    const cell = $(`#props tr[data-n="${CSS.escape(p.n)}"] td.value`);
    if (!cell) continue;
    const text = fmtValue(p.v);
    if (cell.textContent !== text) {
      cell.textContent = text;
      cell.classList.remove("flash"); void cell.offsetWidth; cell.classList.add("flash");
    }
  }
}

function propRow(d, p) {
  const can = p.rights || "---";
  const ctl = el("td", { class: "ctl" });
  if (can.includes("w")) {
    let input;
    if (p.dt === "boolean") {
      input = el("select", { class: "write-value" }, el("option", {}, "true"), el("option", {}, "false"));
      input.value = p.v ? "false" : "true";
    } else {
      input = el("input", { class: "write-value small", placeholder: p.dt || "value" });
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") ssr(d, "write", p, input.value); });
    }
    ctl.append(input, " ", el("button", { class: "write", onclick: () => ssr(d, "write", p, input.value) }, "Write"));
  }
  if (can.includes("x")) {
    const arg = el("input", { class: "exec-value small", placeholder: "argument" });
    ctl.append(arg, " ", el("button", { class: "exec", onclick: () => ssr(d, "exec", p, arg.value) }, "Exec"));
  }
  if (can.includes("r")) {
    ctl.append(" ", el("button", { class: "read", onclick: () => ssr(d, "read", p) }, "Read"));
  }
  return el("tr", { "data-n": p.n },
    el("td", { class: "name" }, p.n),
    el("td", {}, p.dt || "?"),
    el("td", { class: "rights mono" }, can),
    el("td", {}, p.u || ""),
    el("td", { class: "value" }, fmtValue(p.v)),
    ctl);
}

/** The JSON value of an input for a property of type dt (text stays text when it does not parse:
 *  the board then answers NOT_ACCEPTABLE, which is worth seeing). */
function typed(dt, text) {
  const t = String(text).trim();
  if (dt === "string") return String(text);
  if (dt === "boolean") return t === "true" ? true : t === "false" ? false : t;
  if (dt === "int") return /^[-+]?\d+$/.test(t) ? parseInt(t, 10) : t;
  if (dt === "float") return t !== "" && Number.isFinite(Number(t)) ? Number(t) : t;
  try { return JSON.parse(t); } catch (e) { return t; }
}

async function ssr(d, op, p, text) {
  const body = { app: d.app, cid: d.cid, op, n: p.n };
  if (op === "write") body.v = typed(p.dt, text);
  if (op === "exec" && String(text || "").trim() !== "") body.v = typed("", text);
  const box = $("#ssr-ack");
  box.hidden = false;
  box.className = "ack pending";
  box.replaceChildren(`${op.toUpperCase()} ${p.n}… waiting for the ack`);
  const r = await api("/api/ssr", body);
  showAck(box, r, `${op} ${p.n}`);
}

function showAck(box, r, what) {
  box.hidden = false;
  if (r.status) {
    box.className = `ack ${r.ok ? "ok" : "err"}`;
    box.dataset.status = r.status;
    // Ack.describe(): "WRITE 0.02 {...}" or "NOT_ACCEPTABLE 4.06: reason"
    const rest = (r.text.startsWith(r.status) ? r.text.slice(r.status.length) : r.text).replace(/^:?\s*/, "");
    box.replaceChildren(el("span", { class: "status" }, r.status), rest,
      el("span", { class: "what" }, `(${what})`));
  } else {
    box.className = "ack err";
    box.dataset.status = "";
    box.replaceChildren(el("span", { class: "status" }, "no ack"), `${what}: ${r.error || "failed"}`);
  }
}

function renderAcks() {
  const d = current();
  const list = d ? S.acks.filter((a) => a.app === d.app && a.cid === d.cid) : [];
  $("#acks").replaceChildren(...list.slice(-30).reverse().map((a) => {
    const detail = a.ok ? JSON.stringify(a.msg) : `${a.err || ""}`;
    return el("li", {}, `${fmtTime(a.t)} `, el("span", { class: a.ok ? "ok" : "err" }, a.status),
      ` ref=${a.ref} ${detail ?? ""}`);
  }));
}

// -- events -------------------------------------------------------------------------------
function fillSelect(sel, values, keepAll = true) {
  const cur = sel.value;
  const opts = (keepAll ? [["", "all"]] : []).concat(values.map((v) => (Array.isArray(v) ? v : [v, v])));
  const sig = opts.map((o) => o[0]).join("\n");
  if (sel.dataset.sig !== sig) {
    sel.dataset.sig = sig;
    sel.replaceChildren(...opts.map(([v, t]) => el("option", { value: v }, t)));
  }
  if (opts.some((o) => o[0] === cur)) sel.value = cur;
  return sel.value;
}

function renderEvents() {
  const devices = [...new Set(S.devices.map((d) => key(d.app, d.cid)).concat(S.events.map((e) => key(e.app, e.cid))))].sort();
  const dev = fillSelect($("#ev-device"), devices);
  const inDev = S.events.filter((e) => !dev || key(e.app, e.cid) === dev);
  const names = [...new Set(inDev.map((e) => e.n).filter((n) => n))].sort();
  const prop = fillSelect($("#ev-prop"), names);
  const src = $("#ev-src").value;
  const text = $("#ev-text").value.trim().toLowerCase();
  const shown = inDev.filter((e) => (!prop || e.n === prop) && (!src || e.src === src) &&
    (!text || `${key(e.app, e.cid)} ${e.evt} ${e.n}=${fmtValue(e.v)} ${e.src}`.toLowerCase().includes(text)));
  $("#ev-count").textContent = `${shown.length} of ${S.events.length} events`;
  $("#events tbody").replaceChildren(...shown.slice(-300).reverse().map((e) => {
    const flags = (e.late ? "late " : "") + (e.dups ? `dup×${e.dups}` : "");
    return el("tr", { "data-id": e.id, "data-n": e.n || "" },
      el("td", {}, fmtTime(e.t)), el("td", {}, key(e.app, e.cid)),
      el("td", { class: "num" }, e.seq === null ? "–" : String(e.seq)),
      el("td", {}, e.evt || "–"),
      el("td", { class: "value" }, e.n ? `${e.n} = ${fmtValue(e.v)}` : "–"),
      el("td", {}, e.src || ""), el("td", { class: flags ? "bad" : "" }, flags));
  }));
  // plot: a numeric property of the chosen device (default: the selected one)
  const pdev = dev || S.selected || devices[0] || "";
  const numericNames = [...new Set(S.events.filter((e) => key(e.app, e.cid) === pdev && numeric(e.v) !== null)
    .map((e) => e.n))].sort();
  const plotSel = $("#ev-plot");
  let want = plotSel.value || S.plotChoice || (prop && numericNames.includes(prop) ? prop : null);
  if (!want || !numericNames.includes(want)) want = numericNames.includes("temperature") ? "temperature" : numericNames[0] || "";
  fillSelect(plotSel, numericNames, false);
  if (want) plotSel.value = want;
  const pts = S.events.filter((e) => key(e.app, e.cid) === pdev && e.n === plotSel.value && numeric(e.v) !== null)
    .slice(-MAX_POINTS).map((e) => [e.t, numeric(e.v)]);
  drawPlot($("#ev-svg"), plotSel.value ? [{ label: `${pdev} ${plotSel.value}`, color: COLORS[0], pts }] : [],
    plotSel.value ? "" : "no numeric events yet");
}

// -- plot ---------------------------------------------------------------------------------
/** Draw line series [{label, color, pts: [[t, v], ...]}] into an <svg>, time on x. With
 *  `lanes`, each series gets a band and a scale of its own (values of different sizes). */
function drawPlot(svg, series, empty, lanes = false) {
  const W = Math.max(200, svg.clientWidth || 600), H = Math.max(120, svg.clientHeight || 240);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const L = 52, R = 12, T = 22, B = 22;
  const live = series.filter((s) => s.pts.length);
  const all = live.flatMap((s) => s.pts);
  const kids = [];
  if (!all.length) {
    kids.push(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, empty || "no data yet"));
    svg.replaceChildren(...kids);
    return;
  }
  let t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  if (t1 - t0 < 1) { t0 -= 0.5; t1 += 0.5; }
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const groups = lanes ? live.map((s) => [s]) : [live];
  const band = (H - T - B) / groups.length;
  groups.forEach((group, gi) => {
    const top = T + gi * band, bottom = top + band - (groups.length > 1 ? 12 : 0);
    const vals = group.flatMap((s) => s.pts.map((p) => p[1]));
    let v0 = Math.min(...vals), v1 = Math.max(...vals);
    if (v1 - v0 < 1e-9) { v0 -= 1; v1 += 1; } else { const m = (v1 - v0) * 0.08; v0 -= m; v1 += m; }
    const y = (v) => top + (1 - (v - v0) / (v1 - v0)) * (bottom - top);
    const ticks = groups.length > 2 ? 1 : groups.length > 1 ? 2 : 4;
    for (let i = 0; i <= ticks; i++) {
      const v = v0 + ((v1 - v0) * i) / ticks, yy = y(v);
      kids.push(svgEl("line", { class: "gridline", x1: L, x2: W - R, y1: yy, y2: yy }));
      // in a band, keep the scale's ends inside it (bands sit close together)
      const ty = groups.length === 1 ? yy + 4 : i === 0 ? yy - 2 : i === ticks ? yy + 10 : yy + 4;
      kids.push(svgEl("text", { x: L - 6, y: ty, "text-anchor": "end" }, fmtValue(Math.round(v * 100) / 100)));
    }
    kids.push(svgEl("line", { class: "axis", x1: L, x2: L, y1: top, y2: bottom }));
    for (const s of group) {
      const pts = s.pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      kids.push(svgEl("polyline", { class: "series", points: pts, stroke: s.color, "data-label": s.label }));
      if (s.pts.length === 1) kids.push(svgEl("circle", { cx: x(s.pts[0][0]), cy: y(s.pts[0][1]), r: 3, fill: s.color }));
    }
  });
  kids.push(svgEl("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const steps = Math.max(1, Math.min(3, Math.floor(t1 - t0))); // no two labels alike
  for (let i = 0; i <= steps; i++) {
    const t = t0 + ((t1 - t0) * i) / steps;
    kids.push(svgEl("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === steps ? "end" : "middle" }, fmtTime(t)));
  }
  let lx = L + 4;
  for (const s of live) {
    const label = `${s.label}: ${fmtValue(s.pts[s.pts.length - 1][1])}`;
    kids.push(svgEl("text", { x: lx, y: 14, fill: s.color }, label));
    lx += label.length * 6.5 + 14;
  }
  svg.replaceChildren(...kids);
}

// -- Tap panel ----------------------------------------------------------------------------
function tapMsg(r, okText) {
  const box = $("#tap-msg");
  box.hidden = false;
  box.className = `ack ${r.ok ? "ok" : "err"}`;
  box.textContent = r.ok ? okText : r.error || "failed";
}

function setTap(st) {
  S.tap = st;
  const on = !!st.connected;
  $("#tap-connect").hidden = false;
  $("#tap-disconnect").hidden = !on;
  $("#tap-status").textContent = on
    ? `connected to ${st.url}: ${st.info.serial}, model ${st.info.model}, ${st.info.firmware}`
    : "not connected";
  $("#tap-status").className = on ? "" : "muted";
  $("#tap-who").textContent = on ? (st.user ? `logged in as ${st.user}` : "anonymous") : "";
  for (const b of ["#tap-login", "#tap-logout", "#tap-refresh"]) $(b).disabled = !on;
  if (st.url && !S.urlTouched) $("#tap-url").value = st.url;
  $("#tap-period").value = st.monitor.period_ms;
  const vk = (st.variables || []).map((v) => `${v.id}:${v.name}:${v.type}:${v.access}`).join(",") + `|${st.url}`;
  if (vk !== S.tapKey) {
    S.tapKey = vk;
    $("#tap-vars tbody").replaceChildren(...(st.variables || []).map(tapRow));
  }
  for (const v of st.variables || []) setTapCell(v.id, v.value);
  for (const cb of $$("#tap-vars input.monitor")) cb.checked = st.monitor.ids.includes(Number(cb.dataset.id));
  for (const id of [...S.tapSeries.keys()]) if (!st.monitor.ids.includes(id)) S.tapSeries.delete(id);
  schedule("tap", drawTap);
}

function tapRow(v) {
  const writable = (v.access || "").includes("w");
  const input = el("input", { class: "write-value small", placeholder: v.type || "value" });
  const write = async () => {
    const r = await api("/api/tap/write", { id: v.id, value: input.value });
    tapMsg(r, `wrote ${v.name ?? v.id} = ${fmtValue(r.value)} (read back)`);
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") write(); });
  const mon = el("input", { type: "checkbox", class: "monitor", "data-id": v.id, onchange: monitorChanged });
  return el("tr", { "data-id": v.id, "data-name": v.name || "" },
    el("td", { class: "num" }, String(v.id)), el("td", { class: "name" }, v.name ?? "?"),
    el("td", {}, v.type ?? "?"), el("td", {}, v.unit || ""), el("td", {}, v.access ?? "?"),
    el("td", { class: "value" }, fmtValue(v.value)),
    el("td", {}, writable ? input : null, writable ? " " : null,
      writable ? el("button", { class: "write", onclick: write }, "Write") : null, " ",
      el("button", { class: "read", onclick: async () => {
        const r = await api("/api/tap/read", { id: v.id });
        tapMsg(r, `read ${v.name ?? v.id} = ${fmtValue(r.value)}`);
      } }, "Read")),
    el("td", {}, mon));
}

function setTapCell(id, value, error) {
  const cell = $(`#tap-vars tr[data-id="${id}"] td.value`);
  if (!cell) return;
  const text = error ? `⚠ ${error}` : fmtValue(value);
  if (cell.textContent !== text) {
    cell.textContent = text;
    cell.classList.toggle("bad", !!error);
    cell.classList.remove("flash"); void cell.offsetWidth; cell.classList.add("flash");
  }
}

function tapValues(msg) {
  for (const [id, v] of Object.entries(msg.values)) {
    const n = Number(id);
    setTapCell(n, v);
    const rec = S.tap.variables.find((x) => x.id === n);
    if (rec) rec.value = v;
    if (S.tap.monitor.ids.includes(n) && numeric(v) !== null) {
      if (!S.tapSeries.has(n)) S.tapSeries.set(n, []);
      const pts = S.tapSeries.get(n);
      pts.push([msg.t, numeric(v)]);
      if (pts.length > MAX_POINTS) pts.splice(0, pts.length - MAX_POINTS);
    }
  }
  for (const [id, err] of Object.entries(msg.errors || {})) setTapCell(Number(id), null, err);
  schedule("tap", drawTap);
}

function drawTap() {
  const series = S.tap.monitor.ids.map((id, i) => {
    const v = S.tap.variables.find((x) => x.id === id);
    return { label: v && v.name ? v.name : `#${id}`, color: COLORS[i % COLORS.length], pts: S.tapSeries.get(id) || [] };
  });
  drawPlot($("#tap-svg"), series,
    S.tap.connected ? "tick “mon.” to plot variables live" : "connect to a Tap to monitor variables", true);
}

let monitorChain = Promise.resolve();
/** Ask for the ticked variables to be monitored; requests go one after the other, so the
 *  last one sent is the one in force. */
function monitorChanged() {
  const ids = $$("#tap-vars input.monitor").filter((c) => c.checked).map((c) => Number(c.dataset.id));
  const period = Number($("#tap-period").value) || 500;
  monitorChain = monitorChain.then(async () => {
    const r = await api("/api/tap/monitor", { ids, period_ms: period });
    if (!r.ok) tapMsg(r, "");
  });
}

function wireTap() {
  $("#tap-url").addEventListener("input", () => { S.urlTouched = true; });
  const doConnect = async () => {
    const b = $("#tap-connect");
    b.disabled = true;
    tapMsg({ ok: true }, `connecting to ${$("#tap-url").value}…`);
    const r = await api("/api/tap/connect", { url: $("#tap-url").value });
    b.disabled = false;
    S.urlTouched = false;
    tapMsg(r, r.ok ? `connected: ${r.variables.length} variables` : "");
  };
  $("#tap-connect").addEventListener("click", doConnect);
  $("#tap-url").addEventListener("keydown", (e) => { if (e.key === "Enter") doConnect(); });
  $("#tap-disconnect").addEventListener("click", async () => tapMsg(await api("/api/tap/disconnect"), "disconnected"));
  $("#tap-login").addEventListener("click", async () => {
    const pw = $("#tap-password");
    const r = await api("/api/tap/login", { user: $("#tap-user").value || "admin", password: pw.value });
    pw.value = ""; // never kept in the page
    tapMsg(r, r.ok ? `logged in as ${r.user}` : "");
  });
  $("#tap-logout").addEventListener("click", async () => tapMsg(await api("/api/tap/logout"), "logged out"));
  $("#tap-refresh").addEventListener("click", async () => tapMsg(await api("/api/tap/variables"), "variables read again"));
  $("#tap-period").addEventListener("change", () => { if (S.tap.monitor.ids.length) monitorChanged(); });
}

// -- bench report -------------------------------------------------------------------------
function setBench(b) {
  const box = $("#bench-report");
  if (!b || !b.exists) {
    box.replaceChildren(el("p", { class: "muted" }, "no bench report yet"));
  } else {
    box.innerHTML = b.html; // rendered and escaped by the server from bench/report.md
  }
  $("#bench-images").replaceChildren(...((b && b.images) || []).map((n) =>
    el("figure", {}, el("img", { src: `/bench/${encodeURIComponent(n)}`, alt: n }), el("figcaption", {}, n))));
}

// -- start --------------------------------------------------------------------------------
for (const id of ["#ev-device", "#ev-prop", "#ev-src", "#ev-text"]) {
  $(id).addEventListener("input", () => schedule("events", renderEvents));
}
$("#ev-plot").addEventListener("change", () => { S.plotChoice = $("#ev-plot").value; schedule("events", renderEvents); });
window.addEventListener("resize", () => { schedule("events", renderEvents); schedule("tap", drawTap); });
setInterval(() => {
  for (const td of $$("#devices td.seen")) td.textContent = ago(td.dataset.t === "" ? null : Number(td.dataset.t));
}, 1000);
wireTap();
drawTap();
connect();
