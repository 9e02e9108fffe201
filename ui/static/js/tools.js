// tools.js holds the tool views: every tool with its description and how
// many active hosts offer it (GET /tools), and one tool's page (GET
// /tools/{name}?detail=true&active=false): its arguments as a form, and a
// table of its hosts with their execution metadata and the command line
// that runs it there, as the registry wrote it (the entry's run field:
// never assembled here), with a copy button.

import {el, setText, setAttr, keyed, fieldText, ago, copyText} from './dom.js';
import {argumentsForm} from './schema.js';
import * as api from './api.js';

const collator = new Intl.Collator(undefined, {numeric: true, sensitivity: 'base'});
const pageSize = 200;

// Refetcher runs fetch at most once per gap, after the last of a burst of
// asks, and now and then on its own (last_seen moves without events).
class Refetcher {
  constructor(fn, gap, every) {
    this.fn = fn;
    this.gap = gap;
    this.timer = 0;
    this.every = every ? setInterval(() => document.visibilityState === 'visible' && this.ask(), every) : 0;
  }

  ask() {
    if (!this.timer) this.timer = setTimeout(() => {
      this.timer = 0;
      this.fn();
    }, this.gap);
  }

  stop() {
    clearTimeout(this.timer);
    clearInterval(this.every);
  }
}

export class ToolsView {
  constructor(params, setParams, showError) {
    this.q = params.get('q') || '';
    this.setParams = setParams;
    this.showError = showError;
    this.tools = null;
    this.etag = '';
    this.qInput = el('input', {type: 'search', placeholder: 'Filter tools by name or description', 'aria-label': 'Filter tools', value: this.q});
    this.count = el('span', {class: 'count'}, 'loading…');
    this.body = el('tbody');
    this.root = el('section', {class: 'card scroll-page', 'aria-labelledby': 'tools-title'},
      el('h1', {id: 'tools-title'}, 'Tools'),
      el('p', {class: 'muted'}, 'Tools offered by active instances; a host counts once however many of its agents offer the tool.'),
      el('div', {class: 'toolbar'}, this.qInput, this.count),
      el('div', {class: 'table-wrap'}, el('table', null,
        el('thead', null, el('tr', null, el('th', {scope: 'col'}, 'Tool'), el('th', {scope: 'col'}, 'Description'), el('th', {scope: 'col', class: 'num'}, 'Active hosts'))),
        this.body)));
    this.qInput.addEventListener('input', () => {
      this.q = this.qInput.value;
      const p = new URLSearchParams();
      if (this.q) p.set('q', this.q);
      this.setParams(p);
      this.render();
    });
    this.refetch = new Refetcher(() => this.load(), 1000, 30000);
  }

  mount(parent) {
    parent.replaceChildren(this.root);
    this.load();
  }

  unmount() {
    this.refetch.stop();
  }

  onEvent(kind) {
    if (kind !== 'reset') this.refetch.ask();
    else this.load();
  }

  async load() {
    try {
      const r = await api.getJSON('tools', {etag: this.etag});
      if (r.notModified) return;
      this.etag = r.etag || '';
      this.tools = r.data.map((t) => ({
        name: t.name,
        description: typeof t.description === 'string' ? t.description : '',
        hosts: new Set((t.hosts || []).map((h) => h.host)).size,
      }));
      this.tools.sort((a, b) => collator.compare(a.name, b.name));
      this.render();
    } catch (e) {
      this.showError(e);
    }
  }

  render() {
    if (!this.tools) return;
    const words = this.q.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = this.tools.filter((t) => words.every((w) => t.name.toLowerCase().includes(w) || t.description.toLowerCase().includes(w)));
    setText(this.count, `${shown.length.toLocaleString()} of ${this.tools.length.toLocaleString()} tools`);
    keyed(this.body, shown, (t) => t.name, () => {
      const tr = el('tr');
      tr.link = el('a');
      tr.desc = el('td');
      tr.hosts = el('td', {class: 'num'});
      tr.append(el('td', {class: 'nowrap'}, tr.link), tr.desc, tr.hosts);
      return tr;
    }, (tr, t) => {
      setText(tr.link, t.name);
      setAttr(tr.link, 'href', '#/tools/' + encodeURIComponent(t.name));
      setText(tr.desc, t.description || '–');
      setText(tr.hosts, t.hosts);
    });
    if (shown.length === 0) {
      this.body.replaceChildren(el('tr', null, el('td', {colspan: '3', class: 'muted'}, this.tools.length ? 'No tool matches the filter.' : 'No active instance offers a tool.')));
    }
  }
}

const execFields = ['x-command', 'x-run-as', 'x-become-method', 'x-become-flags'];

export class ToolView {
  constructor(name, data, showError) {
    this.name = name;
    this.data = data; // the fleet, for heartbeat intervals
    this.showError = showError;
    this.etag = '';
    this.tool = null;
    this.limit = pageSize;
    this.filter = '';
    this.title = el('h1', null, name);
    this.desc = el('p', {class: 'muted'});
    this.summary = el('p', {class: 'count'});
    this.argsBox = el('div');
    this.schemaPre = el('pre', {class: 'json'});
    this.more = el('button', {type: 'button', hidden: true});
    this.more.addEventListener('click', () => {
      this.limit += pageSize * 5;
      this.renderHosts();
    });
    this.hostFilter = el('input', {type: 'search', placeholder: 'Filter hosts', 'aria-label': 'Filter this tool\'s hosts'});
    this.hostFilter.addEventListener('input', () => {
      this.filter = this.hostFilter.value;
      this.renderHosts();
    });
    this.status = el('p', {class: 'muted', hidden: true});
    // One tbody per host entry: its fields, and under them the command
    // line that runs the tool there.
    this.head = el('thead', null, el('tr', null, ['State', 'Host', 'Agent', ...execFields].map((t) => el('th', {scope: 'col'}, t))));
    this.table = el('table', {class: 'tool-hosts'}, this.head);
    this.root = el('section', {class: 'card scroll-page', 'aria-labelledby': 'tool-title'},
      el('p', null, el('a', {href: '#/tools'}, '← Tools')),
      this.title, this.desc, this.status,
      el('h2', null, 'Arguments'), this.argsBox,
      el('details', null, el('summary', null, 'Input schema (JSON)'), this.schemaPre),
      el('h2', null, 'Hosts'),
      el('div', {class: 'toolbar'}, this.hostFilter, this.summary),
      el('div', {class: 'table-wrap'}, this.table),
      el('p', null, this.more));
    this.title.id = 'tool-title';
    this.refetch = new Refetcher(() => this.load(), 250, 10000);
  }

