// End-to-end tests of the web map in Debian's Chromium (playwright-core, no downloaded browser)
// against a running citypin: CITYPIN_URL (default http://127.0.0.1:8080) and a crew token in
// CITYPIN_CREW_TOKEN (run-e2e.sh makes one). Screenshots go to ../test-artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = (process.env.CITYPIN_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const TOKEN = process.env.CITYPIN_CREW_TOKEN || '';
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'];
const PHONE = { width: 360, height: 640 };
const DESKTOP = { width: 1280, height: 800 };
// A random spot inside Los Angeles so that runs against the same database do not collide.
const jitter = () => ({ lat: 34.02 + Math.random() * 0.12, lon: -118.45 + Math.random() * 0.2 });

let browser;
const run = Date.now().toString(36);

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
});
after(async () => { await browser?.close(); });

/** A page that records console errors, page errors and any request leaving citypin. */
async function openPage(viewport, { geolocation } = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, ...(geolocation && { geolocation, permissions: ['geolocation'] }) });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  // Worker requests (tiles, basemap) do not log to the page console: check their answers too.
  page.on('response', (r) => {
    const path = r.url().replace(BASE, '');
    if (r.status() >= 500 || (r.status() >= 400 && /^\/(tiles|map-assets|basemap|assets)\b|^\/$/.test(path))) problems.push(`HTTP ${r.status()} ${path}`);
  });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(BASE) || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
    problems.push(`outside request: ${url}`);
    return route.abort();
  });
  return { context, page, problems };
}

async function waitForMap(page) {
  await page.waitForFunction(() => window.__citypin?.map?.loaded() && window.__citypin.map.areTilesLoaded(), null, { timeout: 30000 });
}

const shot = (page, name) => page.screenshot({ path: `${ARTIFACTS}${name}.png` });

