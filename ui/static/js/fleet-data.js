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
            this.replace(r.data);
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
  replace(list) {
    const seen = new Set();
    const changed = new Set();
    const missing = [];
    for (const h of list) {
      const k = pairKey(h.host, h.name);
      seen.add(k);
      if (this.update(k, h)) changed.add(k);
      if (h.active && !this.intervals.has(h.instance_id)) missing.push(h.instance_id);
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
    const first = !this.loaded;
    this.loaded = true;
    this.changed({keys: changed, removed, first});
    if (first) {
      // After the first screen: the intervals, for the expiring marks.
      setTimeout(() => this.walkIntervals(), 0);
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
    let row = this.rows.get(k);
    const labels = h.labels || null;
    const labelText = labels ? Object.keys(labels).sort().map((l) => `${l}=${labels[l]}`).join(' ') : '';
    if (!row) {
      row = {key: k, host: h.host, name: h.name, labels, labelText};
      for (const f of fields) row[f] = h[f];
      row.search = searchText(row);
      this.rows.set(k, row);
      return true;
    }
    let diff = labelText !== row.labelText;
    for (const f of fields) {
      if (row[f] !== h[f]) {
        row[f] = h[f];
        diff = true;
      }
    }
    if (diff) {
      row.labels = labels;
      row.labelText = labelText;
      row.search = searchText(row);
    }
    return diff;
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

function searchText(row) {
  return [row.host, row.name, row.version, row.instance_id, row.labelText, row.owner || ''].join('\u0001').toLowerCase();
}
