// Citizen flow: where → what (and "is it one of these?") → describe → contact → send → receipt.
import { t, statusLabel } from '../i18n.js';
import { h, announce, message, round } from '../dom.js';
import { api, ApiError } from '../api.js';
import { enqueue, deliver, onDelivered, pending } from '../outbox.js';
import { loadServices, grouped, serviceName } from '../services.js';
import { setPin, onMapClick, refreshTiles } from '../map.js';

const DRAFT_KEY = 'citypin.draft';
const loadDraft = () => { try { return JSON.parse(localStorage.getItem(DRAFT_KEY)) || {}; } catch { return {}; } };
const saveDraft = (d) => localStorage.setItem(DRAFT_KEY, JSON.stringify(d));

let neighbourhoods = null;
async function findNeighbourhood(text) {
  if (!neighbourhoods) {
    const res = await fetch('/basemap/la-neighborhood-councils.geojson');
    neighbourhoods = res.ok ? (await res.json()).features : [];
  }
  const q = text.trim().toLowerCase();
  if (q.length < 3) return null;
  const f = neighbourhoods.find((n) => n.properties.name.toLowerCase() === q)
    || neighbourhoods.find((n) => n.properties.name.toLowerCase().includes(q));
  if (!f) return null;
  let [minX, minY, maxX, maxY] = [180, 90, -180, -90];
  for (const poly of f.geometry.coordinates) for (const [x, y] of poly[0]) {
    minX = Math.min(minX, x); minY = Math.min(minY, y); maxX = Math.max(maxX, x); maxY = Math.max(maxY, y);
  }
  return { name: f.properties.name, lat: (minY + maxY) / 2, lon: (minX + maxX) / 2 };
}

/** "34.05, -118.24" (or lon, lat when the first number cannot be a latitude) → {lat, lon}. */
export function parseCoordinates(text) {
  const m = text.trim().match(/^(-?\d+(?:\.\d+)?)\s*[,;\s]\s*(-?\d+(?:\.\d+)?)$/);
  if (!m) return null;
  let [a, b] = [Number(m[1]), Number(m[2])];
  if (Math.abs(a) > 90 && Math.abs(b) <= 90) [a, b] = [b, a];
  if (Math.abs(a) > 90 || Math.abs(b) > 180) return null;
  return { lat: a, lon: b };
}

