// The HTML report in a real browser: Debian's Chromium, headless, driven by playwright-core.
// For each report directory in REPORT_DIRS (comma-separated; tests/browser/run.sh writes them):
// every picture loads, the page fetches nothing but its own files, the accuracy shown equals
// metrics.json's, the per-class table matches metrics.json, and on a phone-sized screen nothing
// is wider than the screen. Screenshots go to build/report-screenshot*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, mkdirSync } from 'node:fs';
import { resolve, basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const dirs = (process.env.REPORT_DIRS || 'build/test-report').split(',').filter(Boolean);
const screenshots = process.env.SCREENSHOT_DIR || 'build';
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
});

after(async () => {
  if (browser) await browser.close();
});

// Opens index.html of dir in a fresh page; records every request the page makes.
async function open(dir, viewport, extra = {}) {
  const index = resolve(dir, 'index.html');
  assert.ok(existsSync(index), `${index} exists`);
  const context = await browser.newContext({ viewport, ...extra });
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const failed = [];
  page.on('requestfailed', (r) => failed.push(r.url()));
  await page.goto(pathToFileURL(index).href, { waitUntil: 'load' });
  return { context, page, requests, failed };
}

for (const dir of dirs) {
  const name = basename(dir);
  const metrics = JSON.parse(readFileSync(resolve(dir, 'metrics.json'), 'utf8'));

  test(`${name}: every picture loads and nothing comes from the network`, async () => {
    const { context, page, requests, failed } = await open(dir, { width: 1280, height: 900 });
    const images = await page.$$eval('img', (list) => list.map((img) => ({
      src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
    })));
    assert.ok(images.length >= 4, `at least 4 pictures, found ${images.length}`);
    for (const img of images) {
      assert.ok(img.complete && img.width > 0 && img.height > 0, `${img.src} loaded (${img.width} x ${img.height})`);
      assert.ok(!/^[a-z]+:/i.test(img.src), `${img.src} is a relative path`);
    }
    const srcs = images.map((i) => i.src);
    for (const always of ['confusion.png', 'roc.png', 'mistakes.png'])
      assert.ok(srcs.includes(always), `${always} is on the page`);
    if (metrics.history) assert.ok(srcs.includes('curves.png'), 'a training report shows the curves');
    if (metrics.folds) assert.ok(srcs.includes('cv.png'), 'a cross-validation report shows the folds');
    else assert.ok(srcs.some((s) => /^features-\d\d-(conv2d|maxpool)\.png$/.test(s)), 'feature maps are shown');
    assert.deepEqual(failed, [], 'no request failed');
    for (const url of requests) assert.ok(url.startsWith('file://'), `only local files are fetched (${url})`);
    await page.screenshot({ path: resolve(screenshots, `report-screenshot${name === 'test-report' ? '' : '-' + name}.png`), fullPage: true });
    await context.close();
  });

  test(`${name}: the metrics table shows metrics.json's numbers`, async () => {
    const { context, page } = await open(dir, { width: 1280, height: 900 });
    // index.html prints metrics.json's accuracy with C's "%.4f"; toFixed(4) rounds the same way
    // except at an exact binary tie, which a ratio of counts does not produce here.
    const shown = (await page.textContent('#metrics #accuracy')).trim();
    assert.equal(shown, metrics.accuracy.toFixed(4));
    assert.match(shown, /^\d\.\d{4}$/);
    const rows = await page.$$eval('#per-class tbody tr', (trs) => trs.map((tr) =>
      [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
    assert.equal(rows.length, 11, '10 classes and the macro row');
    metrics.per_class.forEach((c, k) => {
      assert.equal(rows[k][0], String(c.class));
      assert.equal(rows[k][3], c.f1.toFixed(4), `class ${k} f1`);
      assert.equal(rows[k][5], String(c.support), `class ${k} support`);
    });
    assert.equal(rows[10][0], 'macro');
    assert.equal(rows[10][3], metrics.f1_macro.toFixed(4));
    await context.close();
  });

  test(`${name}: readable on a phone: nothing wider than the screen`, async () => {
    const { context, page } = await open(dir, { width: 390, height: 844 },
      { deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const layout = await page.evaluate(() => ({
      inner: window.innerWidth,
      page: document.documentElement.scrollWidth,
      widest: Math.max(...[...document.querySelectorAll('img')].map((i) => i.getBoundingClientRect().right)),
      font: parseFloat(getComputedStyle(document.body).fontSize),
      // The metrics tables fit without sideways scrolling (the model table may scroll).
      metricsOverflow: [...document.querySelectorAll('#metrics .scroll')]
        .map((d) => d.scrollWidth - d.clientWidth).filter((px) => px > 0).length,
    }));
    assert.equal(layout.inner, 390, 'the viewport meta tag keeps the page at device width');
    assert.ok(layout.page <= layout.inner, `page is ${layout.page}px wide on a ${layout.inner}px screen`);
    assert.ok(layout.widest <= layout.inner, `pictures end at ${layout.widest}px`);
    assert.ok(layout.font >= 14, `body text is ${layout.font}px`);
    assert.equal(layout.metricsOverflow, 0, 'the metrics tables fit the screen');
    if (name === 'test-report') {
      mkdirSync(screenshots, { recursive: true });
      await page.screenshot({ path: resolve(screenshots, 'report-screenshot-phone.png') });
    }
    await context.close();
  });
}
