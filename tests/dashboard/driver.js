// A line-oriented browser driver for the dashboard's end-to-end tests: playwright-core
// driving Debian's chromium (never a browser download). One JSON command per stdin line,
// one JSON answer per stdout line: {"ok": true, "value": ...} or {"ok": false, "error": "..."}.
// Commands: goto {url}, click {sel}, fill {sel, value}, select {sel, value},
// text {sel}, attr {sel, name}, count {sel}, wait {sel, text?, timeout?} (text: a regular
// expression the element's text must match), eval {js}, screenshot {path, fullPage?},
// errors {} (console errors and page errors so far), quit {}.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "twintap-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS,
    viewport: { width: Number(process.env.WIDTH || 1400), height: Number(process.env.HEIGHT || 1000) },
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page: ${e.message}`));

  const ops = {
    goto: async (c) => { await page.goto(c.url, { waitUntil: "load" }); },
    click: async (c) => { await page.click(c.sel, { timeout: c.timeout || 5000 }); },
    fill: async (c) => { await page.fill(c.sel, c.value, { timeout: c.timeout || 5000 }); },
    select: async (c) => { await page.selectOption(c.sel, c.value, { timeout: c.timeout || 5000 }); },
    text: async (c) => page.textContent(c.sel, { timeout: c.timeout || 5000 }),
    attr: async (c) => page.getAttribute(c.sel, c.name, { timeout: c.timeout || 5000 }),
    count: async (c) => page.locator(c.sel).count(),
    wait: async (c) => {
      const handle = await page.waitForFunction(
        ([sel, text]) => {
          for (const e of document.querySelectorAll(sel)) {
            if (text === null || new RegExp(text).test(e.textContent)) return { text: e.textContent };
          }
          return false;
        },
        [c.sel, c.text === undefined ? null : c.text],
        { timeout: c.timeout || 10000, polling: 100 },
      );
      return (await handle.jsonValue()).text;
    },
    eval: async (c) => page.evaluate(c.js),
    screenshot: async (c) => { await page.screenshot({ path: c.path, fullPage: !!c.fullPage }); },
    errors: async () => problems.slice(),
  };

  const send = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  send({ ok: true, value: "ready" });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    let c;
    try { c = JSON.parse(line); } catch (e) { send({ ok: false, error: `bad command: ${e.message}` }); continue; }
    if (c.cmd === "quit") { rl.close(); break; }
    const op = ops[c.cmd];
    if (!op) { send({ ok: false, error: `unknown command ${c.cmd}` }); continue; }
    try {
      const value = await op(c);
      send({ ok: true, value: value === undefined ? null : value });
    } catch (e) {
      send({ ok: false, error: String(e.message || e).split("\n")[0] });
    }
  }
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
  send({ ok: true, value: "bye" });
  process.exit(0);
}

main().catch((e) => { process.stdout.write(JSON.stringify({ ok: false, error: String(e) }) + "\n"); process.exit(1); });