async function api(path, init = {}) {
  const res = await fetch(`${BASE}${path}`, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Fill the citizen form: pin via the coordinates field, first category, description. */
async function fillReport(page, where, description) {
  await page.fill('#location', `${where.lat.toFixed(6)}, ${where.lon.toFixed(6)}`);
  await page.click('#set-location');
  await page.waitForSelector('#categories input[type=radio]');
  await page.locator('#categories input[type=radio]').first().check();
  await page.fill('#description', description);
  return page.locator('#categories input[type=radio]').first().inputValue();
}

/**
 * A random spot in Los Angeles where a report of the first category would not be taken for a
 * duplicate of a sample incident (dedup links those as `duplicate`, closed and off the default
 * map): citypin's own "similar" answer, whose suggestion threshold is below the linking one, is empty.
 */
async function freeSpot() {
  const { body: services } = await api('/open311/v2/services.json');
  const codes = services.map((s) => s.service_code);
  for (let i = 0; i < 50; i += 1) {
    const where = jitter();
    const answers = await Promise.all(codes.map((c) => api(`/api/v1/reports/similar?lat=${where.lat}&lon=${where.lon}&service_code=${encodeURIComponent(c)}`)));
    if (answers.every((a) => a.status === 200 && a.body.features.length === 0)) return where;
  }
  throw new Error(`no spot free of similar incidents found `);
}

/** How many reports near `where` carry `description`, according to citypin's export. */
async function countReports(where, description) {
  const d = 0.0005;
  const bbox = [where.lon - d, where.lat - d, where.lon + d, where.lat + d].map((v) => v.toFixed(6)).join(',');
  const { status, body } = await api(`/api/v1/export/incidents.geojson?bbox=${bbox}`);
  assert.equal(status, 200, 'export endpoint answers');
  const feats = body.features || [];
  const withText = feats.filter((f) => f.properties.description === description);
  if (feats.some((f) => 'description' in f.properties)) return withText.length;
  // Exports without descriptions: count the reports at this exact, random spot instead.
  return feats.filter((f) => Math.abs(f.geometry.coordinates[0] - where.lon) < 1e-5 && Math.abs(f.geometry.coordinates[1] - where.lat) < 1e-5).length;
}

let submitted = null; // {reference, id, where} from the citizen test, used by the crew test

for (const [label, viewport] of [['phone', PHONE], ['desktop', DESKTOP]]) {
  test(`map loads with no console errors (${label} ${viewport.width}x${viewport.height})`, async () => {
    const { context, page, problems } = await openPage(viewport);
    await page.goto(`${BASE}/`);
    await page.waitForSelector('#report-form');
    await waitForMap(page);
    await shot(page, `01-map-${label}`);
    const layers = await page.evaluate(() => window.__citypin.map.getStyle().layers.map((l) => l.id));
    for (const id of ['district-line', 'nc-line', 'clusters', 'incidents', 'hotspots']) assert.ok(layers.includes(id), `layer ${id} is in the style`);
    assert.deepEqual(problems, []);
    await context.close();
  });
}

test('citizen drops a pin, reports, gets a reference and sees it in the list and on the map', async () => {
  const { context, page, problems } = await openPage(PHONE);
  await page.goto(`${BASE}/`);
  await waitForMap(page);
  // Drop the pin by tapping the map, then refine it with the coordinates field.
  const box = await page.locator('#map canvas').boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction(() => /\d/.test(document.querySelector('#pin-status').textContent));
  await shot(page, '02-pin-dropped-phone');
  const where = await freeSpot();
  const description = `e2e ${run} deep pothole by the bus stop`;
  await fillReport(page, where, description);
  await shot(page, '03-form-filled-phone');
  await page.click('#submit');
  const reference = (await page.textContent('#receipt-reference', { timeout: 15000 })).trim();
  assert.ok(reference.length > 0, 'a reference is shown');
  await shot(page, '04-receipt-phone');
  const { status, body } = await api(`/api/v1/reports/${encodeURIComponent(reference)}`);
  assert.equal(status, 200);
  assert.equal(body.description, description);
  assert.equal(body.status, 'new', 'a report with nothing similar nearby is a new incident, not a duplicate');
  submitted = { reference, id: body.id, where, serviceCode: body.service_code };

  // In the list: this device's reports on the tracking page.
  await page.click('#track-link');
  await page.waitForSelector('#track-report');
  assert.ok((await page.textContent('#my-reports')).includes(reference));
  await shot(page, '05-track-phone');

  // On the map: the incident is in the vector tiles at street zoom.
  await page.evaluate(({ lon, lat }) => window.__citypin.map.jumpTo({ center: [lon, lat], zoom: 17 }), where);
  await page.waitForFunction((id) => {
    const m = window.__citypin.map;
    if (!m.getSource('citypin')) return false;
    return m.querySourceFeatures('citypin', { sourceLayer: 'incidents' }).some((f) => String(f.properties.id) === String(id));
  }, body.id, { timeout: 20000 });
  await shot(page, '06-incident-on-map-phone');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a second citizen at the same spot is offered the incident and "me too" adds a supporter', async () => {
  assert.ok(submitted, 'the citizen test ran first');
  const before = (await api(`/api/v1/reports/${encodeURIComponent(submitted.reference)}`)).body;
  const { context, page, problems } = await openPage(PHONE);
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#report-form');
  await fillReport(page, submitted.where, `e2e ${run} the same pothole`);
  const card = page.locator('#similar li', { hasText: submitted.reference });
  await card.waitFor({ timeout: 15000 });
  await card.scrollIntoViewIfNeeded();
  await shot(page, '06b-similar-phone');
  await card.locator('button.me-too').click();
  await page.waitForSelector('#similar .msg.ok');
  assert.ok((await page.textContent('#similar')).includes(submitted.reference));
  await shot(page, '06c-me-too-phone');
  const after = (await api(`/api/v1/reports/${encodeURIComponent(submitted.reference)}`)).body;
  assert.equal(after.supporters, before.supporters + 1, 'one more supporter');
  assert.equal(await page.locator('#receipt').count(), 0, 'no second report was sent');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a report sent while offline is delivered exactly once when back online', async () => {
  const { context, page } = await openPage(PHONE);
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#report-form');
  const where = jitter();
  const description = `e2e ${run} offline graffiti on the wall`;
  await fillReport(page, where, description);
  await context.setOffline(true);
  await page.click('#submit');
  await page.waitForSelector('#form-msg .msg.warn');
  await shot(page, '07-offline-queued-phone');
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('citypin.outbox')).length), 1, 'kept on the device');
  await context.setOffline(false);
  const reference = (await page.textContent('#receipt-reference', { timeout: 20000 })).trim();
  assert.ok(reference);
  await shot(page, '08-offline-delivered-phone');
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('citypin.outbox')).length), 0);
  assert.equal(await countReports(where, description), 1);
  await context.close();
});

