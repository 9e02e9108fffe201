// api.js talks to the registry's public HTTP API: where it is (the page's
// runspec-api meta element, relative to the page), the key the user typed
// (in this module's memory only: never stored, never in a URL), JSON reads
// and writes, and the registry's clock as seen through the Date header.

const meta = document.querySelector('meta[name="runspec-api"]');
export const base = new URL(meta ? meta.content : '../', location.href);

let key = '';
const keyListeners = new Set();

// setKey sets the key sent with every request (X-API-Key); '' forgets it.
export function setKey(k) {
  key = k;
  for (const f of keyListeners) f(key !== '');
}

// hasKey reports whether the user gave a key.
export function hasKey() {
  return key !== '';
}

// onKey calls f(hasKey) whenever the key changes.
export function onKey(f) {
  keyListeners.add(f);
}

// offKey stops calling f.
export function offKey(f) {
  keyListeners.delete(f);
}

// headers are the request headers every call sends.
export function headers(extra) {
  const h = {Accept: 'application/json', ...extra};
  if (key) h['X-API-Key'] = key;
  return h;
}

// url is the URL of an API path such as "hosts?detail=true".
export function url(path) {
  return new URL(path, base);
}

// An HttpError is an answer that is not 2xx, with the registry's detail.
export class HttpError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }

  // auth reports a refusal for want of a (right) key.
  get auth() {
    return this.status === 401 || this.status === 403;
  }
}

async function failure(res) {
  let detail = res.statusText;
  try {
    const body = await res.json();
    if (typeof body.detail === 'string') detail = body.detail;
    else if (body.detail !== undefined) detail = JSON.stringify(body.detail);
  } catch {
    // not JSON: keep the status text
  }
  return new HttpError(res.status, detail);
}

// The registry's clock: offset (seconds) from the browser's, estimated from
// the Date header of answers, so that "12 s ago" and "expiring soon" hold
// when the two clocks differ. Date has whole seconds, so an offset under 2 s
// is taken as none.
let offset = 0;

function observeDate(res, sent, received) {
  const d = Date.parse(res.headers.get('Date') || '');
  if (Number.isNaN(d)) return;
  const est = (d + 500 - (sent + received) / 2) / 1000;
  offset = Math.abs(est) < 2 ? 0 : est;
}

// now is the registry's time, in Unix seconds.
export function now() {
  return Date.now() / 1000 + offset;
}

// getJSON reads path and returns {data, index, etag}. With etag it answers
// {notModified: true} when the answer has not changed. Failures throw an
// HttpError (or the network's TypeError).
export async function getJSON(path, {signal, etag} = {}) {
  const sent = Date.now();
  const res = await fetch(url(path), {headers: headers(), signal, cache: 'no-cache'});
  observeDate(res, sent, Date.now());
  if (!res.ok) throw await failure(res);
  const tag = res.headers.get('ETag');
  const index = Number(res.headers.get('X-Registry-Index') || 0);
  if (etag && tag === etag) {
    // The browser revalidated its copy (304): nothing to parse.
    return {notModified: true, etag: tag, index};
  }
  return {data: await res.json(), index, etag: tag, link: res.headers.get('Link')};
}

// del sends DELETE path and returns the answer's JSON.
export async function del(path) {
  const res = await fetch(url(path), {method: 'DELETE', headers: headers(), cache: 'no-store'});
  if (!res.ok) throw await failure(res);
  return res.json();
}

// nextLink returns the path of a Link header's rel="next" target, resolved
// against the request's path, or '' when there is none.
export function nextLink(link, path) {
  if (!link) return '';
  const m = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link);
  if (!m) return '';
  const u = new URL(m[1], url(path));
  return u.href.slice(base.href.length);
}

// enc escapes one path segment (an instance id, a tool name).
export function enc(s) {
  return encodeURIComponent(s);
}
