// docs.js renders the registry's OpenAPI document (openapi.json, fetched
// from the page's own origin) as a page: operations by tag, with their
// parameters, bodies, answers and headers, then the schemas. Every text is
// set with textContent, never as HTML, and the page runs under a
// Content-Security-Policy that allows this script and docs.css only.
"use strict";

(function () {
  const doc = document.getElementById("doc");
  const toc = document.getElementById("toc");
  const methods = ["get", "head", "post", "put", "patch", "delete", "options"];
  let spec = null;

  // el makes an element with a class and children (strings become text).
  function el(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  // inline renders one paragraph of text with its `code` spans into into.
  function inline(into, text) {
    String(text || "").split("`").forEach((part, i) => into.append(i % 2 ? el("code", null, part) : document.createTextNode(part)));
    return into;
  }

  // prose renders a description: paragraphs at blank lines, `code` spans.
  function prose(text) {
    const box = el("div", "prose");
    if (!text) return box;
    for (const para of String(text).split(/\n\n+/)) box.append(inline(el("p"), para));
    return box;
  }

  function anchor(kind, name) {
    return kind + "-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
  }

  // resolve follows a local $ref ("#/components/…") and returns [name, value].
  function resolve(obj) {
    if (!obj || typeof obj.$ref !== "string") return [null, obj];
    const path = obj.$ref.replace(/^#\//, "").split("/");
    let v = spec;
    for (const p of path) v = v ? v[p] : undefined;
    return [path[path.length - 1], v || {}];
  }

  function refLink(obj) {
    const name = obj.$ref.split("/").pop();
    const a = el("a", "ref", name);
    a.href = "#" + anchor("schema", name);
    return a;
  }

  // typeOf summarizes a schema on one line.
  function typeOf(s) {
    if (!s) return el("span", "type", "any");
    if (s.$ref) return refLink(s);
    const box = el("span", "type");
    if (s.oneOf || s.anyOf) {
      (s.oneOf || s.anyOf).forEach((x, i) => {
        if (i) box.append(" | ");
        box.append(typeOf(x));
      });
      return box;
    }
    let t = s.type;
    if (Array.isArray(t)) t = t.join(" | ");
    if (t === "array") {
      box.append("array of ", typeOf(s.items));
    } else if (t) {
      box.append(t);
    } else if (!s.properties) {
      box.append("any");
    } else {
      box.append("object");
    }
    const facts = [];
    if (s.const !== undefined) facts.push("= " + JSON.stringify(s.const));
    if (s.enum) facts.push("one of " + s.enum.map((v) => JSON.stringify(v)).join(", "));
    if (s.minimum !== undefined) facts.push("≥ " + s.minimum);
    if (s.exclusiveMinimum !== undefined) facts.push("> " + s.exclusiveMinimum);
    if (s.maximum !== undefined) facts.push("≤ " + s.maximum);
    if (s.minLength !== undefined) facts.push("length ≥ " + s.minLength);
    if (s.maxLength !== undefined) facts.push("length ≤ " + s.maxLength);
    if (s.maxProperties !== undefined) facts.push("at most " + s.maxProperties + " members");
    if (s.pattern) facts.push("pattern " + s.pattern);
    if (facts.length) box.append(el("span", "facts", " (" + facts.join("; ") + ")"));
    return box;
  }

  // schemaBlock renders a schema: its type, description and members.
  function schemaBlock(s, depth) {
    const box = el("div", "schema");
    box.append(typeOf(s));
    if (!s || s.$ref) return box;
    if (s.description) box.append(prose(s.description));
    if (s.properties && depth < 4) {
      const req = new Set(s.required || []);
      const table = el("table", "members");
      table.append(el("tr", null, el("th", null, "member"), el("th", null, "type"), el("th", null, "")));
      for (const [name, p] of Object.entries(s.properties)) {
        const [, pv] = resolve(p);
        table.append(el("tr", null,
          el("td", null, el("code", null, name), req.has(name) ? el("span", "required", " required") : null),
          el("td", null, typeOf(p)),
          el("td", null, prose(p.$ref ? "" : pv.description))));
      }
      box.append(table);
    }
    if (s.additionalProperties && typeof s.additionalProperties === "object") {
      box.append(el("p", null, "Other members: ", typeOf(s.additionalProperties)));
    }
    if (s.items && s.items.properties && depth < 4) box.append(schemaBlock(s.items, depth + 1));
    if (s.examples) box.append(el("pre", "example", s.examples.map((x) => JSON.stringify(x, null, 2)).join("\n")));
    return box;
  }

  function parameters(list) {
    if (!list || !list.length) return null;
    const table = el("table", "params");
    table.append(el("tr", null, el("th", null, "parameter"), el("th", null, "in"), el("th", null, "type"), el("th", null, "")));
    for (const raw of list) {
      const [, p] = resolve(raw);
      table.append(el("tr", null,
        el("td", null, el("code", null, p.name), p.required ? el("span", "required", " required") : null),
        el("td", null, p.in),
        el("td", null, typeOf(p.schema)),
        el("td", null, prose(p.description))));
    }
    return el("section", "block", el("h4", null, "Parameters"), table);
  }

  function content(c) {
    const box = el("div", "content");
    for (const [type, media] of Object.entries(c || {})) {
      box.append(el("div", "media", el("code", "mtype", type), schemaBlock(media.schema, 1)));
    }
    return box;
  }

  function headers(hs) {
    if (!hs) return null;
    const list = el("ul", "headers");
    for (const [name, raw] of Object.entries(hs)) {
      const [, h] = resolve(raw);
      list.append(el("li", null, el("code", null, name), h.required ? el("span", "required", " always") : null,
        " ", typeOf(h.schema), prose(h.description)));
    }
    return list;
  }

  function security(op) {
    const sec = op.security !== undefined ? op.security : spec.security;
    if (!sec || !sec.length) return el("p", "security", "Open: no identity needed.");
    const names = sec.map((r) => Object.keys(r).join(" + ") || "none").join(", or ");
    return el("p", "security", "Identity: " + names + " (none is needed while the registry requires none).");
  }

  function operation(path, method, op, pathParams) {
    const id = anchor("op", op.operationId || method + path);
    const box = el("section", "op " + method);
    box.id = id;
    box.append(el("h3", null, el("span", "method", method.toUpperCase()), " ", el("code", "path", path), " ",
      el("span", "summary", op.summary || "")));
    if (op.description) box.append(prose(op.description));
    box.append(security(op));
    const params = parameters((pathParams || []).concat(op.parameters || []));
    if (params) box.append(params);
    if (op.requestBody) {
      const [, rb] = resolve(op.requestBody);
      box.append(el("section", "block", el("h4", null, "Body" + (rb.required ? "" : " (optional)")), content(rb.content)));
    }
    const rs = el("section", "block", el("h4", null, "Answers"));
    for (const [code, raw] of Object.entries(op.responses || {})) {
      const [, r] = resolve(raw);
      rs.append(el("div", "response", inline(el("h5", null, el("span", "status s" + code[0], code), " "), r.description),
        headers(r.headers), r.content ? content(r.content) : null));
    }
    box.append(rs);
    return box;
  }

  function render() {
    doc.textContent = "";
    const info = spec.info || {};
    doc.append(el("section", "info", el("h2", null, (info.title || "API") + " " + (info.version || "")),
      el("p", "summary", info.summary || ""), prose(info.description)));

    const byTag = new Map((spec.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const m of methods) {
        if (!item[m]) continue;
        const tag = (item[m].tags || ["other"])[0];
        if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
        byTag.get(tag).ops.push([path, m, item[m], item.parameters]);
      }
    }
    const tocList = el("ul");
    for (const { tag, ops } of byTag.values()) {
      if (!ops.length) continue;
      const sec = el("section", "tag");
      sec.id = anchor("tag", tag.name);
      sec.append(el("h2", null, tag.name), prose(tag.description));
      const sub = el("ul");
      for (const [path, m, op, pp] of ops) {
        sec.append(operation(path, m, op, pp));
        const a = el("a", null, m.toUpperCase() + " " + path);
        a.href = "#" + anchor("op", op.operationId || m + path);
        sub.append(el("li", null, a));
      }
      const ta = el("a", null, tag.name);
      ta.href = "#" + sec.id;
      tocList.append(el("li", null, ta, sub));
      doc.append(sec);
    }

    const schemas = (spec.components && spec.components.schemas) || {};
    const ssec = el("section", "tag", el("h2", null, "Schemas"));
    ssec.id = "schemas";
    const slist = el("ul");
    for (const [name, s] of Object.entries(schemas)) {
      const box = el("section", "schema-def", el("h3", null, name), schemaBlock(s, 0));
      box.id = anchor("schema", name);
      ssec.append(box);
      const a = el("a", null, name);
      a.href = "#" + box.id;
      slist.append(el("li", null, a));
    }
    doc.append(ssec);
    const sa = el("a", null, "Schemas");
    sa.href = "#schemas";
    tocList.append(el("li", null, sa, slist));
    toc.textContent = "";
    toc.append(tocList);
    document.body.dataset.rendered = "true";
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  fetch("openapi.json", { headers: { Accept: "application/json" } })
    .then((r) => {
      if (!r.ok) throw new Error("GET openapi.json: " + r.status);
      return r.json();
    })
    .then((s) => {
      spec = s;
      render();
    })
    .catch((err) => {
      doc.textContent = "";
      doc.append(el("p", "error", "Could not render the document: " + err.message));
      document.body.dataset.rendered = "error";
    });
})();
