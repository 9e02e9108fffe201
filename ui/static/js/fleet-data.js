// fleet-data.js holds the fleet as the dashboard knows it: one row per
// (host, agent name) from GET /hosts?detail=true&active=false, the
// heartbeat interval of each active instance (GET /instances, which has
// it), and how events, re-listings and time change them. Heartbeats make
// no events, so last_seen is re-listed periodically; a row that looks
// about to expire is checked with the registry before it is shown so.

import * as api from './api.js';

export const pairKey = (host, name) => host + '\u0000' + name;

// Above this many changed pairs at once, one re-listing is cheaper than a
// request per pair.
const perPairMax = 40;
// The periodic re-listing: at least this often while the page is visible,
// and at most a twentieth of the time a listing takes.
const refreshEvery = 15000;

// state is a row's liveness mark: "inactive"; "expiring" when it is
// active but has missed two heartbeats, so that its deadline (last_seen +
// 3 × heartbeat_interval) is at most one interval away; else "active".
export function state(row, interval, now) {
  if (!row.active) return 'inactive';
  if (interval > 0 && now - row.last_seen > 2 * interval) return 'expiring';
  return 'active';
}

const fields = ['instance_id', 'version', 'tool_count', 'active', 'last_seen', 'owner'];

export class FleetData extends EventTarget {
  constructor() {
    super();
    this.rows = new Map(); // pairKey → row
    this.intervals = new Map(); // instance_id → heartbeat_interval (s)
    this.index = 0; // X-Registry-Index of the last listing
    this.loaded = false;
    this.error = null;
    this.pending = new Set(); // pair keys to read again
    this.ids = new Set(); // instance ids whose interval to read
    this.flushTimer = 0;
    this.loading = null;
    this.again = false;
    this.lastLoad = 0;
    this.loadMs = 0;
    this.etag = '';
    this.walking = false;
    this.checked = new Map(); // pairKey → when it was last checked for expiry
    this.marks = new Map(); // pairKey → the state last computed
    this.lastFull = 0;
  }

  interval(row) {
    return this.intervals.get(row.instance_id) || 0;
  }

  state(row, now) {
    return state(row, this.interval(row), now);
  }

  changed(detail) {
    this.dispatchEvent(new CustomEvent('change', {detail}));
  }

