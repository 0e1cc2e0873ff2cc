// End-to-end: tools/list answers in every framing a client accepts, read by the official MCP
// TypeScript SDK client through trustgate (tests/answers_test.go, TestUpstreamAnswerFramings).
//
// Besides lib.mjs's environment (MCP_URL, EMAIL, PASSWORD, TRUST_LEVEL: the level the human
// consents at) it needs:
//   CONTROL_URL  the test upstream's control endpoint: POST ?framing=NAME makes it answer the
//                next tools/list in that framing
//   FRAMINGS     the framings to try, comma-separated
// It prints one JSON line: {ok, lists: {framing: {tools: [...]} | {error: {code, message}}},
// session, protocol, token} (the session and token let the test list tools itself too).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { connectWithOAuth, env } from "./lib.mjs";

const controlUrl = env("CONTROL_URL");
const framings = env("FRAMINGS").split(",");

async function main() {
  const client = new Client({ name: "trustgate-e2e-ts-framings", version: "1.0.0" });
  const { provider, transport } = await connectWithOAuth(client);
  const lists = {};
  try {
    for (const framing of framings) {
      const resp = await fetch(`${controlUrl}?framing=${encodeURIComponent(framing)}`, { method: "POST" });
      if (!resp.ok) throw new Error(`control ${framing}: ${resp.status}`);
      try {
        lists[framing] = { tools: (await client.listTools(undefined, { timeout: 5000 })).tools.map((t) => t.name).sort() };
      } catch (e) {
        lists[framing] = { error: { code: e.code ?? null, message: String(e.message ?? e) } };
      }
    }
    await fetch(`${controlUrl}?framing=`, { method: "POST" });
    console.log(JSON.stringify({ ok: true, lists, session: transport.sessionId ?? "", protocol: transport.protocolVersion ?? "", token: provider.tokens().access_token }));
  } finally {
    await client.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e?.stack ?? String(e));
    process.exit(1);
  },
);
