// fleet.js is the fleet view: one row per (host, agent name), filtered by
// text, state and label, sorted by any column, and rendered only where
// visible (a pool of fixed-height rows over a spacer), so that 20,000
// agents scroll as smoothly as 20. Rows are updated in place, text by text.

import {el, setText, setAttr, ago} from './dom.js';
import * as api from './api.js';
import {sortKey, searchOf} from './fleet-data.js';

const columns = [
  {id: 'state', title: 'State', cls: 'c-state'},
  {id: 'host', title: 'Host', cls: 'c-host'},
  {id: 'name', title: 'Agent', cls: 'c-name'},
  {id: 'version', title: 'Version', cls: 'c-version'},
  {id: 'tools', title: 'Tools', cls: 'c-tools num'},
  {id: 'seen', title: 'Last seen', cls: 'c-seen'},
  {id: 'labels', title: 'Labels', cls: 'c-labels'},
];

const stateOrder = {expiring: 0, active: 1, inactive: 2};
const overscan = 8;

export class FleetView {
  constructor(data, params, setParams) {
    this.data = data;
    this.setParams = setParams;
    this.q = params.get('q') || '';
    this.stateFilter = params.get('state') || '';
    this.label = params.get('label') || '';
    this.sort = params.get('sort') || 'host';
    this.dir = params.get('dir') === 'desc' ? -1 : 1;
    this.list = [];
    this.pool = [];
    this.rowH = 40;
    this.dirty = true;
    this.frame = 0;
    this.marked = false;
    this.build();
    this.onChange = () => this.invalidate();
    data.addEventListener('change', this.onChange);
    this.onResize = () => {
      this.measure();
      this.draw();
    };
    window.addEventListener('resize', this.onResize);
  }

  build() {
    this.qInput = el('input', {type: 'search', placeholder: 'Filter: host, agent, version, id, label', 'aria-label': 'Filter the fleet', value: this.q});
    this.stateSelect = el('select', {'aria-label': 'State'},
      el('option', {value: ''}, 'All states'),
      el('option', {value: 'active'}, 'Active'),
      el('option', {value: 'expiring'}, 'Expiring soon'),
      el('option', {value: 'inactive'}, 'Inactive'));
    this.stateSelect.value = this.stateFilter;
    this.labelInput = el('input', {type: 'text', class: 'label-filter', placeholder: 'label: key=value', 'aria-label': 'Label filter (key=value, or key)', value: this.label, spellcheck: 'false'});
    this.count = el('span', {class: 'count', 'aria-live': 'polite'}, 'loading…');
    const toolbar = el('div', {class: 'toolbar'}, this.qInput, this.stateSelect, this.labelInput, this.count);

    this.head = el('div', {class: 'grid-head grid-cols', role: 'row'});
    this.headCells = new Map();
    for (const c of columns) {
      const b = el('button', {type: 'button'}, c.title);
      b.addEventListener('click', () => this.sortBy(c.id));
      const cell = el('div', {class: c.cls, role: 'columnheader'}, b);
      this.headCells.set(c.id, cell);
      this.head.append(cell);
    }
    this.rowsBox = el('div', {class: 'rows', role: 'rowgroup'});
    this.spacer = el('div', {class: 'spacer'}, this.rowsBox);
    this.emptyBox = el('div', {class: 'empty', hidden: true});
    this.scroller = el('div', {class: 'scroller', tabindex: '0', 'aria-label': 'Fleet rows'}, this.spacer, this.emptyBox);
    this.grid = el('div', {class: 'grid', role: 'table', 'aria-label': 'Fleet', 'aria-rowcount': '0'}, this.head, this.scroller);
    this.root = el('section', {class: 'fleet', 'aria-labelledby': 'fleet-title'},
      el('h1', {id: 'fleet-title', class: 'visually-hidden'}, 'Fleet'), toolbar, this.grid);

    this.qInput.addEventListener('input', () => {
      this.q = this.qInput.value;
      this.filtersChanged();
    });
    this.stateSelect.addEventListener('change', () => {
      this.stateFilter = this.stateSelect.value;
      this.filtersChanged();
    });
    this.labelInput.addEventListener('input', () => {
      this.label = this.labelInput.value;
      this.filtersChanged();
    });
    this.scroller.addEventListener('scroll', () => this.draw(), {passive: true});
    // A label chip filters by its label.
    this.rowsBox.addEventListener('click', (e) => {
      const chip = e.target.closest('button.chip');
      if (!chip) return;
      this.label = chip.textContent;
      this.labelInput.value = this.label;
      this.filtersChanged();
    });
    this.headState();
  }

