// client.mjs drives `runspec-registry mcp` from the TypeScript MCP SDK's
// client, over stdio and over streamable HTTP: it lists the fleet (valid
// names, runspec_host enums that match the registry's /tools), sees
// list_changed when an agent registers and when it expires, calls a tool
// on a loopback SSH host and reads its output, is refused a manual tool,
// is not run a confirm tool without approval (without elicitation, and
// when the person declines), and over HTTP is refused without the token
// or with a wrong one. ../../mcp_ts_test.go runs it; it prints one line
// per check and exits 1 if any failed.
//
// Environment: MCP_BIN, MCP_ARGS (a JSON array), REGISTRY_URL,
// MCP_HTTP_URL, MCP_TOKEN.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const registry = env("REGISTRY_URL");
let passed = 0;
let failed = 0;

function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}: ${detail}`);
  }
}

function text(res) {
  return (res.content || []).filter((c) => c.type === "text").map((c) => c.text).join("");
}

async function post(path, body) {
  const r = await fetch(registry + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
}

// hostsOf reads /tools: the sorted hosts of each tool's active entries.
async function hostsOf() {
  const r = await fetch(registry + "/tools?active=true&detail=true");
  const tools = await r.json();
  const m = new Map();
  for (const t of tools) {
    m.set(t.name, [...new Set(t.hosts.filter((h) => h.active !== false).map((h) => h.host))].sort());
  }
  return m;
}

async function listAll(client) {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

// runspecName is the tool's runspec name: its MCP name, or what the
// description says for an alias.
function runspecName(tool) {
  const m = /Its runspec name is "([^"]*)"\./.exec(tool.description || "");
  return m ? m[1] : tool.name;
}

// watcher counts list_changed notifications and waits for them.
function watcher(client) {
  let count = 0;
  let waiters = [];
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    count++;
    waiters = waiters.filter((w) => (count >= w.n ? (w.resolve(), false) : true));
  });
  return {
    get count() {
      return count;
    },
    wait(n, ms) {
      if (count >= n) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        waiters.push({ n, resolve: () => (clearTimeout(timer), resolve(true)) });
      });
    },
  };
}

async function session(name, makeTransport) {
  const client = new Client({ name: "ts-client", version: "1.0.0" }, { capabilities: {} });
  const changes = watcher(client);
  await client.connect(makeTransport());

  // The fleet, as /tools has it.
  const tools = await listAll(client);
  const hosts = await hostsOf();
  check(`${name}: names are valid`, tools.length > 0 && tools.every((t) => /^[a-zA-Z0-9_-]{1,64}$/.test(t.name)),
    JSON.stringify(tools.map((t) => t.name)));
  for (const t of tools) {
    const want = hosts.get(runspecName(t));
    const got = t.inputSchema?.properties?.runspec_host?.enum;
    check(`${name}: ${t.name} runspec_host enum matches /tools`, JSON.stringify(got) === JSON.stringify(want),
      `enum ${JSON.stringify(got)}, /tools ${JSON.stringify(want)}`);
  }
  check(`${name}: manual tool not listed`, !tools.some((t) => t.name === "by-hand"), JSON.stringify(tools.map((t) => t.name)));
  check(`${name}: aliased tool listed`, tools.some((t) => runspecName(t) === "ns.tool" && t.name !== "ns.tool"),
    JSON.stringify(tools.map((t) => t.name)));

  // A call on a loopback SSH host.
  const res = await client.callTool({ name: "argv", arguments: { runspec_host: "web-1", message: "hello from TS", tag: ["a b", "$(id)"] } });
  const lines = text(res).split("\n");
  let args = null;
  try {
    args = JSON.parse(lines[0]);
  } catch {}
  check(`${name}: argv output`, !res.isError && JSON.stringify(args) === JSON.stringify(["--message", "hello from TS", "--tag", "a b", "--tag", "$(id)"]),
    text(res));

  // manual: refused.
  let manual;
  try {
    manual = await client.callTool({ name: "by-hand", arguments: {} });
  } catch (e) {
    manual = { isError: true, content: [{ type: "text", text: String(e) }] };
  }
  check(`${name}: manual tool refused`, manual.isError === true, text(manual));

  // confirm without elicitation: not run.
  const confirm = await client.callTool({ name: "needs-ok", arguments: {} });
  check(`${name}: confirm tool not run without elicitation`, confirm.isError === true && /a person must approve/.test(text(confirm)), text(confirm));

  // confirm with elicitation, declined: not run.
  const asker = new Client({ name: "ts-asker", version: "1.0.0" }, { capabilities: { elicitation: { form: {} } } });
  let asked = "";
  asker.setRequestHandler(ElicitRequestSchema, async (req) => {
    asked = req.params.message;
    return { action: "decline" };
  });
  await asker.connect(makeTransport());
  const declined = await asker.callTool({ name: "needs-ok", arguments: {} });
  check(`${name}: declined confirm tool not run`, declined.isError === true && /declined/.test(text(declined)), text(declined));
  check(`${name}: the approval shows host and command`, /Host: web-1/.test(asked) && /touch-marker/.test(asked), asked);
  await asker.close();

  // An agent registers: list_changed, and its tool is listed; it
  // expires (no heartbeat within 3 x 0.5 s): list_changed, and it is gone.
  const id = `ts-${name}-${process.pid}`;
  const before = changes.count;
  await post("/instances", { instance_id: id, name: "ts", version: "1", host: "web-3", heartbeat_interval: 0.5 });
  await post(`/instances/${id}/tools`, { tools: [{ name: `ts-new-${name}`, "x-command": "/bin/true", "x-autonomy": "autonomous" }] });
  check(`${name}: list_changed on registration`, await changes.wait(before + 1, 10000), `${changes.count - before} notifications`);
  const added = (await listAll(client)).find((t) => t.name === `ts-new-${name}`);
  check(`${name}: the new agent's tool is listed on its host`, JSON.stringify(added?.inputSchema?.properties?.runspec_host?.enum) === '["web-3"]',
    JSON.stringify(added));
  const seen = changes.count;
  check(`${name}: list_changed on expiry`, await changes.wait(seen + 1, 15000), `${changes.count - seen} notifications`);
  const gone = !(await listAll(client)).some((t) => t.name === `ts-new-${name}`);
  check(`${name}: the expired agent's tool is gone`, gone, "still listed");

  await client.close();
}

const bin = env("MCP_BIN");
const args = JSON.parse(env("MCP_ARGS"));
await session("stdio", () => new StdioClientTransport({ command: bin, args, env: { ...process.env }, stderr: "inherit" }));

const url = new URL(env("MCP_HTTP_URL"));
const token = env("MCP_TOKEN");
for (const [what, auth] of [["no token", null], ["wrong token", `Bearer ${token}x`]]) {
  const c = new Client({ name: "ts-client", version: "1.0.0" }, { capabilities: {} });
  const headers = auth ? { Authorization: auth } : {};
  let refused = false;
  try {
    await c.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
    await c.close();
  } catch (e) {
    refused = /401|Unauthorized|bearer/i.test(String(e));
  }
  check(`http: ${what} refused`, refused, "connected");
}
await session("http", () => new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
