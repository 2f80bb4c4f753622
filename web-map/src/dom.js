// Tiny DOM helpers: build elements without innerHTML so server text is never parsed as markup.

/** h('button', {class: 'x', onclick}, 'text', child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

let announceTimer;
/** Say something to screen-reader users through the polite live region. */
export function announce(text) {
  const el = document.getElementById('announcer');
  el.textContent = '';
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { el.textContent = text; }, 50);
}

export function message(kind, text, extra) {
  return h('div', { class: `msg ${kind}`, role: kind === 'bad' ? 'alert' : 'status' }, text, extra);
}

export const fmtDate = (iso) => (iso ? new Date(iso).toLocaleString() : '');
export const round = (v, n = 5) => Math.round(v * 10 ** n) / 10 ** n;
