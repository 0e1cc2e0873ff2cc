// End-to-end: the official MCP TypeScript SDK client connects with a Dynamic MCP link,
// <gateway>/h/<host>/mcp?upstream_mcp=<upstream URL>.
//
// Run by tests/ts_sdk_test.go (TestTypeScriptSDKDynamicMCPLink) with MCP_URL (the link), EMAIL
// and PASSWORD (a human granted the upstream's server). The SDK follows the 401's
// resource_metadata, takes the metadata's resource as its RFC 8707 resource, and the browser
// (lib.mjs) signs in, keeps the server the link pre-selected and consents. On success it
// prints one JSON line and exits 0; on failure it prints the reason to stderr and exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, connectWithOAuth, flow, mcpUrl, requests } from "./lib.mjs";

async function main() {
  const client = new Client({ name: "trustgate-e2e-ts-link", version: "1.0.0" });
  const { provider, transport } = await connectWithOAuth(client);
  try {
    const seen = requests.map((r) => `${r.method} ${r.path}${r.search} ${r.status}`);
    const unauth = requests.find((r) => r.method === "POST" && r.path === mcpUrl.pathname && r.status === 401);
    assert(unauth && unauth.search === mcpUrl.search, `no 401 from the link itself: ${seen.join(", ")}`);
    const prm = requests.find((r) => r.path.startsWith("/.well-known/oauth-protected-resource") && r.status === 200);
    assert(prm, `no protected resource metadata: ${seen.join(", ")}`);

    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const allowed = await client.callTool({ name: "create_issue", arguments: { title: "link" } });
    const allowedText = (allowed.content ?? []).map((c) => c.text ?? "").join(" ");
    assert(!allowed.isError, `allowed call: ${JSON.stringify(allowed)}`);

    console.log(
      JSON.stringify({
        ok: true,
        metadata: prm.path + prm.search,
        resource: flow.authorizationUrl.searchParams.get("resource"),
        chosen_server: flow.chosenServer,
        token_requests: requests.filter((r) => r.path.endsWith("/token")).map((r) => r.status),
        mcp_requests: requests.filter((r) => r.path === mcpUrl.pathname && r.status === 200).map((r) => r.search),
        client_id: provider.clientInformation().client_id,
        tools,
        allowed: allowedText,
      }),
    );
  } finally {
    await transport.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`dynamic_link.mjs: FAIL: ${e?.stack ?? e}`);
    if (requests.length) console.error(`requests: ${requests.map((r) => `${r.method} ${r.path}${r.search} ${r.status}`).join(", ")}`);
    process.exit(1);
  },
);
