// Crew view: open incidents nearest to the crew, list synced with the map; status change; merge.
import { t, statusLabel } from '../i18n.js';
import { h, message, announce, fmtDate } from '../dom.js';
import { api, ApiError, getToken, setToken } from '../api.js';
import { setCrewResults, onMapClick, center, getMap, ready, refreshTiles } from '../map.js';

const STATUSES = ['new', 'acknowledged', 'scheduled', 'in_progress', 'fixed', 'duplicate', 'not_actionable', 'referred', 'cancelled'];
// `nearby` answers open statuses by default; "all" must be asked for, or closed ones stay hidden.
const OPEN = 'open';

export function renderCrew(panel) {
  const cleanups = [];
  let features = [];
  let selectedId = null;
  let origin = null;

  const tokenInput = h('input', { type: 'password', id: 'crew-token', autocomplete: 'off', value: getToken() });
  const tokenMsg = h('div');
  const tokenForm = h('form', { id: 'token-form', onsubmit: (e) => {
    e.preventDefault();
    setToken(tokenInput.value.trim());
    tokenMsg.replaceChildren(message('ok', t('crew.tokenSaved')));
  } },
  h('label', { for: 'crew-token' }, t('crew.token')),
  h('p', { class: 'help' }, t('crew.tokenHelp')),
  h('div', { class: 'row' }, tokenInput, h('button', { type: 'submit' }, t('crew.saveToken')),
    h('button', { type: 'button', onclick: () => { setToken(''); tokenInput.value = ''; } }, t('crew.forgetToken'))),
  tokenMsg);

  const near = h('select', { id: 'crew-near' }, h('option', { value: 'map' }, t('crew.nearMap')), h('option', { value: 'me' }, t('crew.nearMe')));
  const radius = h('select', { id: 'crew-radius' }, [250, 500, 1000, 2000, 5000].map((r) => h('option', { value: r, selected: r === 1000 }, r >= 1000 ? `${r / 1000} km` : `${r} m`)));
  const statusSel = h('select', { id: 'crew-status' }, h('option', { value: OPEN }, t('crew.openOnly')), h('option', { value: 'all' }, t('crew.all')));
  const listMsg = h('div', { 'aria-live': 'polite' });
  const list = h('ul', { class: 'cards', id: 'crew-list' });
  const detail = h('section', { id: 'crew-detail', hidden: true });

  const position = () => new Promise((resolve) => {
    if (near.value === 'me' && navigator.geolocation) {
      navigator.geolocation.getCurrentPosition((p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude }),
        () => { const c = center(); resolve(c && { lat: c.lat, lon: c.lng }); }, { timeout: 10000 });
    } else { const c = center(); resolve(c && { lat: c.lat, lon: c.lng }); }
  });

  async function search() {
    origin = await position();
    if (!origin) return;
    listMsg.replaceChildren(h('p', { class: 'help' }, t('common.loading')));
    try {
      const fc = await api.nearby({ lat: origin.lat.toFixed(6), lon: origin.lon.toFixed(6), radius_m: radius.value, limit: 50, status: statusSel.value });
      features = fc?.features || [];
      listMsg.replaceChildren(h('p', {}, features.length ? t('crew.results', { n: features.length }) : t('crew.none')));
      drawList();
      announce(listMsg.textContent);
    } catch (e) {
      features = [];
      drawList();
      listMsg.replaceChildren(message('bad', e instanceof ApiError && (e.status === 401 || e.status === 403) ? t('crew.unauthorized') : (e instanceof ApiError ? e.message : t('error.network'))));
    }
  }

  function drawList() {
    setCrewResults(features, selectedId);
    list.replaceChildren(...features.map((f) => {
      const p = f.properties;
      return h('li', { class: p.id === selectedId ? 'selected' : '', 'data-id': p.id },
        h('div', {}, h('div', { class: 'ref' }, p.reference),
          h('div', { class: 'meta' }, t('crew.item', { distance: Math.round(p.distance_m), service: p.service_name || p.service_code, status: statusLabel(p.status) }))),
        h('button', { type: 'button', onclick: () => open(p.id) }, t('crew.open')));
    }));
  }

  function open(id) {
    const f = features.find((x) => x.properties.id === id);
    if (!f) return;
    selectedId = id;
    drawList();
    const p = f.properties;
    getMap()?.easeTo({ center: f.geometry.coordinates, zoom: Math.max(getMap().getZoom(), 16) });
    const statusSelect = h('select', { id: 'new-status' }, STATUSES.map((s) => h('option', { value: s, selected: s === p.status }, statusLabel(s))));
    const note = h('textarea', { id: 'status-note' });
    const into = h('input', { type: 'text', id: 'merge-into' });
    const out = h('div', { 'aria-live': 'polite' });
    const heading = h('h3', { tabindex: '-1' }, `${p.reference} · ${p.service_name || p.service_code}`);
    detail.hidden = false;
    detail.replaceChildren(heading,
      h('p', {}, h('span', { class: `badge s-${p.status}` }, statusLabel(p.status)), ` ${Math.round(p.distance_m)} m · ${fmtDate(p.requested_at)} · ${t('track.supporters', { n: p.supporters ?? 0 })}`),
      h('p', {}, h('a', { href: `#/track/${encodeURIComponent(p.reference)}` }, t('receipt.track'))),
      h('form', { id: 'status-form', onsubmit: async (e) => {
        e.preventDefault();
        try {
          const r = await api.setStatus(p.id, statusSelect.value, note.value.trim() || undefined);
          p.status = r?.status || statusSelect.value;
          out.replaceChildren(message('ok', t('crew.statusUpdated', { reference: p.reference, status: statusLabel(p.status) })));
          out.scrollIntoView({ block: 'nearest' });
          drawList();
          refreshTiles();
        } catch (err) { out.replaceChildren(message('bad', err.message)); }
      } },
      h('label', { for: 'new-status' }, t('crew.newStatus')), statusSelect,
      h('label', { for: 'status-note' }, t('crew.note')), note,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('crew.applyStatus')))),
      h('form', { id: 'merge-form', onsubmit: async (e) => {
        e.preventDefault();
        if (!into.value.trim()) return;
        try {
          const r = await api.merge(p.id, into.value.trim());
          p.status = r?.status || 'duplicate';
          statusSelect.value = p.status;
          out.replaceChildren(message('ok', t('crew.merged', { reference: p.reference, into: r?.duplicate_of?.reference || into.value.trim() })));
          out.scrollIntoView({ block: 'nearest' });
          drawList();
          refreshTiles();
        } catch (err) {
          // 422 names the field (`into`: not a known report, or a merge that would make a cycle).
          const errs = err instanceof ApiError ? err.fieldErrors : [];
          out.replaceChildren(message('bad', err.message, errs.length ? h('ul', {}, errs.map((x) => h('li', {}, `${x.field}: ${x.message}`))) : null));
        }
      } },
      h('label', { for: 'merge-into' }, t('crew.mergeInto')),
      h('div', { class: 'row' }, into, h('button', { type: 'submit' }, t('crew.merge')))),
      out,
      h('p', {}, h('button', { type: 'button', onclick: () => { detail.hidden = true; selectedId = null; drawList(); list.querySelector('button')?.focus(); } }, t('crew.back'))));
    heading.focus();
  }

  cleanups.push(onMapClick((e) => {
    const m = getMap();
    if (!m || !e.point) return;
    const hit = m.queryRenderedFeatures(e.point, { layers: ['crew-results'] })[0];
    if (hit) open(hit.properties.id);
  }));

  panel.replaceChildren(h('h2', {}, t('crew.heading')), tokenForm,
    h('form', { id: 'crew-search', onsubmit: (e) => { e.preventDefault(); search(); } },
      h('label', { for: 'crew-near' }, t('crew.near')), near,
      h('label', { for: 'crew-radius' }, t('crew.radius')), radius,
      h('label', { for: 'crew-status' }, t('crew.statusFilter')), statusSel,
      h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'crew-find' }, t('crew.search')))),
    listMsg, detail, list);
  ready.then(() => { if (getToken()) search(); });
  return () => { cleanups.forEach((c) => c()); setCrewResults([], null); };
}
