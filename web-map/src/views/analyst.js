// Analyst view: filters become query parameters on the tile URL; hotspots; export what is on screen.
import { t } from '../i18n.js';
import { h, message, announce } from '../dom.js';
import { api } from '../api.js';
import { loadServices, grouped } from '../services.js';
import { setTileFilter, setHotspots, bboxParam, getMap, ready } from '../map.js';

const state = { service_code: [], status: '', start: '', end: '', hotspots: false };

function filterParams() {
  return {
    service_code: state.service_code.join(','),
    status: state.status,
    start: state.start ? new Date(`${state.start}T00:00:00`).toISOString() : '',
    end: state.end ? new Date(`${state.end}T23:59:59`).toISOString() : '',
  };
}

export function renderAnalyst(panel) {
  const cats = h('div', { class: 'categories', id: 'analyst-categories' });
  loadServices().then(() => {
    cats.replaceChildren(...grouped().map(([g, list]) => h('fieldset', {}, h('legend', {}, g),
      list.map((s) => h('label', {}, h('input', { type: 'checkbox', value: s.service_code, checked: state.service_code.includes(s.service_code),
        onchange: (e) => {
          state.service_code = e.target.checked ? [...state.service_code, s.service_code] : state.service_code.filter((c) => c !== s.service_code);
        } }), s.service_name)))));
  }).catch(() => cats.replaceChildren(message('bad', t('report.categoriesFailed'))));

  const status = h('select', { id: 'analyst-status', onchange: (e) => { state.status = e.target.value; } },
    [['', 'analyst.statusAll'], ['open', 'analyst.statusOpen'], ['closed', 'analyst.statusClosed']].map(([v, k]) => h('option', { value: v, selected: state.status === v }, t(k))));
  const date = (id, key) => h('input', { type: 'date', id, value: state[key], onchange: (e) => { state[key] = e.target.value; } });
  const out = h('div', { 'aria-live': 'polite' });
  const geojsonLink = h('a', { class: 'button', id: 'export-geojson', download: 'incidents.geojson' }, t('analyst.exportGeojson'));
  const csvLink = h('a', { class: 'button', id: 'export-csv', download: 'incidents.csv' }, t('analyst.exportCsv'));
  const updateLinks = () => {
    const q = api.qs({ bbox: bboxParam(), ...filterParams() });
    geojsonLink.href = `/api/v1/export/incidents.geojson?${q}`;
    csvLink.href = `/api/v1/export/incidents.csv?${q}`;
  };
  ready.then((m) => { updateLinks(); m.on('moveend', updateLinks); });

  panel.replaceChildren(h('h2', {}, t('analyst.heading')),
    h('form', { id: 'analyst-form', onsubmit: (e) => {
      e.preventDefault();
      setTileFilter(filterParams());
      updateLinks();
      out.replaceChildren(message('ok', t('analyst.applied')));
      announce(t('analyst.applied'));
    } },
    h('fieldset', {}, h('legend', {}, t('analyst.categories')), cats),
    h('label', { for: 'analyst-status' }, t('analyst.status')), status,
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'analyst-start' }, t('analyst.start')), date('analyst-start', 'start')),
      h('div', {}, h('label', { for: 'analyst-end' }, t('analyst.end')), date('analyst-end', 'end'))),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', id: 'analyst-hotspots', checked: state.hotspots,
      onchange: (e) => { state.hotspots = e.target.checked; setHotspots(state.hotspots); } }), t('analyst.hotspots')),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('analyst.apply')),
      h('button', { type: 'button', onclick: () => {
        Object.assign(state, { service_code: [], status: '', start: '', end: '' });
        setTileFilter({});
        renderAnalyst(panel);
      } }, t('analyst.clear')))),
    out,
    h('h3', {}, t('analyst.export')),
    h('div', { class: 'row' }, geojsonLink, csvLink));
  return () => { getMap()?.off('moveend', updateLinks); };
}