  // load lists every pair and replaces the rows; concurrent calls share
  // one listing (and ask for one more if they came during it).
  load() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.again = false;
          const t0 = performance.now();
          const r = await api.getJSON('hosts?detail=true&active=false', {etag: this.etag});
          this.loadMs = performance.now() - t0;
          this.lastLoad = Date.now();
          this.lastFull = Date.now();
          const hadError = this.error;
          this.error = null;
          this.index = r.index;
          if (!r.notModified) {
            this.etag = r.etag || '';
            if (!this.loaded) performance.mark('runspec:hosts-read');
            await this.replace(r.data);
          } else if (hadError) {
            this.changed({keys: new Set(), removed: false});
          }
        } while (this.again);
      } catch (e) {
        this.lastLoad = Date.now();
        this.error = e;
        this.changed({error: e});
        throw e;
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  // replace makes the rows those of a full listing, keeping the row
  // objects of pairs that stay.
  // The first listing is applied at once (nothing is on the screen yet); a
  // re-listing in slices, letting the page run between them, since at
  // 20,000 rows comparing them all is several frames' worth of work.
  async replace(list) {
    const first = !this.loaded;
    const seen = new Set();
    const changed = new Set();
    const missing = [];
    const slice = first ? list.length : 2000;
    for (let i = 0; i < list.length; i += slice) {
      if (i > 0) await new Promise((r) => setTimeout(r, 0));
      for (let j = i; j < Math.min(i + slice, list.length); j++) {
        const h = list[j];
        const k = pairKey(h.host, h.name);
        seen.add(k);
        if (this.update(k, h)) changed.add(k);
        if (!first && h.active && !this.intervals.has(h.instance_id)) missing.push(h.instance_id);
      }
    }
    let removed = false;
    for (const k of this.rows.keys()) {
      if (!seen.has(k)) {
        this.rows.delete(k);
        this.marks.delete(k);
        this.checked.delete(k);
        removed = true;
      }
    }
    this.loaded = true;
    this.changed({keys: changed, removed, first});
    if (first) {
      // After the first screen (whose frame is already asked for): the
      // intervals, for the expiring marks.
      requestAnimationFrame(() => setTimeout(() => this.walkIntervals(), 0));
    } else if (missing.length > perPairMax) {
      this.walkIntervals();
    } else {
      for (const id of missing) this.ids.add(id);
      if (missing.length) this.schedule();
    }
  }

  // update sets the row of pair k from a host entry; it reports whether
  // anything shown changed.
  update(k, h) {
    const row = this.rows.get(k);
    if (!row) {
      this.rows.set(k, new Row(k, h));
      return true;
    }
    return row.set(h);
  }

  // event takes one change from /events: the pair it concerns is read
  // again (soon, together with the others of the moment).
  event(kind, ev) {
    if (kind === 'reset') {
      this.pending.clear();
      this.load().catch(() => {});
      return;
    }
    if (!ev || typeof ev.host !== 'string') return;
    this.pending.add(pairKey(ev.host, ev.name));
    if (kind === 'registered' || kind === 'active') this.ids.add(ev.instance_id);
    this.schedule();
  }

  schedule() {
    if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), 60);
  }

  async flush() {
    this.flushTimer = 0;
    const keys = [...this.pending];
    const ids = [...this.ids];
    this.pending.clear();
    this.ids.clear();
    try {
      if (keys.length > perPairMax) {
        await this.load();
      } else if (keys.length) {
        await Promise.all(keys.map((k) => this.readPair(k)));
      }
      if (ids.length > perPairMax) {
        this.walkIntervals();
      } else if (ids.length) {
        await Promise.all(ids.map((id) => this.readInterval(id)));
      }
    } catch (e) {
      if (e instanceof api.HttpError && e.auth) {
        this.error = e;
        this.changed({error: e});
      }
      // Otherwise the next listing puts it right.
    }
  }

  // readPair reads the entry the registry shows for one (host, name).
  async readPair(k) {
    const [host, name] = k.split('\u0000');
    const q = new URLSearchParams({detail: 'true', active: 'false', host, name});
    const r = await api.getJSON('hosts?' + q);
    const h = r.data.find((e) => e.host === host && e.name === name);
    if (!h) {
      if (this.rows.delete(k)) this.changed({keys: new Set(), removed: true});
      return;
    }
    const added = !this.rows.has(k);
    if (this.update(k, h) || added) this.changed({keys: new Set([k]), removed: false});
    if (h.active && !this.intervals.has(h.instance_id)) await this.readInterval(h.instance_id);
  }

  async readInterval(id) {
    try {
      const r = await api.getJSON('instances/' + api.enc(id));
      this.setInterval(r.data.instance_id, r.data.heartbeat_interval);
    } catch (e) {
      if (!(e instanceof api.HttpError && e.status === 404)) throw e;
    }
  }

  setInterval(id, secs) {
    if (typeof secs === 'number' && this.intervals.get(id) !== secs) this.intervals.set(id, secs);
  }

  // walkIntervals reads the heartbeat interval of every active instance,
  // a page at a time; the records' tool lists are dropped as each page
  // is read.
  async walkIntervals() {
    if (this.walking) return;
    this.walking = true;
    try {
      let path = 'instances?active=true&limit=1000';
      while (path) {
        const r = await api.getJSON(path);
        for (const inst of r.data) this.setInterval(inst.instance_id, inst.heartbeat_interval);
        path = api.nextLink(r.link, path);
      }
      this.changed({keys: new Set(), removed: false, intervals: true});
      document.documentElement.dataset.intervals = 'ready';
    } catch {
      // The marks wait for the next walk.
    } finally {
      this.walking = false;
    }
  }

  // tick runs every second: the periodic re-listing (while the page is
  // visible), and a check with the registry of the rows that have just
  // come to look expiring by the clock, since our last_seen may be older
  // than the registry's. It returns whether any mark changed.
  tick(now) {
    if (this.error) {
      // Retry a failed listing, unless it wants a key (the page asks).
      if (!(this.error instanceof api.HttpError && this.error.auth) && Date.now() - this.lastLoad > 5000) {
        this.lastLoad = Date.now();
        this.load().catch(() => {});
      }
      return false;
    }
    if (!this.loaded) return false;
    if (document.visibilityState === 'visible' && Date.now() - this.lastLoad > Math.max(refreshEvery, 20 * this.loadMs)) {
      this.lastLoad = Date.now();
      this.load().catch(() => {});
    }
    let marksChanged = false;
    const check = [];
    for (const row of this.rows.values()) {
      const s = this.state(row, now);
      if (this.marks.get(row.key) !== s) {
        if (s === 'expiring') {
          const at = this.checked.get(row.key) || 0;
          if (Date.now() - at > 1000 * Math.max(2, this.interval(row))) {
            this.checked.set(row.key, Date.now());
            check.push(row.key);
          }
        }
        this.marks.set(row.key, s);
        marksChanged = true;
      }
    }
    if (check.length > perPairMax) {
      if (Date.now() - this.lastFull > 5000) this.load().catch(() => {});
    } else {
      for (const k of check) this.pending.add(k);
      if (check.length) this.schedule();
    }
    return marksChanged;
  }
}

