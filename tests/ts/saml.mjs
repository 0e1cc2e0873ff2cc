// End-to-end SAML sign-in: the official MCP TypeScript SDK client against a running trustgate
// whose host signs people in at a SAML identity provider.
//
// Run by tests/saml_test.go (TestSAMLTypeScriptSDK), which starts the gateway, the upstream and
// a SAML IdP on loopback, and passes MCP_URL, EMAIL, PASSWORD (lib.mjs) and:
//   IDP_USER      the person's username at the IdP
//   IDP_PASSWORD  their password there
//
// The browser chooses single sign-on on the gateway's sign-in page, signs in on the IdP's login
// form, carries the IdP's response back to the gateway (HTTP-POST binding), consents, and the
// SDK calls a tool with the token that came out. On success it prints one JSON line and exits
// 0; on failure it prints the reason to stderr and exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { Provider, assert, browse, connectWithOAuth, env, flow, toolError, unescapeHTML } from "./lib.mjs";

const idpUser = env("IDP_USER");
const idpPassword = env("IDP_PASSWORD");

// The browser at the IdP (another origin): its own cookie jar, redirects followed there.
const idpCookies = new Map();

async function atIdP(url, init = {}) {
  let target = new URL(url);
  let opts = { ...init };
  const origin = target.origin;
  for (let hops = 0; hops < 10; hops++) {
    assert(target.origin === origin, `the IdP sent the browser to ${target}`);
    const headers = new Headers(opts.headers);
    if (idpCookies.size) headers.set("Cookie", [...idpCookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const resp = await fetch(target, { ...opts, headers, redirect: "manual" });
    for (const sc of resp.headers.getSetCookie()) {
      const pair = sc.split(";")[0];
      const eq = pair.indexOf("=");
      if (eq > 0) idpCookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    if (resp.status >= 300 && resp.status < 400) {
      await resp.arrayBuffer();
      target = new URL(resp.headers.get("location"), target);
      opts = {};
      continue;
    }
    return { status: resp.status, body: await resp.text(), url: target };
  }
  throw new Error(`too many redirects at the IdP from ${url}`);
}

const field = (body, name) => {
  const m = body.match(new RegExp(`name="${name}" value="([^"]*)"`));
  return m ? unescapeHTML(m[1]) : undefined;
};

class SAMLProvider extends Provider {
  async signIn(page) {
    assert(page.status === 200, `sign-in page: ${page.status} ${page.body.slice(0, 500)}`);
    const link = page.body.match(/href="([^"]*\/auth\/saml\/start[^"]*)"/);
    assert(link, `sign-in page without single sign-on: ${page.body.slice(0, 1500)}`);
    const started = await browse(new URL(unescapeHTML(link[1]), page.url));
    assert(started.location, `single sign-on did not go to the IdP: ${started.status} ${started.body?.slice(0, 500)}`);
    flow.idpRequest = started.location.searchParams.has("SAMLRequest") && started.location.searchParams.has("Signature");

    let idp = await atIdP(started.location);
    const back = field(idp.body, "back");
    assert(back, `no IdP login form: ${idp.status} ${idp.body.slice(0, 500)}`);
    idp = await atIdP(new URL("/login", started.location), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ username: idpUser, password: idpPassword, back }).toString(),
    });
    const action = idp.body.match(/<form method="post" action="([^"]*)"/);
    const response = field(idp.body, "SAMLResponse");
    assert(idp.status === 200 && action && response, `IdP answer without a response form: ${idp.status} ${idp.body.slice(0, 500)}`);
    flow.acs = unescapeHTML(action[1]);
    const params = new URLSearchParams({ SAMLResponse: response, RelayState: field(idp.body, "RelayState") ?? "" });
    const next = await browse(flow.acs, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: params.toString(),
    });
    flow.samlSignedIn = !next.location && next.status === 200 && /name="(trust_level|server)"/.test(next.body);
    assert(flow.samlSignedIn, `after the IdP's response, no consent: ${next.status} ${next.body?.slice(0, 800)}`);
    return next;
  }
}

async function main() {
  const client = new Client({ name: "trustgate-e2e-saml", version: "1.0.0" });
  const { transport } = await connectWithOAuth(client, new SAMLProvider());
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const allowed = await client.callTool({ name: "create_issue", arguments: { title: "saml" } });
    const allowedText = (allowed.content ?? []).map((c) => c.text ?? "").join(" ");
    assert(!allowed.isError && allowedText.includes("create_issue called: saml"), `allowed call: ${JSON.stringify(allowed)} ${toolError(allowed)}`);
    console.log(
      JSON.stringify({
        ok: true,
        signed_request: flow.idpRequest,
        acs: flow.acs,
        saml_signed_in: flow.samlSignedIn,
        consented: flow.consented,
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
    console.error(`saml.mjs: FAIL: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
