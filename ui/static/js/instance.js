// instance.js is an instance's page: every field of its record (GET
// /instances/{id}?detail=true), its system data, when it went inactive, its
// tools, and the actions: deregister, and delete the record (an admin's),
// each after a confirmation and only with a key typed in.

import {el, setText, setAttr, ago, stamp, duration, fieldText, keyed} from './dom.js';
import {state} from './fleet-data.js';
import * as api from './api.js';

// The fields shown first, in this order, and how.
const known = ['instance_id', 'name', 'host', 'version', 'active', 'last_seen', 'heartbeat_interval', 'inactive_since',
  'expiry_guarded', 'owner', 'labels'];

export class InstanceView {
  constructor(id, confirm, showError) {
    this.id = id;
    this.confirm = confirm;
    this.showError = showError;
    this.rec = null;
    this.etag = '';
    this.title = el('h1', {id: 'inst-title'}, id);
    this.mark = el('span', {class: 'state'});
    this.status = el('p', {class: 'muted', hidden: true});
    this.fields = el('dl', {class: 'fields'});
    this.system = el('div');
    this.toolsBody = el('tbody');
    this.deregBtn = el('button', {type: 'button', class: 'danger'}, 'Deregister…');
    this.purgeBtn = el('button', {type: 'button', class: 'danger'}, 'Delete record…');
    this.keyHint = el('span', {class: 'muted'});
    this.result = el('p', {class: 'result', role: 'status'});
    this.deregBtn.addEventListener('click', () => this.act(false));
    this.purgeBtn.addEventListener('click', () => this.act(true));
    this.root = el('section', {class: 'card scroll-page', 'aria-labelledby': 'inst-title'},
      el('p', null, el('a', {href: '#/'}, '← Fleet')),
      this.title, el('p', null, this.mark), this.status,
      el('div', {class: 'actions'}, this.deregBtn, this.purgeBtn, this.keyHint), this.result,
      el('h2', null, 'Record'), this.fields,
      el('h2', null, 'System'), this.system,
      el('h2', null, 'Tools'),
      el('div', {class: 'table-wrap'}, el('table', null,
        el('thead', null, el('tr', null, ['Tool', 'Description', 'x-command', 'x-run-as', 'x-become-method', 'x-become-flags'].map((t) => el('th', {scope: 'col'}, t)))),
        this.toolsBody)));
    this.onKey = () => this.keyState();
    api.onKey(this.onKey);
    this.keyState();
    this.every = setInterval(() => document.visibilityState === 'visible' && this.load(), 10000);
  }

  mount(parent) {
    parent.replaceChildren(this.root);
    this.load();
  }

  unmount() {
    clearInterval(this.every);
    api.offKey(this.onKey);
  }

  keyState() {
    const k = api.hasKey();
    this.deregBtn.disabled = !k || !this.rec;
    this.purgeBtn.disabled = !k || !this.rec;
    setText(this.keyHint, k ? 'Deleting a record needs an admin key.' : 'Type a key above to deregister or delete.');
  }

  onEvent(kind, ev) {
    if (kind === 'reset' || (ev && ev.instance_id === this.id)) this.load();
  }

  tick() {
    if (this.rec) this.renderMark();
  }

  async load() {
    try {
      const r = await api.getJSON(`instances/${api.enc(this.id)}?detail=true`, {etag: this.etag});
      if (r.notModified) return;
      this.etag = r.etag || '';
      this.rec = r.data;
      this.status.hidden = true;
      this.render();
    } catch (e) {
      if (e instanceof api.HttpError && e.status === 404) {
        this.rec = null;
        this.etag = '';
        this.status.hidden = false;
        setText(this.status, 'The registry has no record of this instance (never registered, or deleted).');
        this.fields.replaceChildren();
        this.system.replaceChildren();
        this.toolsBody.replaceChildren();
        setText(this.mark, '');
        this.keyState();
        return;
      }
      this.showError(e);
    }
  }

  renderMark() {
    const st = state(this.rec, this.rec.heartbeat_interval, api.now());
    setAttr(this.mark, 'data-state', st);
    let text = st === 'expiring' ? 'expiring soon' : st;
    text += ` · last seen ${ago(this.rec.last_seen, api.now())}`;
    if (!this.rec.active && this.rec.inactive_since) text += ` · inactive since ${stamp(this.rec.inactive_since)}`;
    setText(this.mark, text);
  }

