// schema.js shows a tool's inputSchema (JSON Schema) as a readable form of
// its arguments: one labelled, read-only control per property, with its
// type, whether it is required, its description and its constraints.
// Nested objects become fieldsets. Every text is set as text.

import {el} from './dom.js';

let seq = 0;

function typeText(s) {
  if (!s || typeof s !== 'object') return 'any';
  if (Array.isArray(s.enum)) return 'one of';
  let t = s.type;
  if (Array.isArray(t)) t = t.join(' | ');
  if (t === 'array') {
    const it = s.items && typeof s.items === 'object' ? typeText(s.items) : 'any';
    return `list of ${it}`;
  }
  if (!t && (s.oneOf || s.anyOf)) {
    return (s.oneOf || s.anyOf).map(typeText).join(' | ');
  }
  return t || 'any';
}

function constraints(s) {
  const out = [];
  const add = (label, v) => {
    if (v !== undefined) out.push(`${label} ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  };
  add('default', s.default);
  add('format', s.format);
  add('pattern', s.pattern);
  add('minimum', s.minimum);
  add('maximum', s.maximum);
  add('min length', s.minLength);
  add('max length', s.maxLength);
  add('min items', s.minItems);
  add('max items', s.maxItems);
  if (Array.isArray(s.examples)) add('e.g.', s.examples.map((e) => (typeof e === 'string' ? e : JSON.stringify(e))).join(', '));
  return out.join(' · ');
}

function control(s, id) {
  const common = {id, disabled: true};
  if (Array.isArray(s.enum)) {
    const sel = el('select', common, s.enum.map((v) => el('option', null, typeof v === 'string' ? v : JSON.stringify(v))));
    if (s.default !== undefined) sel.value = typeof s.default === 'string' ? s.default : JSON.stringify(s.default);
    return sel;
  }
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
  switch (t) {
    case 'boolean': {
      const c = el('input', {...common, type: 'checkbox'});
      c.checked = s.default === true;
      return c;
    }
    case 'integer':
    case 'number':
      return el('input', {...common, type: 'number', placeholder: typeText(s)});
    default: {
      const c = el('input', {...common, type: 'text', placeholder: typeText(s)});
      if (typeof s.default === 'string') c.value = s.default;
      return c;
    }
  }
}

function arg(name, s, required, depth) {
  if (!s || typeof s !== 'object') s = {};
  const id = `arg-${++seq}`;
  const head = [el('span', {class: 'mono'}, name), el('span', {class: 'type'}, typeText(s))];
  if (required) head.push(el('span', {class: 'req'}, 'required'));
  const desc = typeof s.description === 'string' ? s.description : '';
  const more = constraints(s);
  if (s.type === 'object' && s.properties && typeof s.properties === 'object' && depth < 6) {
    return el('div', {class: 'arg'},
      el('fieldset', null, el('legend', null, head), desc && el('div', {class: 'desc'}, desc), more && el('div', {class: 'desc'}, more),
        props(s, depth + 1)));
  }
  return el('div', {class: 'arg'},
    el('label', {for: id}, head),
    control(s, id),
    desc && el('div', {class: 'desc'}, desc),
    more && el('div', {class: 'desc'}, more));
}

function props(s, depth) {
  const req = new Set(Array.isArray(s.required) ? s.required : []);
  return Object.entries(s.properties).map(([k, v]) => arg(k, v, req.has(k), depth));
}

// argumentsForm returns the form of a tool's inputSchema.
export function argumentsForm(schema) {
  if (!schema || typeof schema !== 'object') {
    return el('p', {class: 'muted'}, 'The tool has no input schema.');
  }
  if (!schema.properties || typeof schema.properties !== 'object' || Object.keys(schema.properties).length === 0) {
    return el('p', {class: 'muted'}, 'The tool takes no arguments.');
  }
  return el('div', {class: 'args', role: 'group', 'aria-label': 'Arguments'}, props(schema, 0));
}
