// End-to-end: a call held for the agent's own human is asked in the human's client (MCP
// elicitation), as the official MCP TypeScript SDK client sees it. The host holds every high
// call; the human consents at high.
//
// Run by tests/approvals_test.go (TestTypeScriptSDKElicitation). A client declaring the
// elicitation capability gets the question on the held call's stream: its "yes" forwards the
// first call, its "no" denies the second — after an answer to the same question posted from
// another session, which must change nothing. A second client of the same agent, without the
// capability, is not asked: its call is held and the test approves it through the admin CLI.
// Environment: lib.mjs's (MCP_URL, EMAIL, PASSWORD, TRUST_LEVEL=high).
// On success it prints one JSON line and exits 0; on failure the reason on stderr and exit 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { connectWithOAuth, mcpUrl, recordingFetch, toolError } from "./lib.mjs";

async function call(client, name, args, options) {
  try {
    return { result: await client.callTool({ name, arguments: args }, undefined, options) };
  } catch (e) {
    return { error: e };
  }
}

const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? "").join(" ");

async function main() {
  const client = new Client({ name: "trustgate-e2e-ts-elicitation", version: "1.0.0" }, { capabilities: { elicitation: {} } });
  const out = { ok: false, questions: [] };
  let plainTransport;
  let provider;
  // The human's answers, in order: yes, then (after a forged answer from another session) no.
  const answers = [
    async () => ({ action: "accept", content: { approve: true } }),
    async (id) => {
      out.forged_status = await postAnswer(plainTransport, id, { action: "accept", content: { approve: true } });
      return { action: "decline" };
    },
  ];
  client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
    out.questions.push(request.params.message);
    out.schema = request.params.requestedSchema;
    const answer = answers.shift();
    if (!answer) return { action: "cancel" };
    return answer(extra.requestId);
  });
  ({ provider } = await connectWithOAuth(client));

  // The same agent's second client, without the elicitation capability.
  const plain = new Client({ name: "trustgate-e2e-ts-elicitation", version: "1.0.0" });
  plainTransport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  await plain.connect(plainTransport);

  // postAnswer posts a JSON-RPC response to the question id on transport's session, as a
  // client would, and returns the HTTP status.
  async function postAnswer(transport, id, result) {
    const resp = await fetch(mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${provider.tokens().access_token}`,
        "mcp-session-id": transport.sessionId,
        "mcp-protocol-version": transport.protocolVersion ?? "2025-06-18",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id, result }),
    });
    await resp.text();
    return resp.status;
  }

  try {
    const opts = { timeout: 30000 };
    const approved = await call(client, "delete_issue", { id: "approve-in-client" }, opts);
    out.approved = toolError(approved.result, approved.error) ?? textOf(approved.result);
    out.approved_ok = !approved.error && !approved.result?.isError;

    const declined = await call(client, "delete_issue", { id: "decline-in-client" }, opts);
    out.declined = toolError(declined.result, declined.error) ?? `not denied: ${textOf(declined.result)}`;

    // An answer to a question nobody asked changes nothing.
    out.unknown_status = await postAnswer(plainTransport, "trustgate.approval.hc_00000000000000000000000000000000.AAAAAAAAAAAAAAAAAAAAAA",
      { action: "accept", content: { approve: true } });

    // Without the capability: held, decided by the test through the admin CLI.
    const held = await call(plain, "delete_issue", { id: "held-for-plain" }, opts);
    out.plain = toolError(held.result, held.error) ?? textOf(held.result);
    out.plain_ok = !held.error && !held.result?.isError;
    out.ok = true;
  } finally {
    await plain.close();
    await client.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e?.stack ?? String(e));
  process.exit(1);
});
