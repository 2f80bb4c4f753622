// citypin's HTTP API. Errors come back as RFC 9457 problem+json; this turns them into ApiError.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** [{field, message}] from the problem body, if any. */
  get fieldErrors() { return Array.isArray(this.problem.errors) ? this.problem.errors : []; }
}

/** A fetch that failed before any HTTP answer (offline, connection dropped). */
export class NetworkError extends Error {}

const TOKEN_KEY = 'citypin.crewToken';
export const getToken = () => localStorage.getItem(TOKEN_KEY) || '';
export const setToken = (t) => (t ? localStorage.setItem(TOKEN_KEY, t) : localStorage.removeItem(TOKEN_KEY));

export async function request(path, { method = 'GET', body, headers = {}, auth = false } = {}) {
  const h = { Accept: 'application/json, application/problem+json, application/geo+json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (auth && getToken()) h.Authorization = `Bearer ${getToken()}`;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new NetworkError(e.message);
  }
  const text = await res.text().catch(() => '');
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 200) }; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function supporterKey(id) {
  const keys = JSON.parse(localStorage.getItem('citypin.supporterKeys') || '{}');
  if (!keys[id]) {
    keys[id] = crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    localStorage.setItem('citypin.supporterKeys', JSON.stringify(keys));
  }
  return keys[id];
}

const qs = (params) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  return p.toString();
};

export const api = {
  // Open311's list is the contract; the native list has the same fields (used while Open311 is absent).
  services: () => request('/open311/v2/services.json').catch((e) => {
    if (e instanceof ApiError && e.status === 404) return request('/api/v1/services');
    throw e;
  }),
  similar: (lat, lon, serviceCode) => request(`/api/v1/reports/similar?${qs({ lat, lon, service_code: serviceCode })}`),
  // citypin counts a supporter once per Idempotency-Key (or per e-mail/phone): the key is kept per
  // device and report, so tapping "me too" twice, or again after a reload, counts once.
  support: (id, contact) => request(`/api/v1/reports/${encodeURIComponent(id)}/supporters`, { method: 'POST', body: contact ? { contact } : {}, headers: { 'Idempotency-Key': supporterKey(id) } }),
  submit: (body, idempotencyKey) => request('/api/v1/reports', { method: 'POST', body, headers: { 'Idempotency-Key': idempotencyKey } }),
  report: (ref) => request(`/api/v1/reports/${encodeURIComponent(ref)}`),
  history: (ref) => request(`/api/v1/reports/${encodeURIComponent(ref)}/history`),
  nearby: (params) => request(`/api/v1/incidents/nearby?${qs(params)}`, { auth: true }),
  setStatus: (id, status, note) => request(`/api/v1/reports/${encodeURIComponent(id)}/status`, { method: 'POST', body: { status, note }, auth: true }),
  merge: (id, into) => request(`/api/v1/reports/${encodeURIComponent(id)}/merge`, { method: 'POST', body: { into }, auth: true }),
  qs,
};
