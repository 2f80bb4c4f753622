// Tracking page (#/track/REFERENCE): current status and the full history, plus this device's reports.
import { t, statusLabel } from '../i18n.js';
import { h, message, fmtDate } from '../dom.js';
import { api, ApiError } from '../api.js';
import { receipts, pending } from '../outbox.js';
import { setPin } from '../map.js';

const badge = (status) => h('span', { class: `badge s-${status}` }, statusLabel(status));

function eventText(ev) {
  if (ev.from_status && ev.to_status && ev.from_status !== ev.to_status) {
    return t('track.event', { from: statusLabel(ev.from_status), to: statusLabel(ev.to_status) });
  }
  if (ev.kind === 'created' || (!ev.from_status && ev.to_status)) return t('track.created');
  return ev.kind;
}

export function renderTrack(panel, reference) {
  const input = h('input', { type: 'text', id: 'track-ref', name: 'reference', value: reference || '', autocapitalize: 'characters', spellcheck: false });
  const result = h('div', { id: 'track-result', 'aria-live': 'polite' });
  const form = h('form', { onsubmit: (e) => {
    e.preventDefault();
    const ref = input.value.trim();
    if (ref) window.location.hash = `#/track/${encodeURIComponent(ref)}`;
  } },
  h('label', { for: 'track-ref' }, t('track.reference')),
  h('div', { class: 'row' }, input, h('button', { type: 'submit', class: 'primary' }, t('track.lookup'))));

  const mine = receipts();
  const waiting = pending();
  const mineList = h('section', { 'aria-labelledby': 'mine-h' },
    h('h3', { id: 'mine-h' }, t('track.mine')),
    mine.length || waiting.length ? h('ul', { class: 'cards', id: 'my-reports' },
      waiting.map((p) => h('li', {}, h('div', {}, h('div', {}, p.body.description.slice(0, 60)), h('div', { class: 'meta' }, t('track.pending'))))),
      mine.map((r) => h('li', {}, h('div', {},
        h('a', { class: 'ref', href: `#/track/${encodeURIComponent(r.reference)}` }, r.reference),
        h('div', { class: 'meta' }, `${r.service_name || ''} · ${fmtDate(r.requested_at)}`)))))
      : h('p', { class: 'help' }, t('track.mineEmpty')));

  panel.replaceChildren(h('h2', {}, t('track.heading')), form, result, mineList);
  if (reference) load(reference, result);
}

async function load(reference, result) {
  result.replaceChildren(h('p', { class: 'help' }, t('common.loading')));
  try {
    const [report, history] = await Promise.all([api.report(reference), api.history(reference).catch(() => ({ events: [] }))]);
    if (Number.isFinite(report.lat) && Number.isFinite(report.lon)) setPin({ lng: report.lon, lat: report.lat });
    const events = [...(history?.events || [])].sort((a, b) => new Date(b.at) - new Date(a.at));
    result.replaceChildren(h('article', { id: 'track-report' },
      h('p', { class: 'reference' }, report.reference),
      h('p', {}, h('strong', {}, report.service_name || report.service_code), ' ', badge(report.status)),
      report.status_notes ? h('p', {}, report.status_notes) : null,
      report.description ? h('p', {}, report.description) : null,
      report.address ? h('p', { class: 'help' }, report.address) : null,
      h('p', { class: 'help' }, t('track.reportedAt', { date: fmtDate(report.requested_at) }), ' · ', t('track.supporters', { n: report.supporters ?? 0 })),
      report.duplicate_of ? message('warn', t('receipt.duplicate', { reference: report.duplicate_of.reference })) : null,
      h('h3', {}, t('track.history')),
      h('ol', { class: 'timeline', id: 'history' }, events.map((ev) => h('li', { 'data-to': ev.to_status || '' },
        h('time', { datetime: ev.at }, fmtDate(ev.at)),
        h('div', {}, eventText(ev)),
        ev.note ? h('div', { class: 'help' }, ev.note) : null)))));
  } catch (e) {
    result.replaceChildren(message('bad', e instanceof ApiError && e.status === 404 ? t('track.notFound') : (e instanceof ApiError ? e.message : t('error.network'))));
  }
}
