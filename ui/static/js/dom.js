// dom.js builds elements and formats values. Every value from the registry
// goes into the page as text (textContent, attribute values), never as
// HTML: the Content-Security-Policy's Trusted Types make HTML sinks throw.

// el creates an element: el('a', {href: '#/', class: 'x'}, 'text', child).
// Attributes are set with setAttribute (never style or on* handlers: the
// policy forbids those); children are nodes or strings (text nodes).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(e, c);
    else e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// setText sets a node's text only when it differs, so that a refresh that
// changes nothing touches nothing.
export function setText(node, s) {
  s = String(s);
  if (node.textContent !== s) node.textContent = s;
}

// setAttr sets an attribute only when it differs.
export function setAttr(node, name, v) {
  v = String(v);
  if (node.getAttribute(name) !== v) node.setAttribute(name, v);
}

// clear removes an element's children.
export function clear(node) {
  node.replaceChildren();
}

// ago says how long ago a time (Unix seconds) was, relative to now
// (Unix seconds): "12 s ago", "5 min ago", "3 h ago", "4 d ago".
export function ago(then, now) {
  if (!then) return '–';
  const d = Math.max(0, Math.floor(now - then));
  if (d < 60) return `${d} s ago`;
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return `${Math.floor(d / 86400)} d ago`;
}

// stamp formats Unix seconds as a local date and time.
export function stamp(secs) {
  if (!secs) return '–';
  const d = new Date(secs * 1000);
  return d.toLocaleString(undefined, {year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

// clock formats a Date as HH:MM:SS.
export function clockTime(d) {
  return d.toLocaleTimeString(undefined, {hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

// duration formats seconds as "30 s", "2 min", "1.5 h".
export function duration(secs) {
  if (secs < 120) return `${+secs.toFixed(3)} s`;
  if (secs < 7200) return `${+(secs / 60).toFixed(1)} min`;
  return `${+(secs / 3600).toFixed(1)} h`;
}

// fieldText shows an execution field (x-command, …): a string as it is,
// any other JSON value as JSON, an absent one as "–".
export function fieldText(v) {
  if (v === undefined) return '–';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

// labelsText is the labels as "k=v k=v", sorted.
export function labelsText(labels) {
  if (!labels) return '';
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(' ');
}

// keyed updates the children of parent to show items, one element per key:
// existing elements are kept and updated in place (update), new ones made
// (create), gone ones removed, and the order made that of items. They
// follow after (a header element kept as it is), if given; any other child
// without a key (such as an "empty" message) is removed.
export function keyed(parent, items, key, create, update, after = null) {
  const old = new Map();
  for (const c of [...parent.children]) {
    if (c.dataset.key !== undefined) old.set(c.dataset.key, c);
    else if (c !== after) c.remove();
  }
  let prev = after;
  for (const it of items) {
    const k = key(it);
    let node = old.get(k);
    if (node) old.delete(k);
    else {
      node = create(it);
      node.dataset.key = k;
    }
    update(node, it);
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (want !== node) parent.insertBefore(node, want);
    prev = node;
  }
  for (const n of old.values()) n.remove();
}

// copyText copies s to the clipboard: the Clipboard API where the page is
// a secure context, else a selected text area and execCommand.
export async function copyText(s) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(s);
    return;
  }
  const ta = el('textarea', {readonly: true, class: 'visually-hidden'});
  ta.value = s;
  document.body.append(ta);
  ta.select();
  const ok = document.execCommand('copy');
  ta.remove();
  if (!ok) throw new Error('copy refused');
}
