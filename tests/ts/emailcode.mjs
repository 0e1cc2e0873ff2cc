// End-to-end: a person proves their address with a code sent by email, and the official MCP
// TypeScript SDK client calls a tool with the token that came out.
//
// Run by tests/ (email codes and account takeover tests), which start the gateway with a real
// SMTP server on loopback and pass MCP_URL, EMAIL, PASSWORD and:
//   CODE_MODE    "otp": the sign-in page's "Email me a sign-in code" button, then the code;
//                "claim": "First time here, or forgot your password?", the code, then PASSWORD
//                is chosen as the new password
//   MAILBOX_URL  answers GET ?to=<address> with the code of the next message sent to that
//                address (the test reads it from the real message the SMTP server received)
// Prints one JSON line on success.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, browse, connectWithOAuth, email, env, flow, password, Provider, submit, unescapeHTML } from "./lib.mjs";

const mode = env("CODE_MODE");
const mailbox = env("MAILBOX_URL");
const seen = { code_page: false, password_page: false };

async function nextCode() {
  const resp = await fetch(`${mailbox}?to=${encodeURIComponent(email)}`);
  const body = await resp.text();
  assert(resp.status === 200 && /^\d{6}$/.test(body), `mailbox: ${resp.status} ${body}`);
  return body;
}

class CodeProvider extends Provider {
  async signIn(page) {
    assert(page.status === 200, `sign-in page: ${page.status} ${page.body.slice(0, 500)}`);
    let p;
    if (mode === "otp") {
      const action = page.body.match(/formaction="([^"]*)"/);
      assert(action, `no "Email me a sign-in code" button: ${page.body.slice(0, 1500)}`);
      // The button posts the sign-in form to its formaction.
      const withAction = { ...page, body: page.body.replace(/<form method="post"[^>]*>/, `<form method="post" action="${action[1]}">`) };
      p = await submit(withAction, { email });
    } else {
      const link = page.body.match(/href="([^"]*\/email-code\?[^"]*)"/);
      assert(link, `no link to set a password by email: ${page.body.slice(0, 1500)}`);
      p = await browse(new URL(unescapeHTML(link[1]), page.url));
      p = await submit(p, { email });
    }
    assert(p.status === 200 && /name="code"/.test(p.body), `code page: ${p.status} ${p.body.slice(0, 500)}`);
    seen.code_page = true;
    p = await submit(p, { code: await nextCode() });
    if (mode === "claim") {
      assert(p.status === 200 && /name="password_confirm"/.test(p.body), `password page: ${p.status} ${p.body.slice(0, 500)}`);
      seen.password_page = true;
      p = await submit(p, { password, password_confirm: password });
    }
    return p;
  }
}

async function main() {
  const client = new Client({ name: "trustgate-e2e-email-code", version: "1.0.0" });
  const { transport } = await connectWithOAuth(client, new CodeProvider());
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const allowed = await client.callTool({ name: "create_issue", arguments: { title: mode } });
    assert(!allowed.isError, `allowed call: ${JSON.stringify(allowed)}`);
    console.log(
      JSON.stringify({
        ok: true,
        ...seen,
        signed_in: flow.signedIn,
        consented: flow.consented,
        tools,
        allowed: (allowed.content ?? []).map((c) => c.text ?? "").join(" "),
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