test('a report whose answer is lost mid-flight is resent with the same key and counted once', async () => {
  const { context, page } = await openPage(DESKTOP);
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#report-form');
  const where = jitter();
  const description = `e2e ${run} broken street light, answer lost`;
  await fillReport(page, where, description);
  // Every POST the browser sends, whichever page or route sends it.
  const posted = [];
  context.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/reports') posted.push(r.headers()['idempotency-key']);
  });
  // The request reaches citypin and is stored, but the connection drops before the answer.
  let keys = [];
  await page.route('**/api/v1/reports', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    keys.push(route.request().headers()['idempotency-key']);
    if (keys.length === 1) {
      await route.fetch();
      await context.setOffline(true);
      return route.abort('internetdisconnected');
    }
    return route.continue();
  });
  await page.click('#submit');
  await page.waitForSelector('#form-msg .msg.warn');
  await shot(page, '09-answer-lost-desktop');
  await page.reload().catch(() => {}); // a reload while offline must not lose it either
  await context.setOffline(false);
  const seen = []; // what the page sent and got, to say why if no receipt comes
  page.on('response', (r) => { if (r.url().includes('/api/v1/reports')) seen.push(`${r.request().method()} ${r.status()}`); });
  page.on('requestfailed', (r) => { if (r.url().includes('/api/v1/reports')) seen.push(`${r.method()} failed: ${r.failure()?.errorText}`); });
  page.on('console', (m) => seen.push(`console ${m.type()}: ${m.text()}`));
  await page.reload();
  // Delivered either by the page that came back online (its 'online' event) before this reload,
  // or by this page from the outbox on load: either way the outbox empties and the device keeps
  // the receipt, and the server holds the report once.
  await page.waitForFunction(
    () => JSON.parse(localStorage.getItem('citypin.outbox') || '[]').length === 0
      && JSON.parse(localStorage.getItem('citypin.receipts') || '[]').length > 0,
    null, { timeout: 25000 },
  ).catch(async (e) => {
    const outbox = await page.evaluate(() => localStorage.getItem('citypin.outbox')).catch(() => '?');
    const msg = await page.textContent('#form-msg').catch(() => '?');
    throw new Error(`${e.message}\nrequests: ${JSON.stringify(seen)}\noutbox: ${outbox}\nform message: ${msg}`);
  });
  const receipt = await page.evaluate(() => JSON.parse(localStorage.getItem('citypin.receipts'))[0]);
  assert.match(receipt.reference, /^CP-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
  // Every POST the browser was seen to send carries the first key. (A resend racing the reload
  // is not always reported by the browser; a resend with another key would still show as a
  // second report on the server, which the count below rules out.)
  assert.ok(posted.length >= 1 && posted.every((k) => k === keys[0]), `same Idempotency-Key on every try: ${posted}`);
  await shot(page, '10-answer-lost-delivered-desktop');
  assert.equal(await countReports(where, description), 1);
  await context.close();
});

test('crew lists nearby incidents by distance, merges a duplicate, and a status change shows on the tracking page', async (t) => {
  assert.ok(TOKEN, 'CITYPIN_CREW_TOKEN must be set: the crew view needs a crew token');
  assert.ok(submitted, 'the citizen test ran first');
  // A second report ~30 m away, of a service in another group (so intake does not link it), for
  // the crew to merge by hand into the citizen's report.
  const { body: services } = await api('/open311/v2/services.json');
  const group = services.find((s) => s.service_code === submitted.serviceCode).group;
  const other = services.find((s) => s.group !== group);
  const second = await api('/api/v1/reports', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': `e2e-${run}-merge` },
    body: JSON.stringify({ service_code: other.service_code, lat: submitted.where.lat + 0.0002, lon: submitted.where.lon + 0.0002, description: `e2e ${run} reported again by a neighbour` }),
  });
  assert.equal(second.status, 201);
  assert.equal(second.body.status, 'new');
  const supportersBefore = (await api(`/api/v1/reports/${submitted.id}`)).body.supporters;
  for (const [label, viewport] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    const { context, page, problems } = await openPage(viewport);
    await page.goto(`${BASE}/#/crew`);
    await waitForMap(page);
    await page.fill('#crew-token', TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.evaluate(({ lon, lat }) => window.__citypin.map.jumpTo({ center: [lon, lat], zoom: 16 }), submitted.where);
    await page.selectOption('#crew-status', 'all');
    await page.click('#crew-find');
    await page.waitForSelector(`#crew-list li[data-id="${submitted.id}"]`, { timeout: 15000 });
    const distances = await page.$$eval('#crew-list li .meta', (els) => els.map((e) => parseFloat(e.textContent)));
    assert.deepEqual(distances, [...distances].sort((a, b) => a - b), 'sorted by distance');
    await shot(page, `11-crew-list-${label}`);
    if (label === 'phone') {
      // Merge the neighbour's report into the citizen's.
      await page.click(`#crew-list li[data-id="${second.body.id}"] button`);
      await page.fill('#merge-into', submitted.reference);
      await page.click('#merge-form button[type=submit]');
      await page.waitForSelector('#crew-detail .msg.ok');
      assert.ok((await page.textContent('#crew-detail .msg.ok')).includes(submitted.reference));
      await shot(page, '11b-crew-merged-phone');
      const merged = (await api(`/api/v1/reports/${second.body.id}`)).body;
      assert.equal(merged.status, 'duplicate');
      assert.equal(merged.duplicate_of?.reference, submitted.reference);
      assert.equal((await api(`/api/v1/reports/${submitted.id}`)).body.supporters, supportersBefore + 1);
      await page.click(`#crew-list li[data-id="${submitted.id}"] button`);
      await page.selectOption('#new-status', 'in_progress');
      await page.fill('#status-note', `e2e ${run}: crew on site`);
      await page.click('#status-form button[type=submit]');
      await page.waitForSelector('#crew-detail .msg.ok');
      await shot(page, '12-crew-status-phone');
      await page.goto(`${BASE}/#/track/${encodeURIComponent(submitted.reference)}`);
      await page.waitForSelector('#history li[data-to="in_progress"]', { timeout: 10000 });
      assert.ok((await page.textContent('#history')).includes('crew on site'));
      await shot(page, '13-track-status-phone');
    }
    assert.deepEqual(problems, []);
    await context.close();
  }
});