  render() {
    const r = this.rec;
    setText(this.title, `${r.host} · ${r.name}`);
    this.renderMark();
    this.keyState();
    const rows = [];
    const add = (k, v, mono) => rows.push(el('dt', null, k), el('dd', {class: mono ? 'mono' : null}, v));
    for (const k of known) {
      if (!(k in r)) continue;
      const v = r[k];
      switch (k) {
        case 'last_seen':
          add(k, `${stamp(v)} (${ago(v, api.now())})`);
          break;
        case 'inactive_since':
          add(k, stamp(v));
          break;
        case 'heartbeat_interval':
          add(k, `${duration(v)} (inactive ${duration(3 * v)} after last seen)`);
          break;
        case 'labels':
          add(k, Object.keys(v).sort().map((l) => `${l}=${v[l]}`).join(', ') || '–');
          break;
        default:
          add(k, typeof v === 'string' ? v : JSON.stringify(v), k === 'instance_id');
      }
    }
    if (r.active) add('deadline', `${stamp(r.last_seen + 3 * r.heartbeat_interval)} unless it heartbeats`);
    add('tools', `${(r.tools || []).length} posted`);
    // Any field this page does not know yet, as JSON.
    for (const k of Object.keys(r)) {
      if (!known.includes(k) && k !== 'tools' && k !== 'system') add(k, JSON.stringify(r[k]), true);
    }
    this.fields.replaceChildren(...rows);

    if (r.system && typeof r.system === 'object') {
      const items = Object.entries(r.system).flatMap(([k, v]) => [el('dt', null, k), el('dd', {class: 'mono'}, fieldText(v))]);
      this.system.replaceChildren(el('dl', {class: 'fields'}, items));
    } else {
      this.system.replaceChildren(el('p', {class: 'muted'}, 'No system data: the agent\'s heartbeats sent none.'));
    }

    const tools = (r.tools || []).filter((t) => t && typeof t.name === 'string');
    keyed(this.toolsBody, tools, (t) => t.name, () => {
      const tr = el('tr');
      tr.link = el('a');
      tr.desc = el('td');
      tr.x = ['x-command', 'x-run-as', 'x-become-method', 'x-become-flags'].map(() => el('td', {class: 'mono'}));
      tr.append(el('td', {class: 'nowrap'}, tr.link), tr.desc, ...tr.x);
      return tr;
    }, (tr, t) => {
      setText(tr.link, t.name);
      setAttr(tr.link, 'href', '#/tools/' + encodeURIComponent(t.name));
      setText(tr.desc, typeof t.description === 'string' ? t.description : '–');
      ['x-command', 'x-run-as', 'x-become-method', 'x-become-flags'].forEach((f, i) => setText(tr.x[i], fieldText(t[f])));
    });
    if (tools.length === 0) this.toolsBody.replaceChildren(el('tr', null, el('td', {colspan: '6', class: 'muted'}, 'No tools posted.')));
  }

  async act(purge) {
    const r = this.rec;
    if (!r || !api.hasKey()) return;
    const ok = await this.confirm(
      purge ? 'Delete this record?' : 'Deregister this instance?',
      purge
        ? `The record of ${r.instance_id} (${r.name} on ${r.host}) is deleted from the registry. An agent still running there comes back only by registering again. This needs an admin key.`
        : `${r.instance_id} (${r.name} on ${r.host}) is marked inactive; its record is kept. A heartbeat from the agent makes it active again.`,
      purge ? 'Delete' : 'Deregister');
    if (!ok) return;
    this.result.dataset.ok = 'true';
    setText(this.result, purge ? 'Deleting…' : 'Deregistering…');
    try {
      await api.del(`instances/${api.enc(r.instance_id)}${purge ? '?purge=true' : ''}`);
      setText(this.result, purge ? 'Deleted.' : 'Deregistered: the instance is inactive.');
      this.etag = '';
      this.load();
    } catch (e) {
      this.result.dataset.ok = 'false';
      setText(this.result, e instanceof api.HttpError ? `Refused (${e.status}): ${e.detail}` : `Failed: ${e.message}`);
    }
  }
}