export function renderReport(panel) {
  const draft = loadDraft();
  const update = (patch) => { Object.assign(draft, patch); saveDraft(draft); };
  const cleanups = [];

  // 1. Where
  const pinStatus = h('p', { class: 'pin-status', id: 'pin-status', 'aria-live': 'polite' });
  const locInput = h('input', { type: 'text', id: 'location', name: 'location', autocomplete: 'street-address', 'aria-describedby': 'location-help pin-status', value: draft.address || '' });
  const locMsg = h('div');
  function placePin(lat, lon, note) {
    update({ lat: round(lat, 6), lon: round(lon, 6) });
    setPin({ lng: lon, lat });
    pinStatus.textContent = note || t('report.pinAt', { lat: lat.toFixed(5), lon: lon.toFixed(5) });
    announce(pinStatus.textContent);
    refreshSimilar();
  }
  async function useTypedLocation() {
    locMsg.replaceChildren();
    const text = locInput.value;
    const c = parseCoordinates(text);
    if (c) { placePin(c.lat, c.lon); return; }
    update({ address: text.trim() || undefined });
    const n = text.trim() ? await findNeighbourhood(text).catch(() => null) : null;
    if (n) placePin(n.lat, n.lon, t('report.pinFromArea', { name: n.name }));
    else if (text.trim() && draft.lat === undefined) locMsg.replaceChildren(message('warn', t('report.addressOnly')));
  }
  locInput.addEventListener('change', useTypedLocation);
  locInput.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); useTypedLocation(); } });
  const locateBtn = h('button', { type: 'button', id: 'locate', onclick: () => {
    if (!navigator.geolocation) { locMsg.replaceChildren(message('warn', t('report.locateFailed'))); return; }
    pinStatus.textContent = t('report.locating');
    navigator.geolocation.getCurrentPosition(
      (p) => placePin(p.coords.latitude, p.coords.longitude),
      () => { pinStatus.textContent = ''; locMsg.replaceChildren(message('warn', t('report.locateFailed'))); },
      { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 },
    );
  } }, t('report.locate'));
  cleanups.push(onMapClick((e) => placePin(e.lngLat.lat, e.lngLat.lng)));
  if (draft.lat !== undefined) { setPin({ lng: draft.lon, lat: draft.lat }, { fly: false }); pinStatus.textContent = t('report.pinAt', { lat: draft.lat.toFixed(5), lon: draft.lon.toFixed(5) }); }
  else pinStatus.textContent = t('report.pinNone');

  // 2. What
  const catSearch = h('input', { type: 'search', id: 'category-search', 'aria-controls': 'categories' });
  const catBox = h('div', { class: 'categories', id: 'categories' });
  const catMsg = h('div');
  function drawCategories() {
    const groups = grouped(catSearch.value);
    catBox.replaceChildren(...(groups.length ? groups.map(([g, list]) => h('fieldset', {},
      h('legend', {}, g),
      list.map((s) => h('label', {},
        h('input', { type: 'radio', name: 'service_code', value: s.service_code, checked: s.service_code === draft.service_code,
          onchange: () => { update({ service_code: s.service_code }); refreshSimilar(); } }),
        s.service_name)))) : [h('p', { class: 'help' }, t('report.categoryNone'))]));
  }
  catSearch.addEventListener('input', drawCategories);
  async function fetchCategories() {
    catMsg.replaceChildren(h('p', { class: 'help' }, t('common.loading')));
    try { await loadServices(); catMsg.replaceChildren(); drawCategories(); } catch {
      catMsg.replaceChildren(message('bad', t('report.categoriesFailed'), h('button', { type: 'button', onclick: fetchCategories }, t('report.retry'))));
    }
  }
  fetchCategories();

  // "Is it one of these?"
  const similarBox = h('section', { id: 'similar', 'aria-labelledby': 'similar-h', hidden: true });
  let similarSeq = 0;
  let similarAvailable = true;
  async function refreshSimilar() {
    if (!similarAvailable || draft.lat === undefined || !draft.service_code) return;
    const seq = ++similarSeq;
    try {
      const fc = await api.similar(draft.lat, draft.lon, draft.service_code);
      if (seq !== similarSeq) return;
      const feats = (fc?.features || []).slice(0, 5);
      similarBox.hidden = feats.length === 0;
      similarBox.replaceChildren(
        h('h3', { id: 'similar-h' }, t('report.similarHeading')),
        h('p', { class: 'help' }, t('report.similarHelp')),
        h('ul', { class: 'cards' }, feats.map((f) => {
          const p = f.properties;
          const btn = h('button', { type: 'button', class: 'me-too', onclick: async () => {
            btn.disabled = true;
            try {
              const contact = contactFromForm();
              await api.support(p.id, contact && contact.consent ? contact : undefined);
              similarBox.replaceChildren(message('ok', t('report.meTooDone', { reference: p.reference }),
                h('p', {}, h('a', { href: `#/track/${encodeURIComponent(p.reference)}` }, t('receipt.track')))));
              announce(t('report.meTooDone', { reference: p.reference }));
            } catch (e) { btn.disabled = false; similarBox.append(message('bad', e.message)); }
          } }, t('report.meToo'));
          return h('li', {}, h('div', {}, h('div', { class: 'ref' }, p.reference),
            h('div', { class: 'meta' }, t('report.similarItem', { service: p.service_name || serviceName(p.service_code), status: statusLabel(p.status), distance: Math.round(p.distance_m), age: Math.round(p.age_days ?? 0), supporters: p.supporters ?? 0 }))), btn);
        })));
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405 || e.status === 501)) similarAvailable = false;
      similarBox.hidden = true;
    }
  }

  // 3. Describe
  const desc = h('textarea', { id: 'description', name: 'description', required: true, maxlength: 4000, 'aria-describedby': 'description-help', oninput: (e) => update({ description: e.target.value }) });
  desc.value = draft.description || '';

  // 4. Contact
  const field = (id, type, label, auto) => {
    const input = h('input', { type, id, name: id, autocomplete: auto, value: draft[id] || '', oninput: (e) => update({ [id]: e.target.value }) });
    return [h('label', { for: id }, label), input];
  };
  const check = (id, label) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', id, name: id, checked: !!draft[id], onchange: (e) => update({ [id]: e.target.checked }) }), label);
  function contactFromForm() {
    const name = (draft.name || '').trim();
    const email = (draft.email || '').trim();
    const phone = (draft.phone || '').trim();
    if (!name && !email && !phone) return null;
    return { ...(name && { name }), ...(email && { email }), ...(phone && { phone }), consent: !!draft.consent, notify: !!draft.notify };
  }

  const formMsg = h('div', { id: 'form-msg' });
  const submitBtn = h('button', { type: 'submit', class: 'primary', id: 'submit' }, t('report.submit'));
  const form = h('form', { id: 'report-form', novalidate: true },
    h('h2', {}, t('report.heading')),
    h('fieldset', {}, h('legend', {}, t('report.step.where')),
      h('div', { class: 'row' }, locateBtn),
      h('p', { class: 'help' }, t('report.tapHint')),
      h('label', { for: 'location' }, t('report.locationField')),
      h('p', { class: 'help', id: 'location-help' }, t('report.locationHelp')),
      h('div', { class: 'row' }, locInput, h('button', { type: 'button', id: 'set-location', onclick: useTypedLocation }, t('report.setLocation'))),
      pinStatus, locMsg),
    h('fieldset', {}, h('legend', {}, t('report.step.what')),
      h('label', { for: 'category-search' }, t('report.categorySearch')), catSearch, catMsg, catBox),
    similarBox,
    h('fieldset', {}, h('legend', {}, t('report.step.describe')),
      h('label', { for: 'description' }, t('report.description')),
      h('p', { class: 'help', id: 'description-help' }, t('report.descriptionHelp')), desc),
    h('fieldset', {}, h('legend', {}, t('report.step.contact')),
      h('p', { class: 'help' }, t('report.contactHelp')),
      field('name', 'text', t('report.name'), 'name'),
      field('email', 'email', t('report.email'), 'email'),
      field('phone', 'tel', t('report.phone'), 'tel'),
      check('consent', t('report.consent')),
      check('notify', t('report.notify'))),
    formMsg,
    h('div', { class: 'row' }, submitBtn));

  let waitingKey = null;
  function showReceipt(report) {
    waitingKey = null;
    localStorage.removeItem(DRAFT_KEY);
    setPin(null);
    refreshTiles();
    const dup = report.duplicate_of;
    const heading = h('h2', { tabindex: '-1' }, t('receipt.heading'));
    panel.replaceChildren(h('section', { id: 'receipt' },
      heading,
      h('p', {}, t('receipt.reference')),
      h('p', { class: 'reference', id: 'receipt-reference' }, report.reference),
      h('p', { class: 'help' }, t('receipt.quote')),
      dup ? message('warn', t('receipt.duplicate', { reference: dup.reference })) : null,
      h('p', {}, h('a', { class: 'button primary', id: 'track-link', href: `#/track/${encodeURIComponent(report.reference)}` }, t('receipt.track'))),
      h('p', {}, h('a', { href: '#/report', class: 'button', onclick: () => setTimeout(() => renderReport(panel), 0) }, t('receipt.another')))));
    heading.focus();
    announce(`${t('receipt.heading')} ${t('receipt.reference')}: ${report.reference}`);
  }
  cleanups.push(onDelivered((report, entry) => { if (entry.key === waitingKey) showReceipt(report); }));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const problems = [];
    if (draft.lat === undefined) problems.push(t('report.missingLocation'));
    if (!draft.service_code) problems.push(t('report.missingCategory'));
    if (!(draft.description || '').trim()) problems.push(t('report.missingDescription'));
    const contact = contactFromForm();
    if (contact && !contact.consent) problems.push(t('report.consentRequired'));
    if (problems.length) {
      formMsg.replaceChildren(message('bad', t('report.errorTitle'), h('ul', {}, problems.map((p) => h('li', {}, p)))));
      return;
    }
    const body = { service_code: draft.service_code, lat: draft.lat, lon: draft.lon, description: draft.description.trim(), channel: 'web' };
    if (draft.address) body.address = draft.address;
    if (contact) body.contact = contact;
    const entry = enqueue(body);
    waitingKey = entry.key;
    submitBtn.disabled = true;
    submitBtn.textContent = t('report.sending');
    formMsg.replaceChildren();
    const r = await deliver(entry);
    submitBtn.disabled = false;
    submitBtn.textContent = t('report.submit');
    if (r.report) showReceipt(r.report);
    else if (r.rejected) {
      waitingKey = null;
      const errs = r.rejected.fieldErrors;
      formMsg.replaceChildren(message('bad', `${t('report.errorTitle')} ${r.rejected.message}`,
        errs.length ? h('ul', {}, errs.map((x) => h('li', {}, `${x.field}: ${x.message}`))) : null));
    } else if (r.queued) {
      const offline = navigator.onLine === false || !(r.error instanceof ApiError);
      formMsg.replaceChildren(message('warn', t(offline ? 'report.queued' : 'report.retrying')));
      submitBtn.disabled = true;
    }
  });

  panel.replaceChildren(form);
  if (pending().length) {
    // A report from before a reload is still on its way: wait for it rather than allow a second one.
    waitingKey = pending()[0].key;
    submitBtn.disabled = true;
    formMsg.replaceChildren(message('warn', t('report.queued')));
  }
  if (draft.lat !== undefined && draft.service_code) refreshSimilar();
  return () => cleanups.forEach((c) => c());
}