  mount(parent) {
    parent.replaceChildren(this.root);
    this.measure();
    this.invalidate();
  }

  unmount() {
    this.data.removeEventListener('change', this.onChange);
    window.removeEventListener('resize', this.onResize);
    cancelAnimationFrame(this.frame);
  }

  measure() {
    const h = parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--row-h'));
    if (h > 0) this.rowH = h;
  }

  filtersChanged() {
    const p = new URLSearchParams();
    if (this.q) p.set('q', this.q);
    if (this.stateFilter) p.set('state', this.stateFilter);
    if (this.label) p.set('label', this.label);
    if (this.sort !== 'host') p.set('sort', this.sort);
    if (this.dir < 0) p.set('dir', 'desc');
    this.setParams(p);
    this.scroller.scrollTop = 0;
    this.invalidate();
  }

  sortBy(id) {
    if (this.sort === id) this.dir = -this.dir;
    else {
      this.sort = id;
      this.dir = id === 'seen' ? -1 : 1;
    }
    this.headState();
    this.filtersChanged();
  }

  headState() {
    for (const [id, cell] of this.headCells) {
      cell.setAttribute('aria-sort', id === this.sort ? (this.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
  }

  // invalidate recomputes the list at the next frame (many changes in one
  // frame cost one recomputation).
  invalidate() {
    this.dirty = true;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.frameDraw());
  }

  draw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.frameDraw());
  }

  frameDraw() {
    this.frame = 0;
    if (this.dirty) {
      this.dirty = false;
      this.recompute();
    }
    this.render();
  }

  // tick is called every second: the "… ago" texts and the marks move
  // with time.
  tick(marksChanged) {
    if (marksChanged && (this.stateFilter || this.sort === 'state')) this.invalidate();
    else this.render();
  }

  matcher() {
    const words = this.q.toLowerCase().split(/\s+/).filter(Boolean);
    const labels = this.label.split(/[\s,]+/).filter(Boolean).map((s) => {
      const i = s.indexOf('=');
      return i < 0 ? [s, null] : [s.slice(0, i), s.slice(i + 1)];
    });
    const st = this.stateFilter;
    const now = api.now();
    const data = this.data;
    return (row) => {
      if (words.length) {
        const text = searchOf(row);
        for (const w of words) if (!text.includes(w)) return false;
      }
      for (const [k, v] of labels) {
        if (!row.labels || !(k in row.labels)) return false;
        if (v !== null && row.labels[k] !== v) return false;
      }
      if (st && data.state(row, now) !== st) return false;
      return true;
    };
  }

  comparator() {
    const d = this.dir;
    const now = api.now();
    const data = this.data;
    const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    const byHost = (a, b) => cmp(sortKey(a, 'host'), sortKey(b, 'host'));
    switch (this.sort) {
      case 'state': {
        // The marks move with time: computed once per sort.
        const st = new Map();
        for (const row of this.list) st.set(row, stateOrder[data.state(row, now)]);
        const of = (row) => st.get(row) ?? stateOrder[data.state(row, now)];
        return (a, b) => d * (of(a) - of(b)) || byHost(a, b);
      }
      case 'name':
        return (a, b) => d * cmp(sortKey(a, 'name'), sortKey(b, 'name')) || byHost(a, b);
      case 'version':
        return (a, b) => d * cmp(sortKey(a, 'version'), sortKey(b, 'version')) || byHost(a, b);
      case 'tools':
        return (a, b) => d * (a.tool_count - b.tool_count) || byHost(a, b);
      case 'seen':
        return (a, b) => d * (a.last_seen - b.last_seen) || byHost(a, b);
      case 'labels':
        return (a, b) => d * cmp(sortKey(a, 'labels'), sortKey(b, 'labels')) || byHost(a, b);
      default:
        return (a, b) => d * byHost(a, b);
    }
  }

