// The outbox keeps a report on the device until citypin acknowledges it. The idempotency key is
// made once, when the citizen presses Send, and reused on every retry: the server answers a
// replay with the first response, so a dropped connection or a reload never doubles a report.
import { api, ApiError, NetworkError } from './api.js';

const OUTBOX_KEY = 'citypin.outbox';
const RECEIPTS_KEY = 'citypin.receipts';
const listeners = new Set();

const read = (key) => { try { return JSON.parse(localStorage.getItem(key)) || []; } catch { return []; } };
const write = (key, v) => localStorage.setItem(key, JSON.stringify(v));

export const pending = () => read(OUTBOX_KEY);
export const receipts = () => read(RECEIPTS_KEY);
export const onDelivered = (fn) => { listeners.add(fn); return () => listeners.delete(fn); };

const newKey = () => (crypto.randomUUID ? crypto.randomUUID()
  : '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) => (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)));

/** Put a report in the outbox; returns its entry (with the idempotency key). */
export function enqueue(body) {
  const entry = { key: newKey(), body, queuedAt: new Date().toISOString() };
  write(OUTBOX_KEY, [...pending(), entry]);
  return entry;
}

function remove(key) { write(OUTBOX_KEY, pending().filter((e) => e.key !== key)); }

function remember(report) {
  const list = receipts().filter((r) => r.reference !== report.reference);
  list.unshift({ id: report.id, reference: report.reference, service_name: report.service_name, requested_at: report.requested_at, lat: report.lat, lon: report.lon });
  write(RECEIPTS_KEY, list.slice(0, 50));
}

let inFlight = null;
/**
 * Try to deliver one entry. Resolves {report} when acknowledged, {rejected: ApiError} when the
 * server refused it for good (4xx: kept out of the outbox, the form shows why), {queued} when it
 * must wait (offline, 5xx, 429).
 */
const inflightByKey = new Map();
export function deliver(entry) {
  if (!inflightByKey.has(entry.key)) {
    inflightByKey.set(entry.key, send(entry).finally(() => inflightByKey.delete(entry.key)));
  }
  return inflightByKey.get(entry.key);
}

async function send(entry) {
  if (!pending().some((e) => e.key === entry.key)) return { queued: false, gone: true };
  try {
    const report = await api.submit(entry.body, entry.key);
    remove(entry.key);
    remember(report);
    listeners.forEach((fn) => fn(report, entry));
    return { report };
  } catch (e) {
    if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) {
      remove(entry.key);
      return { rejected: e };
    }
    if (e instanceof NetworkError || e instanceof ApiError) return { queued: true, error: e };
    throw e;
  }
}

/** Deliver everything pending, one at a time; safe to call often. */
export function flush() {
  if (inFlight) return inFlight;
  inFlight = (async () => {
    for (const entry of pending()) {
      const r = await deliver(entry);
      if (r.queued) break;
    }
  })().finally(() => { inFlight = null; });
  return inFlight;
}

let retryTimer;
const FIRST_RETRY_MS = 2000;
const MAX_RETRY_MS = 15000;
/**
 * Deliver now and keep retrying while anything is pending: 4 s, 8 s, then every 15 s. A page
 * loaded just as the connection comes back gets no "online" event, and its first try may still
 * fail; a short first retry keeps the citizen from waiting a full interval for the receipt.
 */
export function startAutoFlush() {
  let delay = FIRST_RETRY_MS;
  window.addEventListener('online', () => { delay = FIRST_RETRY_MS; flush(); });
  const tick = async () => {
    if (pending().length && navigator.onLine !== false) await flush().catch(() => {});
    delay = pending().length ? Math.min(delay * 2, MAX_RETRY_MS) : FIRST_RETRY_MS;
    retryTimer = setTimeout(tick, pending().length ? delay : MAX_RETRY_MS);
  };
  clearTimeout(retryTimer);
  tick();
}