  mount(parent) {
    parent.replaceChildren(this.root);
    this.load();
  }

  unmount() {
    this.refetch.stop();
  }

  onEvent() {
    this.refetch.ask();
  }

  tick() {
    if (!this.tool) return;
    const now = api.now();
    for (const tb of this.table.tBodies) if (tb.entry) this.fillState(tb, tb.entry, now);
  }

  async load() {
    try {
      const r = await api.getJSON(`tools/${api.enc(this.name)}?detail=true&active=false`, {etag: this.etag});
      if (r.notModified) return;
      this.etag = r.etag || '';
      this.status.hidden = true;
      const first = !this.tool;
      this.tool = r.data;
      if (first) this.renderHead();
      this.renderHosts();
    } catch (e) {
      if (e instanceof api.HttpError && e.status === 404) {
        this.etag = '';
        this.tool = null;
        this.status.hidden = false;
        setText(this.status, 'No instance offers this tool now.');
        for (const tb of [...this.table.tBodies]) tb.remove();
        setText(this.summary, '');
        return;
      }
      this.showError(e);
    }
  }

  renderHead() {
    const t = this.tool;
    setText(this.desc, typeof t.description === 'string' && t.description ? t.description : 'No description.');
    this.argsBox.replaceChildren(argumentsForm(t.inputSchema));
    setText(this.schemaPre, JSON.stringify(t.inputSchema === undefined ? null : t.inputSchema, null, 2));
  }

  renderHosts() {
    const hosts = (this.tool && this.tool.hosts) || [];
    const words = this.filter.toLowerCase().split(/\s+/).filter(Boolean);
    const list = hosts.filter((h) => words.every((w) => `${h.host} ${h.name || ''} ${h.instance_id || ''}`.toLowerCase().includes(w)));
    list.sort((a, b) => (b.active === true) - (a.active === true) || collator.compare(a.host, b.host) || collator.compare(a.name || '', b.name || ''));
    const active = new Set(hosts.filter((h) => h.active).map((h) => h.host)).size;
    setText(this.summary, `${active.toLocaleString()} active hosts · ${hosts.length.toLocaleString()} entries`);
    const shown = list.slice(0, this.limit);
    this.more.hidden = list.length <= shown.length;
    setText(this.more, `Show more (${(list.length - shown.length).toLocaleString()} not shown)`);
    const now = api.now();
    keyed(this.table, shown, (h) => h.instance_id || h.host, () => this.makeRow(), (tb, h) => this.fillRow(tb, h, now), this.head);
  }

  makeRow() {
    const tr = el('tbody', {class: 'entry'});
    tr.state = el('span', {class: 'state'});
    tr.link = el('a');
    tr.agent = el('td');
    tr.exec = execFields.map(() => el('td', {class: 'mono'}));
    tr.run = el('code');
    tr.copy = el('button', {type: 'button'}, 'Copy');
    tr.copy.addEventListener('click', async () => {
      try {
        await copyText(tr.entry.run);
        setText(tr.copy, 'Copied');
      } catch {
        setText(tr.copy, 'Copy failed');
      }
      setTimeout(() => setText(tr.copy, 'Copy'), 1500);
    });
    tr.append(
      el('tr', {class: 'fields-row'}, el('td', {class: 'nowrap'}, tr.state), el('td', {class: 'nowrap'}, tr.link), tr.agent, ...tr.exec),
      el('tr', {class: 'run-row'}, el('td', {colspan: String(3 + execFields.length)},
        el('div', {class: 'run'}, el('span', {class: 'muted'}, 'run'), tr.run, tr.copy))));
    return tr;
  }

  fillState(tr, h, now) {
    let st = h.active ? 'active' : 'inactive';
    if (h.active) {
      const iv = this.data.intervals.get(h.instance_id) || 0;
      if (iv > 0 && now - h.last_seen > 2 * iv) st = 'expiring';
    }
    setAttr(tr.state, 'data-state', st);
    setText(tr.state, st === 'expiring' ? 'expiring soon' : st);
    setAttr(tr.state, 'title', `last seen ${ago(h.last_seen, now)}`);
  }

  fillRow(tr, h, now) {
    tr.entry = h;
    tr.classList.toggle('off', !h.active);
    this.fillState(tr, h, now);
    setText(tr.link, h.host);
    setAttr(tr.link, 'href', '#/instances/' + encodeURIComponent(h.instance_id || ''));
    setText(tr.agent, h.name || '–');
    execFields.forEach((f, i) => setText(tr.exec[i], fieldText(h[f])));
    setText(tr.run, h.run || '–');
    tr.copy.disabled = !h.run;
    setAttr(tr.copy, 'aria-label', `Copy the command that runs ${this.name} on ${h.host}`);
  }
}
