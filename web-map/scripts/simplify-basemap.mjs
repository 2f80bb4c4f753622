// Simplifies the LA boundary files into the small offline basemap that citypin serves.
// Usage: node scripts/simplify-basemap.mjs SRC_DIR OUT_DIR   (run once; the output is committed)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [src = '../../shared/data/la311', out = '../data-samples'] = process.argv.slice(2);
const TOLERANCE_DEG = 0.00025; // ~25 m: below what a 360 px screen shows at city zoom
const round = (v) => Math.round(v * 1e5) / 1e5;

function sqSegDist(p, a, b) {
  let [x, y] = a;
  let dx = b[0] - x;
  let dy = b[1] - y;
  if (dx !== 0 || dy !== 0) {
    const t = ((p[0] - x) * dx + (p[1] - y) * dy) / (dx * dx + dy * dy);
    if (t > 1) [x, y] = b;
    else if (t > 0) { x += dx * t; y += dy * t; }
  }
  dx = p[0] - x;
  dy = p[1] - y;
  return dx * dx + dy * dy;
}

function douglasPeucker(points, sqTol) {
  const keep = new Uint8Array(points.length);
  keep[0] = keep[points.length - 1] = 1;
  const stack = [[0, points.length - 1]];
  while (stack.length) {
    const [first, last] = stack.pop();
    let maxD = 0;
    let idx = 0;
    for (let i = first + 1; i < last; i++) {
      const d = sqSegDist(points[i], points[first], points[last]);
      if (d > maxD) { maxD = d; idx = i; }
    }
    if (maxD > sqTol) {
      keep[idx] = 1;
      stack.push([first, idx], [idx, last]);
    }
  }
  return points.filter((_, i) => keep[i]);
}

function simplifyRing(ring) {
  const s = douglasPeucker(ring, TOLERANCE_DEG * TOLERANCE_DEG).map(([x, y]) => [round(x), round(y)]);
  return s.length >= 4 ? s : null; // a ring that collapses is a sliver not worth drawing
}

function simplifyGeometry(g) {
  const polys = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
  const out = polys
    .map((rings) => rings.map(simplifyRing).filter(Boolean))
    .filter((rings) => rings.length > 0);
  return { type: 'MultiPolygon', coordinates: out };
}

function convert(file, outName, pick) {
  const fc = JSON.parse(readFileSync(join(src, file), 'utf8'));
  const features = fc.features.map((f) => ({
    type: 'Feature',
    properties: pick(f.properties),
    geometry: simplifyGeometry(f.geometry),
  }));
  const text = JSON.stringify({ type: 'FeatureCollection', features });
  writeFileSync(join(out, outName), text + '\n');
  console.log(`${outName}: ${features.length} features, ${text.length} bytes`);
}

convert('la-city-council-districts-2012.json', 'la-council-districts.geojson', (p) => ({
  district: p.name,
  name: `District ${p.name}`,
}));
convert('nc-boundary-2019-modified.json', 'la-neighborhood-councils.geojson', (p) => ({
  nc_id: p.nc_id,
  name: p.name.replace(/ NC$/, ''),
}));
