// Shared by the TypeScript SDK end-to-end scripts: the environment, a browser that signs in and
// consents on the gateway's pages, and the SDK's OAuth client provider.
//
// Environment: MCP_URL (the gateway's MCP endpoint for one server), EMAIL and PASSWORD (a human
// granted that server), and optionally TRUST_LEVEL (the level to consent at; default medium).

import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

export const REDIRECT_URL = "http://127.0.0.1:33418/callback";

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is required`);
  return v;
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export const mcpUrl = new URL(env("MCP_URL"));
export const email = env("EMAIL");
export const password = env("PASSWORD");

// Every request the SDK makes (discovery, registration, token, MCP), to check the discovery
// it relies on really happened.
export const requests = [];
export const recordingFetch = async (input, init) => {
  const resp = await fetch(input, init);
  const url = new URL(input instanceof Request ? input.url : String(input));
  requests.push({ method: init?.method ?? (input instanceof Request ? input.method : "GET"), path: url.pathname, search: url.search, status: resp.status });
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

export function unescapeHTML(s) {
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
export async function browse(url, init = {}) {
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
export async function submit(page, fields) {
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

export const flow = { authorizationUrl: undefined, code: undefined, iss: undefined, state: undefined, signedIn: false, chosenServer: undefined, consented: false };

export class Provider {
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

  // signIn signs the human in on the sign-in page and returns the page that follows: here
  // with email and password; a provider of another sign-in method overrides it.
  async signIn(page) {
    assert(page.status === 200 && /name="password"/.test(page.body), `sign-in page: ${page.status} ${page.body.slice(0, 500)}`);
    return submit(page, { email, password });
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
    page = await this.signIn(page);
    assert(!page.location, `sign-in redirected away: ${page.location}`);
    // A resource that names no server (…/mcp) leads to the server choice first: take the
    // server the page pre-selected.
    const radio = page.body.match(/<input\b[^>]*\btype="radio"[^>]*\bname="server"[^>]*>/gi);
    if (radio) {
      const checked = radio.find((tag) => /\bchecked\b/i.test(tag));
      assert(checked, `server choice without a pre-selected server: ${page.body.slice(0, 500)}`);
      flow.chosenServer = unescapeHTML(checked.match(/\bvalue="([^"]*)"/i)[1]);
      page = await submit(page, { server: flow.chosenServer });
      assert(!page.location, `server choice redirected away: ${page.location}`);
    }
    assert(/name="trust_level"/.test(page.body), `after sign-in, no consent form: ${page.status} ${page.body.slice(0, 500)}`);
    flow.signedIn = true;
    page = await submit(page, { trust_level: process.env.TRUST_LEVEL || "medium", decision: "allow" });
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

export function toolError(result, err) {
  if (err) return String(err.message ?? err);
  if (result?.isError) return (result.content ?? []).map((c) => c.text ?? "").join(" ");
  return undefined;
}

// connectWithOAuth connects client to MCP_URL, running the whole OAuth flow first (401,
// discovery, registration, authorization in the browser, token). It returns the connected
// transport and the provider holding the tokens. provider is a Provider (or a subclass that
// signs in another way).
export async function connectWithOAuth(client, provider = new Provider()) {
  const newTransport = () => new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
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
  const transport = newTransport();
  await client.connect(transport);
  return { provider, transport };
}