// natKey is a key that sorts as people expect ("web-2" before "web-10")
// with a plain string comparison, which is many times faster than a
// collator on 20,000 rows: letters folded to lower case, and runs of
// digits padded to one width.
export function natKey(s) {
  return String(s).toLowerCase().replace(/\d+/g, (d) => (d.length >= 16 ? d : d.padStart(16, '0')));
}

// A Row is one (host, agent name) as the fleet shows it: the fields of its
// host entry, and keys derived from them when first needed (searchOf,
// sortKey, labelText), so that a first listing of 20,000 rows builds only
// what the first screen uses.
class Row {
  constructor(k, h) {
    this.key = k;
    this.host = h.host;
    this.name = h.name;
    this.instance_id = h.instance_id;
    this.version = h.version;
    this.tool_count = h.tool_count;
    this.active = h.active;
    this.last_seen = h.last_seen;
    this.owner = h.owner;
    this.labels = h.labels || null;
    this.drop();
  }

  drop() {
    this.lt = undefined;
    this.search = undefined;
    this.kHost = undefined;
    this.kName = undefined;
    this.kVersion = undefined;
    this.kLabels = undefined;
  }

  // labelText is the labels as "k=v k=v", sorted.
  get labelText() {
    if (this.lt === undefined) {
      const l = this.labels;
      this.lt = l ? Object.keys(l).sort().map((k) => `${k}=${l[k]}`).join(' ') : '';
    }
    return this.lt;
  }

  // set takes a newer host entry of the pair and reports whether anything
  // shown changed.
  set(h) {
    let diff = !sameLabels(this.labels, h.labels || null);
    for (const f of fields) {
      if (this[f] !== h[f]) {
        this[f] = h[f];
        diff = true;
      }
    }
    if (diff) {
      this.labels = h.labels || null;
      this.drop();
    }
    return diff;
  }
}

function sameLabels(a, b) {
  if (a === b) return true;
  if (!a || !b) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

// searchOf is the lower-case text the text filter looks in.
export function searchOf(row) {
  return (row.search ??= searchText(row));
}

// sortKey is a row's key for a column: host (then agent), name, version or
// labels.
export function sortKey(row, col) {
  switch (col) {
    case 'name':
      return (row.kName ??= natKey(row.name));
    case 'version':
      return (row.kVersion ??= natKey(row.version));
    case 'labels':
      return (row.kLabels ??= natKey(row.labelText));
    default:
      return (row.kHost ??= natKey(row.host) + '\u0000' + natKey(row.name));
  }
}

function searchText(row) {
  return [row.host, row.name, row.version, row.instance_id, row.labelText, row.owner || ''].join('\u0001').toLowerCase();
}
