// Entry point: hash routes (#/report, #/track/REF, #/crew, #/analyst) over one map.
import './fonts.css';
import './style.css';
import { translateDom, t } from './i18n.js';
import { initMap } from './map.js';
import { startAutoFlush } from './outbox.js';
import { renderReport } from './views/report.js';
import { renderTrack } from './views/track.js';
import { renderCrew } from './views/crew.js';
import { renderAnalyst } from './views/analyst.js';
import { message } from './dom.js';

const panel = document.getElementById('panel');
let cleanup = null;

function route() {
  const [, view = 'report', arg] = window.location.hash.match(/^#\/(\w+)(?:\/(.+))?/) || [];
  cleanup?.();
  cleanup = null;
  document.querySelectorAll('.tabs a').forEach((a) => {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  if (view === 'track') cleanup = renderTrack(panel, arg && decodeURIComponent(arg));
  else if (view === 'crew') cleanup = renderCrew(panel);
  else if (view === 'analyst') cleanup = renderAnalyst(panel);
  else cleanup = renderReport(panel);
  document.title = `${t(`nav.${['track', 'crew', 'analyst'].includes(view) ? view : 'report'}`)} · ${t('app.title')}`;
}

translateDom();
window.addEventListener('hashchange', route);
route();
performance.mark('citypin:form-ready');
startAutoFlush();
initMap(document.getElementById('map')).catch((e) => {
  console.warn('[map]', e);
  document.querySelector('.map-wrap').append(message('bad', t('map.loadError')));
});
