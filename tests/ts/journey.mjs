// The agent of the dashboard's seed journey: the official MCP TypeScript SDK client, driven one
// call at a time by tests/dashboard_journey_test.go (TestDashboardJourney) while an admin and
// the human change things in the dashboard between the calls.
//
// Environment: MCP_URL, EMAIL, PASSWORD (see lib.mjs), TRUST_LEVEL (the level to consent at).
// It connects (discovery, registration, sign-in and consent, token) and prints one JSON line
// {"connected":true,"tools":[...]}; then for each line "call TOOL" read on stdin it calls TOOL
// and prints {"tool","ok","text","error","status"}: ok is a result without isError, status the
// HTTP status of its last request to the MCP endpoint. After the first connection it never
// signs in again: a 401 later is reported, not answered with a new consent.

import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { connectWithOAuth, mcpUrl, Provider, requests, toolError } from "./lib.mjs";

class OnceProvider extends Provider {
  connected = false;
  async redirectToAuthorization(url) {
    if (this.connected) {
      throw new Error("the gateway asked for a new sign-in (401)");
    }
    return super.redirectToAuthorization(url);
  }
}

async function main() {
  const client = new Client({ name: "trustgate-journey-ts", version: "1.0.0" });
  const provider = new OnceProvider();
  const { transport } = await connectWithOAuth(client, provider);
  provider.connected = true;
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  console.log(JSON.stringify({ connected: true, tools }));

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [cmd, tool] = line.trim().split(/\s+/);
    if (cmd !== "call" || !tool) {
      console.log(JSON.stringify({ error: `unknown command ${JSON.stringify(line)}` }));
      continue;
    }
    const before = requests.length;
    let result, err;
    try {
      result = await client.callTool({ name: tool, arguments: { title: "journey", id: "1" } });
    } catch (e) {
      err = e;
    }
    const mcp = requests.slice(before).filter((r) => r.path === mcpUrl.pathname);
    console.log(
      JSON.stringify({
        tool,
        ok: !err && !result?.isError,
        text: (result?.content ?? []).map((c) => c.text ?? "").join(" "),
        error: toolError(result, err) ?? "",
        status: mcp.length ? mcp[mcp.length - 1].status : 0,
      }),
    );
  }
  await transport.close().catch(() => {});
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e?.stack ?? String(e));
    process.exit(1);
  },
);
