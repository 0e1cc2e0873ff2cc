// End-to-end passkey sign-in: the official MCP TypeScript SDK client against a running
// trustgate whose human signs in with a passkey in a real browser.
//
// Run by tests/passkey_test.go (TestPasskeyBrowserAndTypeScriptSDK), which starts the gateway
// and headless Chromium with a virtual authenticator, and passes MCP_URL, EMAIL, PASSWORD
// (lib.mjs) and:
//   CALLBACK_URL  the client's redirect URI (a listener of the test)
//   BROWSER_URL   where to hand the authorization URL to the test: it opens it in Chromium,
//                 signs in with the passkey alone, consents, and answers with the code
//
// The SDK registers, runs PKCE, exchanges the code and calls a tool with the token that came
// out. On success it prints one JSON line and exits 0; on failure it prints the reason to
// stderr and exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { Provider, assert, connectWithOAuth, env, flow, toolError } from "./lib.mjs";

const callbackURL = env("CALLBACK_URL");
const browserURL = env("BROWSER_URL");

class BrowserProvider extends Provider {
  get redirectUrl() {
    return callbackURL;
  }
  get clientMetadata() {
    return { ...super.clientMetadata, client_name: "trustgate e2e (passkey)", redirect_uris: [callbackURL] };
  }
  async redirectToAuthorization(authorizationUrl) {
    flow.authorizationUrl = new URL(authorizationUrl);
    const resp = await fetch(browserURL, { method: "POST", body: flow.authorizationUrl.href });
    const body = await resp.text();
    assert(resp.ok, `the browser could not complete the authorization: ${resp.status} ${body}`);
    const cb = new URL(body);
    assert(cb.origin + cb.pathname === callbackURL, `the browser ended at ${cb}, want ${callbackURL}`);
    flow.code = cb.searchParams.get("code");
    flow.state = cb.searchParams.get("state");
    flow.iss = cb.searchParams.get("iss");
    assert(flow.code, `no code in ${cb}`);
    assert(flow.state === this.state(), `state = ${flow.state}, want ${this.state()}`);
    flow.signedIn = flow.consented = true;
  }
}

async function main() {
  const client = new Client({ name: "trustgate-e2e-passkey", version: "1.0.0" });
  const { transport } = await connectWithOAuth(client, new BrowserProvider());
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const allowed = await client.callTool({ name: "create_issue", arguments: { title: "passkey" } });
    const allowedText = (allowed.content ?? []).map((c) => c.text ?? "").join(" ");
    assert(!allowed.isError && allowedText.includes("create_issue called: passkey"), `allowed call: ${JSON.stringify(allowed)} ${toolError(allowed)}`);
    console.log(JSON.stringify({ ok: true, iss: flow.iss, tools, allowed: allowedText }));
  } finally {
    await transport.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`passkey.mjs: FAIL: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
