// End-to-end: the official MCP TypeScript SDK client against a running trustgate.
//
// Run by tests/ts_sdk_test.go (TestTypeScriptSDKClient), which starts the gateway and the
// upstream and passes:
//   MCP_URL   the gateway's MCP endpoint for one server, e.g. http://127.0.0.1:PORT/h/acme/mcp/tracker
//   EMAIL     a human granted that server up to "high"
//   PASSWORD  the password to sign in (or claim the pre-authorized account) with
//
// The SDK does discovery (RFC 9728 -> RFC 8414), dynamic registration (RFC 7591), PKCE and the
// token request itself; this script only plays the browser in redirectToAuthorization. On
// success it prints one JSON line and exits 0; on failure it prints the reason to stderr and
// exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const REDIRECT_URL = "http://127.0.0.1:33418/callback";

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is required`);
  return v;
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const mcpUrl = new URL(env("MCP_URL"));
const email = env("EMAIL");
const password = env("PASSWORD");

// Every request the SDK makes (discovery, registration, token, MCP), to check the discovery
// it relies on really happened.
const requests = [];
const recordingFetch = async (input, init) => {
  const resp = await fetch(input, init);
  const url = new URL(input instanceof Request ? input.url : String(input));
  requests.push({ method: init?.method ?? (input instanceof Request ? input.method : "GET"), path: url.pathname, status: resp.status });
  return resp;
};

// ---- the browser ---------------------------------------------------------------------------

// A cookie jar of one origin: name -> value, from Set-Cookie, sent back as Cookie.
const cookies = new Map();

function keepCookies(resp) {
  for (const sc of resp.headers.getSetCookie()) {
    const [pair, ...attrs] = sc.split(";");
    const eq = pair.indexOf("=");
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a));
    if (expired || value === "") cookies.delete(name);
    else cookies.set(name, value);
  }
}

function cookieHeader() {
  return [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
}

function unescapeHTML(s) {
  return s
    .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(parseInt(n, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

// browse sends one browser request and follows redirects while they stay on the gateway's
// origin. It returns {status, body, url} for a page, or {location} when sent elsewhere (the
// hand-back to the client's redirect URI).
async function browse(url, init = {}) {
  let target = new URL(url);
  let opts = { ...init };
  for (let hops = 0; hops < 10; hops++) {
    assert(target.origin === mcpUrl.origin, `browser left the gateway's origin: ${target}`);
    const headers = new Headers(opts.headers);
    if (cookies.size) headers.set("Cookie", cookieHeader());
    const resp = await fetch(target, { ...opts, headers, redirect: "manual" });
    keepCookies(resp);
    if (resp.status >= 300 && resp.status < 400) {
      await resp.arrayBuffer();
      const loc = resp.headers.get("location");
      assert(loc, `redirect ${resp.status} from ${target} without Location`);
      const next = new URL(loc, target);
      if (next.origin !== mcpUrl.origin) return { location: next };
      target = next;
      opts = {}; // a redirect after a POST is followed with a GET (303 / 302 as browsers do)
      continue;
    }
    return { status: resp.status, body: await resp.text(), url: target };
  }
  throw new Error(`too many redirects from ${url}`);
}

// submit posts the page's form with its hidden fields plus fields.
async function submit(page, fields) {
  const form = page.body.match(/<form\b[^>]*\bmethod="post"[^>]*>/i);
  assert(form, `no form in page ${page.url} (${page.status}): ${page.body.slice(0, 500)}`);
  const action = form[0].match(/\baction="([^"]*)"/i);
  const target = new URL(action ? unescapeHTML(action[1]) : page.url.href, page.url);
  const params = new URLSearchParams();
  for (const input of page.body.matchAll(/<input\b[^>]*>/gi)) {
    const tag = input[0];
    if (!/\btype="hidden"/i.test(tag)) continue;
    const name = tag.match(/\bname="([^"]*)"/i);
    const value = tag.match(/\bvalue="([^"]*)"/i);
    if (name) params.set(unescapeHTML(name[1]), value ? unescapeHTML(value[1]) : "");
  }
  for (const [k, v] of Object.entries(fields)) params.set(k, v);
  return browse(target, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: params.toString(),
  });
}

