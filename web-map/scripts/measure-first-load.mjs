// Measures the web map's first load on a fresh cache against a running citypin (CITYPIN_URL):
// bytes transferred (as sent, i.e. gzip where the server compresses) excluding vector tiles,
// and the time until the form is usable and the map has loaded, with CPU throttling x4.
// Usage: CITYPIN_URL=http://127.0.0.1:8080 node scripts/measure-first-load.mjs [runs]
import http from 'node:http';
import { chromium } from 'playwright-core';

const BASE = (process.env.CITYPIN_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const RUNS = Number(process.argv[2] || 3);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'];

/** Body bytes of `url` as citypin sends them to a browser (node's http does not decompress). */
const wireBytes = (url) => new Promise((resolve, reject) => {
  http.get(url, { headers: { 'Accept-Encoding': 'gzip, deflate, br' } }, (res) => {
    let n = 0;
    res.on('data', (c) => { n += c.length; });
    res.on('end', () => resolve(n));
  }).on('error', reject);
});

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: ARGS });
const results = [];
for (let i = 0; i < RUNS; i++) {
  const context = await browser.newContext({ viewport: { width: 360, height: 640 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  const sizes = { total: 0, tiles: 0, byType: {} };
  // Playwright reports the page's and its workers' requests (MapLibre fetches tiles and GeoJSON
  // from a worker); sizes() gives the body as transferred, i.e. compressed where it was.
  page.on('requestfinished', async (req) => {
    const url = req.url();
    if (!url.startsWith('http')) return;
    const { responseBodySize, responseHeadersSize } = await req.sizes();
    // Worker scripts report no body size: fetch them again as the browser would (same
    // Accept-Encoding) and count the bytes on the wire, not the decoded body.
    const body = responseBodySize > 0 ? responseBodySize : await wireBytes(url);
    const bytes = body + responseHeadersSize;
    if (/\/tiles\/\d+\/\d+\/\d+/.test(url)) { sizes.tiles += bytes; return; }
    sizes.total += bytes;
    const enc = (await req.response())?.headers()['content-encoding'] || 'identity';
    const kind = `${url.replace(BASE, '').split('?')[0].replace(/-[\w-]{8}\.(m?js|css|woff2)$/, '.$1')} (${enc})`;
    sizes.byType[kind] = (sizes.byType[kind] || 0) + bytes;
  });
  await page.goto(`${BASE}/`, { waitUntil: 'load' });
  await page.waitForFunction(() => performance.getEntriesByName('citypin:map-loaded').length > 0, null, { timeout: 60000 });
  await page.waitForFunction(() => window.__citypin.map.areTilesLoaded(), null, { timeout: 60000 });
  await page.waitForTimeout(500);
  const t = await page.evaluate(() => ({
    formReady: performance.getEntriesByName('citypin:form-ready')[0].startTime,
    mapLoaded: performance.getEntriesByName('citypin:map-loaded')[0].startTime,
    load: performance.getEntriesByType('navigation')[0].loadEventEnd,
  }));
  results.push({ ...t, bytes: sizes.total, tileBytes: sizes.tiles, byType: sizes.byType });
  await context.close();
}
await browser.close();
const median = (k) => results.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
console.log(JSON.stringify(results.at(-1).byType, null, 1));
console.log(`runs: ${RUNS}, CPU throttling x4, 360x640 @2x, fresh cache`);
console.log(`first load transferred (excluding tiles): ${(median('bytes') / 1024).toFixed(0)} KiB (tiles: ${(median('tileBytes') / 1024).toFixed(0)} KiB)`);
console.log(`form interactive: ${median('formReady').toFixed(0)} ms; map loaded: ${median('mapLoaded').toFixed(0)} ms; load event: ${median('load').toFixed(0)} ms (medians)`);
