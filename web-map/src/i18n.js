// All UI text comes from one JSON file per language; translating is adding a file here.
import en from './i18n/en.json';

const messages = en;

/** Translate `key`, replacing `{name}` placeholders from `vars`. */
export function t(key, vars = {}) {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`));
}

/** Fill elements marked with data-i18n (text) and data-i18n-aria (aria-label). */
export function translateDom(root = document) {
  root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll('[data-i18n-aria]').forEach((el) => { el.setAttribute('aria-label', t(el.dataset.i18nAria)); });
}

export const statusLabel = (status) => t(`status.${status}`);
