// The map: citypin's style (tiles/style.json, served under /map-assets/), its vector tiles with the
// analyst's filters as query parameters, the report pin and the crew's result layer.
import 'maplibre-gl/dist/maplibre-gl.css';
// The worker is its own file in MapLibre 6; point MapLibre at the copy Vite emits.
import workerUrl from 'maplibre-gl/dist/maplibre-gl-worker.mjs?url';

// MapLibre is loaded after the form is on screen, so the page is usable before the map is.
let maplibregl = null;
import { t } from './i18n.js';
import { h } from './dom.js';

const STYLE_URL = '/map-assets/style.json';
const CONFIG_URL = '/map-assets/web-map.json';
const TILE_LAYERS = ['hotspots', 'clusters', 'cluster-count', 'incidents', 'incident-group'];
const STATUS_COLOURS = { new: '#c62828', acknowledged: '#e65100', scheduled: '#8d6e00', in_progress: '#1565c0', fixed: '#2e7d32', duplicate: '#757575' };

let map = null;
let pinMarker = null;
let baseTiles = null; // tile URL templates from /tiles.json, without filters
let tileQuery = '';
const clickHandlers = new Set();
let readyResolve;
export const ready = new Promise((r) => { readyResolve = r; });

// Keep the {z}/{x}/{y} placeholders that URL() would percent-encode.
const abs = (url) => new URL(url, window.location.href).href.replace(/%7B/gi, '{').replace(/%7D/gi, '}');

async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

/** Build the runtime style: absolute URLs (workers resolve relative ones against a blob: URL). */
async function loadStyle(configP) {
  const style = await getJson(STYLE_URL);
  const config = await configP;
  for (const src of Object.values(style.sources)) {
    if (typeof src.data === 'string') src.data = abs(src.data);
  }
  try {
    const tj = await getJson(abs(style.sources.citypin.url));
    baseTiles = tj.tiles.map(abs);
    style.sources.citypin = {
      type: 'vector',
      tiles: baseTiles,
      minzoom: tj.minzoom ?? 0,
      maxzoom: tj.maxzoom ?? 18,
      attribution: tj.attribution,
    };
  } catch (e) {
    // No tiles yet (or the tile service is down): keep the basemap and the rest of the app.
    console.warn('[map] vector tiles unavailable:', e.message);
    delete style.sources.citypin;
    style.layers = style.layers.filter((l) => l.source !== 'citypin');
  }
  const basemap = config?.basemap;
  if (basemap?.tiles?.length) {
    // A deployment's own raster basemap (off by default): drawn under everything of ours.
    style.sources.external = { type: 'raster', tiles: basemap.tiles, tileSize: basemap.tileSize || 256, attribution: basemap.attribution || '' };
    style.layers.splice(1, 0, { id: 'external-basemap', type: 'raster', source: 'external' });
    style.layers = style.layers.map((l) => (l.id === 'nc-fill' ? { ...l, paint: { ...l.paint, 'fill-opacity': 0.15 } } : l));
  }
  return style;
}

/**
 * The colour key. Folded behind a "Key" button on a phone, where it would cover a third of the
 * map; open on wider screens. Duplicates are left out: the tiles hide them unless asked for.
 */
function legend() {
  const wide = window.matchMedia?.('(min-width: 900px)').matches;
  return h('details', { class: 'legend', ...(wide && { open: true }) },
    h('summary', {}, t('map.legend')),
    h('div', { class: 'legend-items' }, Object.entries(STATUS_COLOURS).filter(([s]) => s !== 'duplicate')
      .map(([s, c]) => h('span', { style: `--c:${c}` }, t(`status.${s}`)))));
}

