// The drawing page in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against `digitnet serve` started here on a free loopback port (port 0: the kernel picks one and
// the server prints it). Mouse strokes draw a "1", a "7" and a "0"; the page must show that digit,
// update while the pen is still down, show the 28x28 image the network saw, clear, and fetch nothing
// but its own server. Screenshots: build/draw-*.png.
// Environment: DIGITNET (the binary), MODEL (a trained 28x28 model), SCREENSHOT_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const digitnet = process.env.DIGITNET || 'build/digitnet';
const model = process.env.MODEL || 'build/test-mnist-3epochs.safetensors';
const screenshots = process.env.SCREENSHOT_DIR || 'build';
let server, url, browser, context, page;
const requests = [];

function startServer() {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(digitnet, ['serve', '--model', model, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no address from digitnet serve: ${out}`)), 20000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ child, url: m[0] });
      }
    });
    child.stderr.on('data', (chunk) => { out += chunk; });
    child.on('exit', (code) => reject(new Error(`digitnet serve exited ${code}: ${out}`)));
  });
}

before(async () => {
  mkdirSync(screenshots, { recursive: true });
  ({ child: server, url } = await startServer());
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  context = await browser.newContext({ viewport: { width: 860, height: 560 } });
  page = await context.newPage();
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(url, { waitUntil: 'load' });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill('SIGTERM');
});

// Canvas coordinates (0..280, the canvas's own pixels) -> page coordinates.
async function mapper() {
  const box = await page.locator('#pad').boundingBox();
  return (x, y) => [box.x + (x * box.width) / 280, box.y + (y * box.height) / 280];
}

// One stroke through the points, with intermediate mouse moves as a hand makes them.
async function stroke(points, { release = true, pause = 8 } = {}) {
  const at = await mapper();
  await page.mouse.move(...at(...points[0]));
  await page.mouse.down();
  for (let i = 1; i < points.length; i++) {
    await page.mouse.move(...at(...points[i]), { steps: 4 });
    if (pause) await page.waitForTimeout(pause);
  }
  if (release) await page.mouse.up();
}

// Waits until the answer on screen is the one for the current drawing.
async function settled() {
  await page.waitForFunction(() => window.digitnet.shown === window.digitnet.version && !window.digitnet.busy,
    null, { timeout: 15000 });
  return (await page.locator('#digit').textContent()).trim();
}

function line(x0, y0, x1, y1, n = 12) {
  return Array.from({ length: n + 1 }, (_, i) => [x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n]);
}

async function clear() {
  await page.click('#clear');
  assert.equal((await page.locator('#digit').textContent()).trim(), '\u2013');
}

async function drawAndCheck(name, strokes, expected) {
  await clear();
  for (const points of strokes) await stroke(points);
  const shown = await settled();
  await page.screenshot({ path: `${screenshots}/draw-${name}.png` });
  assert.equal(shown, String(expected), `drew a ${expected}, the page shows ${shown}`);
  const state = await page.evaluate(() => window.digitnet.last);
  assert.equal(state.digit, expected);
  assert.equal(state.probabilities.length, 10);
  // The bar of the answer is the longest one, and marked.
  const best = await page.locator('.row.best span').first().textContent();
  assert.equal(best.trim(), String(expected));
  // What the network saw: 28x28, ink bright on dark, drawn on the small canvas.
  assert.deepEqual(state.shape, [28, 28]);
  const lit = await page.evaluate(() => {
    const c = document.getElementById('seen');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) n += d[i] > 128;
    return n;
  });
  assert.ok(lit >= 15 && lit <= 300, `${lit} bright pixels in the 28x28 preview`);
}

test('the page loads with an empty answer and ten bars', async () => {
  assert.equal(await page.title(), 'digitnet: draw a digit');
  assert.equal(await page.locator('.row').count(), 10);
  assert.equal((await page.locator('#digit').textContent()).trim(), '\u2013');
});

test('a vertical stroke is a 1', async () => {
  await drawAndCheck('1', [line(145, 35, 138, 245)], 1);
});

test('a bar and a diagonal is a 7', async () => {
  await drawAndCheck('7', [[...line(70, 55, 205, 55, 8), ...line(205, 55, 120, 250, 12).slice(1)]], 7);
});

test('a loop is a 0', async () => {
  const loop = Array.from({ length: 41 }, (_, i) => {
    const a = (i / 40) * 2 * Math.PI - Math.PI / 2;
    return [140 + 62 * Math.cos(a), 140 + 95 * Math.sin(a)];
  });
  await drawAndCheck('0', [loop], 0);
});

test('the answer updates while the pen is still down', async () => {
  await clear();
  const before = requests.filter((u) => u.endsWith('/api/predict')).length;
  await stroke(line(140, 40, 140, 240, 20), { release: false, pause: 40 });
  await page.waitForFunction(() => window.digitnet.shown > 0 && window.digitnet.last !== null, null, { timeout: 15000 });
  const during = requests.filter((u) => u.endsWith('/api/predict')).length - before;
  await page.mouse.up();
  await settled();
  assert.ok(during >= 1, `${during} predictions sent while drawing`);
  assert.notEqual((await page.locator('#digit').textContent()).trim(), '\u2013');
});

test('Clear empties the answer and the preview', async () => {
  await stroke(line(100, 100, 180, 200));
  await settled();
  assert.notEqual((await page.locator('#digit').textContent()).trim(), '\u2013');
  await clear();
  assert.equal((await page.locator('#confidence').textContent()).trim(), 'draw something');
  const lit = await page.evaluate(() => {
    const c = document.getElementById('seen');
    return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v > 0);
  });
  assert.equal(lit, false, 'the preview is empty');
  const widths = await page.$$eval('.row .fill', (list) => list.map((e) => e.style.width));
  assert.ok(widths.every((w) => parseFloat(w) === 0), widths.join(' '));
});

test('the page fetches nothing but its own server', async () => {
  assert.ok(requests.length > 3, `${requests.length} requests`);
  const foreign = requests.filter((u) => !u.startsWith(url));
  assert.deepEqual(foreign, []);
});
