// End-to-end: a person signs in to trustgate with single sign-on (OIDC, or a GitHub-style
// OAuth provider) and the official MCP TypeScript SDK client calls a tool with the token that
// came out.
//
// Run by tests/sso_test.go, which starts the gateway, the provider on loopback and the upstream,
// and passes MCP_URL, EMAIL, PASSWORD (unused) and:
//   SSO_METHOD    the method whose button the person presses ("oidc", "github", ...)
//   SSO_USERNAME  the person's username at the provider (its sign-in page, when it shows one)
//   SSO_PASSWORD  their password there
//
// The browser presses the method's button on the gateway's sign-in page, follows the provider's
// redirects (with cookies of its own), signs in on the provider's page when it shows one, comes
// back to the gateway's callback and consents. Prints one JSON line on success.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, browse, connectWithOAuth, env, flow, mcpUrl, Provider, toolError, unescapeHTML } from "./lib.mjs";

const method = env("SSO_METHOD");
const username = env("SSO_USERNAME");
const userPassword = env("SSO_PASSWORD");
const seen = { button: undefined, provider: undefined, callback: undefined, provider_pages: 0 };

// The browser at the provider: its own cookies, redirects followed while they stay there.
const providerCookies = new Map();
async function atProvider(url, init = {}) {
  let target = new URL(url);
  let opts = { ...init };
  for (let hops = 0; hops < 10; hops++) {
    const headers = new Headers(opts.headers);
    if (providerCookies.size) headers.set("Cookie", [...providerCookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const resp = await fetch(target, { ...opts, headers, redirect: "manual" });
    for (const sc of resp.headers.getSetCookie()) {
      const [pair] = sc.split(";");
      const eq = pair.indexOf("=");
      if (eq > 0) providerCookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    if (resp.status >= 300 && resp.status < 400) {
      await resp.arrayBuffer();
      const next = new URL(resp.headers.get("location"), target);
      if (next.origin !== seen.provider) return { location: next };
      target = next;
      opts = {};
      continue;
    }
    return { status: resp.status, body: await resp.text(), url: target };
  }
  throw new Error(`too many redirects at the provider from ${url}`);
}

// SSOProvider presses the method's button instead of submitting a password.
class SSOProvider extends Provider {
  async signIn(page) {
    return ssoSignIn(page);
  }
}

async function ssoSignIn(page) {
  assert(page.status === 200, `sign-in page: ${page.status} ${page.body.slice(0, 500)}`);
  const m = page.body.match(new RegExp(`href="([^"]*/auth/${method}/start\\?[^"]*)"`));
  assert(m, `no ${method} button on the sign-in page: ${page.body.slice(0, 1500)}`);
  const start = new URL(unescapeHTML(m[1]), page.url);
  seen.button = start.pathname;
  const left = await browse(start);
  assert(left.location, `the ${method} button did not send the browser to the provider: ${left.status} ${left.body?.slice(0, 500)}`);
  seen.provider = left.location.origin;
  let p = await atProvider(left.location);
  if (!p.location) {
    // The provider's own sign-in page (zitadel's: a hidden id, username and password).
    seen.provider_pages++;
    assert(p.status === 200, `provider page: ${p.status} ${p.body.slice(0, 500)}`);
    const id = p.body.match(/name="id" value="([^"]*)"/);
    assert(id, `no sign-in form at the provider: ${p.body.slice(0, 500)}`);
    p = await atProvider(new URL("/login/username", p.url), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ id: unescapeHTML(id[1]), username, password: userPassword }).toString(),
    });
    assert(p.location, `signing in at the provider did not send the browser back: ${p.status} ${p.body?.slice(0, 500)}`);
  }
  assert(p.location.origin === mcpUrl.origin, `the provider sent the browser to ${p.location}, not to the gateway`);
  seen.callback = p.location.pathname;
  return browse(p.location);
}

async function main() {
  const client = new Client({ name: "trustgate-e2e-sso", version: "1.0.0" });
  const { transport } = await connectWithOAuth(client, new SSOProvider());
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const allowed = await client.callTool({ name: "create_issue", arguments: { title: "sso" } });
    const allowedText = (allowed.content ?? []).map((c) => c.text ?? "").join(" ");
    assert(!allowed.isError, `allowed call: ${JSON.stringify(allowed)}`);
    let denied, deniedErr;
    try {
      denied = await client.callTool({ name: "delete_issue", arguments: { id: "1" } });
    } catch (e) {
      deniedErr = e;
    }
    console.log(
      JSON.stringify({
        ok: true,
        ...seen,
        signed_in: flow.signedIn,
        consented: flow.consented,
        tools,
        allowed: allowedText,
        denied: toolError(denied, deniedErr) ?? "",
      }),
    );
  } finally {
    await transport.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e?.stack ?? String(e));
    process.exit(1);
  },
);