export async function initMap(container) {
  const lib = import('maplibre-gl');
  const configP = getJson(CONFIG_URL).catch(() => ({}));
  const style = await loadStyle(configP);
  const config = await configP;
  await Promise.all([
    document.fonts.load('16px "Atkinson Hyperlegible"'),
    document.fonts.load('16px "Atkinson Hyperlegible Bold"'),
  ]).catch(() => {});
  maplibregl = await lib;
  maplibregl.setWorkerUrl(workerUrl);
  map = new maplibregl.Map({
    container,
    style,
    center: config.center || style.center,
    zoom: config.zoom ?? style.zoom,
    ...(config.bounds && { bounds: config.bounds, fitBoundsOptions: { padding: 8 } }),
    attributionControl: { compact: true },
    dragRotate: false,
    pitchWithRotate: false,
    maxPitch: 0,
    cooperativeGestures: false,
  });
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  container.parentElement.append(legend());
  map.on('error', (e) => console.warn('[map]', e.error?.message || e));
  map.on('click', (e) => {
    for (const fn of clickHandlers) fn(e);
  });
  for (const layer of ['incidents', 'clusters']) {
    map.on('mouseenter', layer, () => { map.getCanvas().style.cursor = 'pointer'; });
    map.on('mouseleave', layer, () => { map.getCanvas().style.cursor = ''; });
  }
  map.on('load', () => {
    map.addSource('crew-results', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    map.addLayer({
      id: 'crew-results', type: 'circle', source: 'crew-results',
      paint: {
        'circle-radius': ['case', ['boolean', ['get', 'selected'], false], 12, 8],
        // Filled with the status colour: the ring marks a result, the fill still says its state.
        'circle-color': ['match', ['get', 'status'], ...Object.entries(STATUS_COLOURS).flat(), '#757575'],
        'circle-stroke-color': ['case', ['boolean', ['get', 'selected'], false], '#1d4e89', '#3d4650'],
        'circle-stroke-width': ['case', ['boolean', ['get', 'selected'], false], 5, 3],
      },
    });
    performance.mark('citypin:map-loaded');
    readyResolve(map);
  });
  window.__citypin = { map }; // for the end-to-end tests and for debugging in the field
  return map;
}

export const getMap = () => map;
export const onMapClick = (fn) => { clickHandlers.add(fn); return () => clickHandlers.delete(fn); };

export function setPin(lngLat, { fly = true } = {}) {
  if (!map) return;
  if (!lngLat) { pinMarker?.remove(); pinMarker = null; return; }
  if (!pinMarker) {
    pinMarker = new maplibregl.Marker({ color: '#1d4e89', draggable: true }).setLngLat(lngLat).addTo(map);
    pinMarker.getElement().setAttribute('aria-label', t('report.pinAt', { lat: lngLat.lat.toFixed(5), lon: lngLat.lng.toFixed(5) }));
    pinMarker.on('dragend', () => {
      const ll = pinMarker.getLngLat();
      for (const fn of clickHandlers) fn({ lngLat: ll, fromPin: true });
    });
  } else {
    pinMarker.setLngLat(lngLat);
  }
  if (fly) map.easeTo({ center: lngLat, zoom: Math.max(map.getZoom(), 16) });
}

const filteredTiles = () => baseTiles.map((u) => (tileQuery ? `${u}${u.includes('?') ? '&' : '?'}${tileQuery}` : u));

/** Apply the analyst's filters to the tile URL (the tiles carry only what matches). */
export function setTileFilter(params) {
  tileQuery = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  const src = map?.getSource('citypin');
  if (src && baseTiles) src.setTiles(filteredTiles());
}

/**
 * Reload the tiles so a new report or status shows up without a reload of the page. No
 * cache-busting parameter: the tile endpoint rejects unknown parameters (400), and it needs none,
 * since citypin answers `Cache-Control: no-cache` with an ETag and drops the tiles a write touches;
 * setting the same URLs again makes MapLibre refetch every tile, and the browser revalidates.
 */
export function refreshTiles() {
  const src = map?.getSource('citypin');
  if (src && baseTiles) src.setTiles(filteredTiles());
}

export function setHotspots(visible) {
  if (map?.getLayer('hotspots')) map.setLayoutProperty('hotspots', 'visibility', visible ? 'visible' : 'none');
}

export function setCrewResults(features, selectedId) {
  ready.then((m) => {
    const fc = { type: 'FeatureCollection', features: features.map((f) => ({ ...f, properties: { ...f.properties, selected: f.properties.id === selectedId } })) };
    m.getSource('crew-results')?.setData(fc);
  });
}

export function bboxParam() {
  if (!map) return '';
  const b = map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(',');
}

export const center = () => map?.getCenter();
