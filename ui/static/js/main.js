// main.js starts the dashboard: the router (#/, #/tools, #/tools/NAME,
// #/instances/ID), the key field, the event stream and its status, the
// events panel, the confirmation dialog and the one-second tick that moves
// "… ago" texts and liveness marks.

import * as api from './api.js';
import {Stream} from './sse.js';
import {FleetData} from './fleet-data.js';
import {FleetView} from './fleet.js';
import {ToolsView, ToolView} from './tools.js';
import {InstanceView} from './instance.js';
import {el, setText, clockTime} from './dom.js';

const $ = (id) => document.getElementById(id);
const data = new FleetData();
const viewBox = $('view');
let view = null;
let viewKey = '';

// ---- notices

let noticeOf = '';
function notice(text, of) {
  const n = $('notice');
  n.hidden = !text;
  setText(n, text || '');
  noticeOf = text ? of : '';
}
function clearNotice(of) {
  if (noticeOf === of) notice('');
}

let needKey = false;
function showError(e) {
  if (e instanceof api.HttpError && e.auth) {
    needKey = true;
    notice(api.hasKey()
      ? `The registry refused this key (${e.detail}). Type another one above.`
      : 'This registry needs a key to read: type it in the API key field above (it is kept in this tab\'s memory only).', 'auth');
    setStream('key', {});
    if (!api.hasKey()) $('key-input').focus();
    return;
  }
  notice(`Could not read from the registry: ${e.message || e}. Retrying…`, 'net');
}

// ---- router

function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  return {path, params};
}

function setParams(p) {
  const {path} = parseHash();
  const s = p.toString();
  history.replaceState(null, '', '#' + path + (s ? '?' + s : ''));
}

function route() {
  const {path, params} = parseHash();
  if (path === viewKey && view) return; // only the query moved
  if (view && view.unmount) view.unmount();
  viewKey = path;
  let m;
  let nav = '';
  if (path === '/' || path === '') {
    view = new FleetView(data, params, setParams);
    nav = 'fleet';
    document.title = 'Fleet · runspec registry';
  } else if (path === '/tools') {
    view = new ToolsView(params, setParams, showError);
    nav = 'tools';
    document.title = 'Tools · runspec registry';
  } else if ((m = /^\/tools\/(.+)$/.exec(path))) {
    const name = decodeURIComponent(m[1]);
    view = new ToolView(name, data, showError);
    nav = 'tools';
    document.title = `${name} · runspec registry`;
  } else if ((m = /^\/instances\/(.+)$/.exec(path))) {
    const id = decodeURIComponent(m[1]);
    view = new InstanceView(id, confirmDialog, showError);
    document.title = `${id} · runspec registry`;
  } else {
    view = {mount: (p) => p.replaceChildren(el('section', {class: 'card'}, el('h1', null, 'Not found'), el('p', null, el('a', {href: '#/'}, 'Back to the fleet'))))};
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  view.mount(viewBox);
}

// ---- confirmation

function confirmDialog(title, text, ok) {
  const d = $('confirm');
  setText($('confirm-title'), title);
  setText($('confirm-text'), text);
  setText($('confirm-ok'), ok);
  return new Promise((resolve) => {
    const done = (v) => {
      $('confirm-ok').removeEventListener('click', yes);
      $('confirm-cancel').removeEventListener('click', no);
      d.removeEventListener('close', closed);
      if (d.open) d.close();
      resolve(v);
    };
    const yes = () => done(true);
    const no = () => done(false);
    // Escape closes the dialog; the close event of an earlier dialog may
    // still be queued when this one opens, so a closed dialog is checked.
    const closed = () => {
      if (!d.open) done(false);
    };
    $('confirm-ok').addEventListener('click', yes);
    $('confirm-cancel').addEventListener('click', no);
    d.addEventListener('close', closed);
    d.showModal();
    $('confirm-cancel').focus();
  });
}

// ---- the event stream

let streamState = 'connecting';
let streamInfo = {};
function setStream(state, info) {
  streamState = state;
  streamInfo = info;
  $('stream').dataset.state = state;
  renderStream();
}

function renderStream() {
  let text;
  switch (streamState) {
    case 'live':
      text = 'live';
      break;
    case 'lost': {
      const left = Math.max(0, Math.ceil((streamInfo.at + streamInfo.retryIn - Date.now()) / 1000));
      text = `stream lost at ${clockTime(streamInfo.since)} · reconnecting${left > 0 ? ` in ${left} s` : '…'}`;
      break;
    }
    case 'key':
      text = 'needs a key';
      break;
    default:
      text = 'connecting…';
  }
  setText($('stream-text'), text);
}

const stream = new Stream({
  onEvent(kind, raw, id) {
    let ev = null;
    try {
      ev = JSON.parse(raw);
    } catch {
      return;
    }
    addEvent(kind, ev, id);
    data.event(kind, ev);
    if (view && view.onEvent) view.onEvent(kind, ev);
  },
  onState(state, info) {
    if (state === 'lost') info.at = Date.now();
    if (state === 'key') {
      streaming = false; // started again once a listing with the key works
      showError(new api.HttpError(403, 'Invalid or missing API key'));
      return;
    }
    setStream(state, info);
  },
});

// ---- the events panel

const maxEvents = 200;
function addEvent(kind, ev, id) {
  const list = $('event-list');
  $('event-empty').hidden = true;
  const what = kind === 'reset'
    ? el('span', {class: 'what'}, 'changes were missed: re-listed')
    : el('span', {class: 'what'},
      kind === 'deleted' ? el('span', null, ev.host) : el('a', {href: '#/instances/' + encodeURIComponent(ev.instance_id)}, ev.host),
      ` · ${ev.name}`, kind === 'tools' ? ` · ${ev.tool_count} tools` : '');
  const now = new Date();
  what.title = kind === 'reset' ? '' : `${ev.instance_id} (index ${id})`;
  list.prepend(el('li', {'data-kind': kind},
    el('time', {datetime: now.toISOString()}, clockTime(now)),
    el('span', {class: 'kind', 'data-kind': kind}, kind),
    what));
  while (list.children.length > maxEvents) list.lastElementChild.remove();
}

// ---- the key

function keyUI() {
  const k = api.hasKey();
  $('key-input').hidden = k;
  $('key-use').hidden = k;
  $('key-set').hidden = !k;
  $('key-forget').hidden = !k;
}

function useKey() {
  const v = $('key-input').value.trim();
  if (!v) return;
  $('key-input').value = '';
  api.setKey(v);
  keyUI();
  $('key-forget').focus();
  if (needKey || data.error || !streaming) start();
}

$('key-use').addEventListener('click', useKey);
$('key-input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') useKey();
});
$('key-forget').addEventListener('click', () => {
  api.setKey('');
  keyUI();
  $('key-input').focus();
});

// ---- start

let streaming = false;
function start() {
  needKey = false;
  data.load().catch(() => {}); // a failure comes as a change with an error
}

data.addEventListener('change', (e) => {
  if (e.detail.error) {
    showError(e.detail.error);
    return;
  }
  clearNotice('auth');
  clearNotice('net');
  if (!streaming) {
    // From the index of the first listing: no change between the two is
    // missed.
    streaming = true;
    stream.start(data.index);
  }
});

setInterval(() => {
  const marks = data.tick(api.now());
  if (view && view.tick) view.tick(marks);
  if (streamState === 'lost') renderStream();
}, 1000);

window.addEventListener('hashchange', route);
keyUI();
route();
start();