test('analyst view filters the tiles and offers exports of the screen', async () => {
  const { context, page, problems } = await openPage(DESKTOP);
  await page.goto(`${BASE}/#/analyst`);
  await waitForMap(page);
  await page.check('#analyst-hotspots');
  await page.selectOption('#analyst-status', 'open');
  await page.click('#analyst-form button[type=submit]');
  const tiles = await page.evaluate(() => window.__citypin.map.getSource('citypin')?.tiles?.[0] || '');
  assert.match(tiles, /status=open/);
  // The map shows what the filter asked for: once the filtered tiles are in, no closed incident.
  await page.waitForFunction(() => window.__citypin.map.areTilesLoaded(), null, { timeout: 20000 });
  await page.waitForTimeout(300);
  await page.waitForFunction(() => window.__citypin.map.areTilesLoaded(), null, { timeout: 20000 });
  const statuses = await page.evaluate(() => window.__citypin.map.querySourceFeatures('citypin', { sourceLayer: 'incidents' }).map((f) => f.properties.status));
  assert.deepEqual(statuses.filter((s) => !['new', 'acknowledged', 'scheduled', 'in_progress'].includes(s)), [], 'only open incidents on the map');
  const href = await page.getAttribute('#export-csv', 'href');
  assert.match(href, /^\/api\/v1\/export\/incidents\.csv\?bbox=-?\d/);
  await shot(page, '14-analyst-desktop');
  assert.deepEqual(problems, []);
  await context.close();
});

test('markup-looking report text shows literally on the tracking page, never as markup', async () => {
  const where = await freeSpot();
  const { body: services } = await api('/open311/v2/services.json');
  const description = `e2e ${run}: sign says <SLOW> <img src=x onerror="window.__injected=1"><b>bold?</b>`;
  const address = `<i>200</i> N Spring St ${run}`;
  const posted = await api('/api/v1/reports', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': `e2e-${run}-plain-text` },
    body: JSON.stringify({ service_code: services[0].service_code, ...where, description, address }),
  });
  assert.equal(posted.status, 201, JSON.stringify(posted.body));
  const { context, page, problems } = await openPage(PHONE);
  await page.goto(`${BASE}/#/track/${encodeURIComponent(posted.body.reference)}`);
  await page.waitForSelector('#track-report');
  const text = await page.textContent('#track-report');
  assert.ok(text.includes(description), `description shown as written: ${text}`);
  assert.ok(text.includes(address), `address shown as written: ${text}`);
  assert.equal(await page.locator('#track-report img, #track-report b, #track-report i').count(), 0, 'no element made from the text');
  assert.equal(await page.evaluate(() => window.__injected), undefined);
  await shot(page, '15-track-plain-text-phone');
  assert.deepEqual(problems, []);
  await context.close();
});
