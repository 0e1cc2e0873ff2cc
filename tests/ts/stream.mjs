// End-to-end: streaming, slow calls, byte-for-byte results and revocation mid-session, with the
// official MCP TypeScript SDK client against a running trustgate.
//
// Run by tests/ts_sdk_test.go (TestTypeScriptSDKStreamingAndRevocation). Besides lib.mjs's
// environment (MCP_URL, EMAIL, PASSWORD; the human consents at medium) it needs:
//   UPSTREAM_URL  the upstream MCP server itself, to compare direct calls with proxied ones
//   API_URL       the gateway's base URL, for the admin API
//   ADMIN_TOKEN   an admin API token, to pull the kill switch mid-session
//   HOST          the host the agent lives in
// On success it prints one JSON line and exits 0; on failure the reason on stderr and exit 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { assert, connectWithOAuth, env, requests, toolError } from "./lib.mjs";

const upstreamUrl = new URL(env("UPSTREAM_URL"));
const apiUrl = env("API_URL");
const adminToken = env("ADMIN_TOKEN");
const host = env("HOST");

// call makes one tools/call, timing its progress notifications and its result.
async function call(client, name, args) {
  const started = performance.now();
  const progress = [];
  let result, error;
  try {
    result = await client.callTool({ name, arguments: args }, CallToolResultSchema, {
      onprogress: (p) => progress.push({ at: performance.now() - started, progress: p.progress, total: p.total, message: p.message }),
    });
  } catch (e) {
    error = e;
  }
  return { result, error, progress, took: performance.now() - started };
}

async function admin(method, path) {
  const resp = await fetch(apiUrl + path, { method, headers: { Authorization: `Bearer ${adminToken}` } });
  const body = await resp.text();
  assert(resp.ok, `${method} ${path}: ${resp.status} ${body}`);
  return JSON.parse(body);
}

async function main() {
  const gateway = new Client({ name: "trustgate-e2e-ts-stream", version: "1.0.0" });
  const { transport } = await connectWithOAuth(gateway);
  const direct = new Client({ name: "trustgate-e2e-ts-direct", version: "1.0.0" });
  await direct.connect(new StreamableHTTPClientTransport(upstreamUrl));
  const out = { ok: false, same: [], progress: [], slow_ms: 0, denied: "", after_kill: "" };
  try {
    // Permitted calls: the same result through the gateway as directly, byte for byte.
    for (const [name, args] of [
      ["list_issues", {}],
      ["create_issue", { title: "stream" }],
      ["slow_search", { title: "1500ms" }],
      ["watch_issue", { id: "7" }],
    ]) {
      const d = await call(direct, name, args);
      const g = await call(gateway, name, args);
      assert(!d.error && !g.error, `${name}: direct ${d.error} / gateway ${g.error}`);
      const dj = JSON.stringify(d.result), gj = JSON.stringify(g.result);
      assert(dj === gj, `${name}: through the gateway ${gj}, directly ${dj}`);
      assert(!g.result.isError, `${name} failed: ${gj}`);
      out.same.push(name);
      if (name === "slow_search") out.slow_ms = Math.round(g.took);
      if (name === "watch_issue") {
        assert(g.progress.length === d.progress.length && g.progress.length > 1, `progress: ${g.progress.length} through the gateway, ${d.progress.length} directly`);
        // Streamed, not buffered: the first event arrived long before the result.
        assert(g.progress[0].at < g.took / 2, `first progress at ${g.progress[0].at} ms of a ${g.took} ms call: events were held back`);
        out.progress = g.progress.map((p) => Math.round(p.at));
        out.watch_ms = Math.round(g.took);
      }
    }

    // Denied: the gateway's error names the tool and the level it needs.
    const denied = await call(gateway, "delete_issue", { id: "1" });
    out.denied = toolError(denied.result, denied.error) ?? "";
    assert(out.denied.includes("delete_issue") && out.denied.includes("high"), `denied call: ${out.denied || JSON.stringify(denied.result)}`);

    // Kill switch mid-session: the very next call of this session is refused (its tokens are
    // revoked with it: 401, and the refresh is refused too).
    const agents = await admin("GET", `/api/v1/hosts/${host}/agents`);
    assert(agents.items.length === 1, `agents: ${JSON.stringify(agents)}`);
    await admin("POST", `/api/v1/hosts/${host}/agents/${agents.items[0].id}/kill`);
    try {
      const after = await call(gateway, "list_issues", {});
      out.after_kill = toolError(after.result, after.error) ?? "";
    } catch (err) {
      out.after_kill = `refused: ${err?.message ?? err}`;
    }
    assert(out.after_kill !== "", "call after the kill switch went through");
    out.ok = true;
    console.log(JSON.stringify(out));
  } finally {
    await transport.close();
    await direct.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`stream.mjs: FAIL: ${e?.stack ?? e}`);
    if (requests.length) console.error(`requests: ${requests.map((r) => `${r.method} ${r.path} ${r.status}`).join(", ")}`);
    process.exit(1);
  },
);