  recompute() {
    const match = this.matcher();
    const list = [];
    for (const row of this.data.rows.values()) if (match(row)) list.push(row);
    this.list = list;
    list.sort(this.comparator());
    const total = this.data.rows.size;
    let active = 0;
    for (const row of this.data.rows.values()) if (row.active) active++;
    if (!this.data.loaded) setText(this.count, this.data.error ? '' : 'loading…');
    else setText(this.count, `${list.length.toLocaleString()} shown · ${total.toLocaleString()} agents · ${active.toLocaleString()} active`);
    this.spacer.style.height = `${list.length * this.rowH}px`;
    this.grid.setAttribute('aria-rowcount', String(list.length + 1));
    const empty = this.data.loaded && list.length === 0;
    this.emptyBox.hidden = !empty;
    if (empty) setText(this.emptyBox, total === 0 ? 'No agents have registered yet.' : 'No agent matches the filters.');
  }

  // render fills the pool of rows for the visible part of the list.
  render() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowH) - overscan);
    const last = Math.min(this.list.length, Math.ceil((top + height) / this.rowH) + overscan);
    const n = Math.max(0, last - first);
    while (this.pool.length < n) this.pool.push(this.makeRow());
    const kids = this.rowsBox.children;
    while (kids.length > n) kids[kids.length - 1].remove();
    while (kids.length < n) this.rowsBox.append(this.pool[kids.length]);
    this.rowsBox.style.transform = `translateY(${first * this.rowH}px)`;
    const now = api.now();
    for (let i = 0; i < n; i++) this.fill(this.pool[i], this.list[first + i], first + i, now);
    if (!this.marked && this.data.loaded) {
      this.marked = true;
      // The first screen of rows is in the page: a User Timing mark, from
      // the navigation's start (what the browser tests measure).
      performance.mark('runspec:first-rows', {detail: {rows: n, agents: this.data.rows.size}});
      document.documentElement.dataset.fleetReady = 'true';
    }
  }

  makeRow() {
    const r = el('div', {class: 'row grid-cols', role: 'row'});
    r.stateCell = el('span', {class: 'c-state state', role: 'cell'});
    r.hostLink = el('a', {href: '#/'});
    r.hostCell = el('span', {class: 'c-host', role: 'cell'}, r.hostLink);
    r.nameCell = el('span', {class: 'c-name', role: 'cell'});
    r.versionCell = el('span', {class: 'c-version', role: 'cell'});
    r.toolsCell = el('span', {class: 'c-tools num', role: 'cell'});
    r.seenCell = el('span', {class: 'c-seen ago', role: 'cell'});
    r.labelsCell = el('span', {class: 'c-labels chips', role: 'cell'});
    r.append(r.stateCell, r.hostCell, r.nameCell, r.versionCell, r.toolsCell, r.seenCell, r.labelsCell);
    r.labelText = null;
    return r;
  }

  fill(r, row, i, now) {
    setAttr(r, 'aria-rowindex', i + 2);
    const st = this.data.state(row, now);
    setAttr(r.stateCell, 'data-state', st);
    setText(r.stateCell, st === 'expiring' ? 'expiring soon' : st);
    setText(r.hostLink, row.host);
    setAttr(r.hostLink, 'href', '#/instances/' + encodeURIComponent(row.instance_id));
    setAttr(r.hostLink, 'title', row.host);
    setText(r.nameCell, row.name);
    setAttr(r.nameCell, 'title', row.name);
    setText(r.versionCell, row.version);
    setText(r.toolsCell, row.tool_count);
    setText(r.seenCell, ago(row.last_seen, now));
    setAttr(r.seenCell, 'title', new Date(row.last_seen * 1000).toISOString());
    if (r.labelText !== row.labelText) {
      r.labelText = row.labelText;
      const chips = [];
      if (row.labels) {
        for (const k of Object.keys(row.labels).sort()) {
          chips.push(el('button', {type: 'button', class: 'chip', title: 'Filter by this label'}, `${k}=${row.labels[k]}`));
        }
      }
      r.labelsCell.replaceChildren(...chips);
    }
  }
}