// ---- the OAuth client provider ---------------------------------------------------------------

const flow = { authorizationUrl: undefined, code: undefined, iss: undefined, state: undefined, signedIn: false, consented: false };

class Provider {
  #clientInformation;
  #tokens;
  #codeVerifier;
  #state = crypto.randomUUID();
  discovery;

  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: "trustgate e2e (TypeScript SDK)",
      redirect_uris: [REDIRECT_URL],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return this.#state;
  }
  clientInformation() {
    return this.#clientInformation;
  }
  saveClientInformation(info) {
    this.#clientInformation = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens) {
    this.#tokens = tokens;
  }
  saveCodeVerifier(v) {
    this.#codeVerifier = v;
  }
  codeVerifier() {
    assert(this.#codeVerifier, "no PKCE code verifier saved");
    return this.#codeVerifier;
  }
  saveDiscoveryState(state) {
    this.discovery = state;
  }

  // The human at the browser: open the authorization URL, sign in, consent at medium, and
  // take the code from the redirect back to the client.
  async redirectToAuthorization(authorizationUrl) {
    flow.authorizationUrl = new URL(authorizationUrl);
    const q = flow.authorizationUrl.searchParams;
    assert(q.get("code_challenge_method") === "S256" && q.get("code_challenge"), `authorization URL without PKCE S256: ${authorizationUrl}`);
    assert(q.get("resource") === mcpUrl.href, `authorization URL resource = ${q.get("resource")}, want ${mcpUrl.href}`);

    let page = await browse(flow.authorizationUrl);
    assert(!page.location, `authorization redirected away before sign-in: ${page.location}`);
    assert(page.status === 200 && /name="password"/.test(page.body), `sign-in page: ${page.status} ${page.body.slice(0, 500)}`);
    page = await submit(page, { email, password });
    assert(!page.location, `sign-in redirected away: ${page.location}`);
    assert(/name="trust_level"/.test(page.body), `after sign-in, no consent form: ${page.status} ${page.body.slice(0, 500)}`);
    flow.signedIn = true;
    page = await submit(page, { trust_level: "medium", decision: "allow" });
    assert(page.location, `consent did not redirect to the client: ${page.status} ${page.body?.slice(0, 500)}`);
    flow.consented = true;
    const cb = page.location;
    assert(cb.origin + cb.pathname === REDIRECT_URL, `consent redirected to ${cb}, want ${REDIRECT_URL}`);
    assert(!cb.searchParams.get("error"), `authorization error: ${cb}`);
    flow.code = cb.searchParams.get("code");
    flow.state = cb.searchParams.get("state");
    flow.iss = cb.searchParams.get("iss");
    assert(flow.code, `no code in ${cb}`);
    assert(flow.state === this.#state, `state = ${flow.state}, want ${this.#state}`);
  }
}

// ---- the client --------------------------------------------------------------------------------

function toolError(result, err) {
  if (err) return String(err.message ?? err);
  if (result?.isError) return (result.content ?? []).map((c) => c.text ?? "").join(" ");
  return undefined;
}

async function main() {
  const provider = new Provider();
  const newTransport = () => new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: "trustgate-e2e-ts", version: "1.0.0" });

  // First connect: 401 -> discovery -> registration -> redirectToAuthorization -> UnauthorizedError.
  const first = newTransport();
  try {
    await client.connect(first);
    throw new Error("connect without a token succeeded; expected UnauthorizedError");
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  assert(flow.code, "the SDK did not send the user to the authorization URL");
  await first.finishAuth(flow.code);
  assert(provider.tokens()?.access_token, "finishAuth stored no access token");

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

  // Second connect, with the token.
  const transport = newTransport();
  await client.connect(transport);
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
