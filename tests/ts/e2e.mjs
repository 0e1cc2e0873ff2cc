// End-to-end: the official MCP TypeScript SDK client against a running trustgate.
//
// Run by tests/ts_sdk_test.go (TestTypeScriptSDKClient), which starts the gateway and the
// upstream and passes:
//   MCP_URL   the gateway's MCP endpoint for one server, e.g. http://127.0.0.1:PORT/h/acme/mcp/tracker
//   EMAIL     a human granted that server up to "high"
//   PASSWORD  the password to sign in with (chosen through the human's invitation)
//
// The SDK does discovery (RFC 9728 -> RFC 8414), dynamic registration (RFC 7591), PKCE and the
// token request itself; this script only plays the browser in redirectToAuthorization. On
// success it prints one JSON line and exits 0; on failure it prints the reason to stderr and
// exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, connectWithOAuth, flow, mcpUrl, requests, toolError } from "./lib.mjs";

async function main() {
  // First connect: 401 -> discovery -> registration -> redirectToAuthorization ->
  // UnauthorizedError -> finishAuth; then the connection with the token.
  const client = new Client({ name: "trustgate-e2e-ts", version: "1.0.0" });
  const { provider, transport } = await connectWithOAuth(client);

  // The discovery the SDK did on its own, in order.
  const issuer = mcpUrl.origin + mcpUrl.pathname.replace(/\/mcp\/[^/]+\/?$/, "");
  const seen = requests.map((r) => `${r.method} ${r.path} ${r.status}`);
  const idx = (pred, what) => {
    const i = requests.findIndex(pred);
    assert(i >= 0, `no ${what} request; requests: ${seen.join(", ")}`);
    return i;
  };
  const unauth = idx((r) => r.method === "POST" && r.path === mcpUrl.pathname && r.status === 401, "unauthenticated MCP (401)");
  const prm = idx((r) => r.path.startsWith("/.well-known/oauth-protected-resource") && r.status === 200, "RFC 9728 protected resource metadata");
  const asm = idx((r) => (r.path.startsWith("/.well-known/oauth-authorization-server") || r.path.startsWith("/.well-known/openid-configuration")) && r.status === 200, "RFC 8414 authorization server metadata");
  const reg = idx((r) => r.method === "POST" && r.path === new URL(issuer).pathname + "/register" && r.status === 201, "dynamic client registration (201)");
  const tok = idx((r) => r.method === "POST" && r.path === new URL(issuer).pathname + "/token" && r.status === 200, "token (200)");
  assert(unauth < prm && prm < asm && asm < reg && reg < tok, `discovery out of order: ${seen.join(", ")}`);
  assert(provider.discovery && String(provider.discovery.authorizationServerUrl).replace(/\/$/, "") === issuer, `discovered authorization server ${provider.discovery?.authorizationServerUrl}, want ${issuer}`);
  assert(flow.iss === issuer, `iss on the redirect = ${flow.iss}, want ${issuer}`);
  assert(provider.clientInformation()?.client_id, "registration stored no client_id");

  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    assert(JSON.stringify(tools) === JSON.stringify(["create_issue", "list_issues"]), `tools/list = ${JSON.stringify(tools)}, want create_issue and list_issues only`);

    const allowed = await client.callTool({ name: "create_issue", arguments: { title: "ts" } });
    const allowedText = (allowed.content ?? []).map((c) => c.text ?? "").join(" ");
    assert(!allowed.isError && allowedText.includes("create_issue called: ts"), `allowed call: ${JSON.stringify(allowed)}`);

    let denied, deniedErr;
    try {
      denied = await client.callTool({ name: "delete_issue", arguments: { id: "1" } });
    } catch (e) {
      deniedErr = e;
    }
    const deniedMsg = toolError(denied, deniedErr);
    assert(deniedMsg !== undefined, `denied call went through: ${JSON.stringify(denied)}`);
    assert(deniedMsg.includes("delete_issue") && deniedMsg.includes("high"), `denied call message = ${JSON.stringify(deniedMsg)}, want it to name delete_issue and high`);

    console.log(
      JSON.stringify({
        ok: true,
        sdk: "@modelcontextprotocol/sdk",
        issuer,
        client_id: provider.clientInformation().client_id,
        discovery: seen.slice(unauth, tok + 1),
        signed_in: flow.signedIn,
        consented: flow.consented,
        tools,
        allowed: allowedText,
        denied: deniedMsg,
        denied_as: deniedErr ? "error" : "isError",
      }),
    );
  } finally {
    await transport.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`e2e.mjs: FAIL: ${e?.stack ?? e}`);
    if (requests.length) console.error(`requests: ${requests.map((r) => `${r.method} ${r.path} ${r.status}`).join(", ")}`);
    process.exit(1);
  },
);
