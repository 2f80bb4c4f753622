// The category list (Open311 services), cached on the device so the form works after a reload
// without a connection.
import { api } from './api.js';

const CACHE_KEY = 'citypin.services';
let services = null;

export async function loadServices() {
  if (services) return services;
  try {
    const list = await api.services();
    services = Array.isArray(list) ? list : [];
    localStorage.setItem(CACHE_KEY, JSON.stringify(services));
  } catch (e) {
    const cached = JSON.parse(localStorage.getItem(CACHE_KEY) || 'null');
    if (!cached) throw e;
    services = cached;
  }
  return services;
}

export const serviceName = (code) => services?.find((s) => s.service_code === code)?.service_name || code;

/** Services grouped by `group`, each group and service sorted by name; filtered by a query. */
export function grouped(query = '') {
  const q = query.trim().toLowerCase();
  const match = (s) => !q || [s.service_name, s.group, s.description, ...(Array.isArray(s.keywords) ? s.keywords : String(s.keywords || '').split(','))]
    .some((v) => v && String(v).toLowerCase().includes(q));
  const groups = new Map();
  for (const s of (services || []).filter(match)) {
    const g = s.group || 'Other';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(s);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([g, list]) => [g, list.sort((a, b) => a.service_name.localeCompare(b.service_name))]);
}
