// End-to-end: the agent's tool list follows the policy while it is connected, with the
// official MCP TypeScript SDK client's listChanged option against a running trustgate whose
// upstream does not declare tools.listChanged itself.
//
// Run by tests/listchanged_test.go (TestTypeScriptSDKToolListFollowsThePolicy). Besides
// lib.mjs's environment (MCP_URL, EMAIL, PASSWORD, TRUST_LEVEL) it needs CHANGES, the number
// of list changes to wait for. It prints one JSON line per step, for the Go test to act on:
//   {"step":"ready", "declared": <tools.listChanged as the client saw it>, "tools": [...]}
//     once connected, listed, and its GET stream is open (the test then changes the policy);
//   {"step":"changed", "tools": [...]} for each notification, with the list the SDK fetched;
//   {"step":"done", "ok": true} at the end.
// On failure it prints the reason on stderr and exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, connectWithOAuth, env, mcpUrl, requests } from "./lib.mjs";

const changesWanted = Number(env("CHANGES"));
const print = (v) => console.log(JSON.stringify(v));

// Notifications, each with the tool list the SDK fetched after it (autoRefresh).
const changes = [];
let wake;
function onChanged(err, tools) {
  changes.push(err ? { error: String(err.message ?? err) } : { tools: tools.map((t) => t.name).sort() });
  wake?.();
}

async function nextChange(ms) {
  const deadline = Date.now() + ms;
  while (changes.length === 0) {
    assert(Date.now() < deadline, `no tools/list_changed notification within ${ms} ms`);
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, 100);
    });
  }
  return changes.shift();
}

async function until(cond, what, ms) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    assert(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function main() {
  const client = new Client(
    { name: "trustgate-e2e-ts-listchanged", version: "1.0.0" },
    { listChanged: { tools: { autoRefresh: true, debounceMs: 0, onChanged } } },
  );
  const { transport } = await connectWithOAuth(client);
  try {
    const declared = client.getServerCapabilities()?.tools?.listChanged === true;
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    // The SDK opens its GET stream after initialization, on its own: wait until it is open.
    await until(
      () => requests.some((r) => r.method === "GET" && r.path === mcpUrl.pathname && r.status === 200),
      "the SDK's GET stream",
      15000,
    );
    print({ step: "ready", declared, tools });
    for (let i = 0; i < changesWanted; i++) {
      const c = await nextChange(20000);
      assert(!c.error, `refreshing the list after the notification failed: ${c.error}`);
      print({ step: "changed", tools: c.tools });
    }
    print({ step: "done", ok: true });
  } finally {
    await transport.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`listchanged.mjs: FAIL: ${e?.stack ?? e}`);
    if (requests.length) console.error(`requests: ${requests.map((r) => `${r.method} ${r.path} ${r.status}`).join(", ")}`);
    process.exit(1);
  },
);
