// Runs the independent @placemarkio/check-geojson checker over a file citypin exported.
// usage: node check-geojson.mjs FILE [--seq]
// --seq: the file is newline-delimited GeoJSON (RFC 8142 / GeoJSONSeq): every line is checked.
// Prints every issue found and exits 1 if there is any, 0 (printing the object count) if none.
import { readFileSync } from 'node:fs';
import { getIssues } from '@placemarkio/check-geojson';

const [file, mode] = process.argv.slice(2);
if (!file) {
  console.error('usage: node check-geojson.mjs FILE [--seq]');
  process.exit(2);
}
const text = readFileSync(file, 'utf8');
const docs = mode === '--seq'
  ? text.split('\n').map((l) => l.replace(/^\x1e/, '')).filter((l) => l.trim() !== '')
  : [text];
let failures = 0;
docs.forEach((doc, i) => {
  const issues = getIssues(doc);
  if (issues.length > 0) {
    failures += 1;
    if (failures <= 5) console.log(JSON.stringify({ document: i, issues }));
  }
});
if (failures > 0) {
  console.log(`${failures} of ${docs.length} documents have issues`);
  process.exit(1);
}
console.log(`ok: ${docs.length} documents, no issues`);
