// End-to-end: what the official MCP TypeScript SDK client (and so the model behind it) gets for
// a denied tools/call, in both of a host's denial formats.
//
// Run by tests/agent_denials_test.go (TestTypeScriptSDKDeniedCall). Besides lib.mjs's
// environment (MCP_URL, EMAIL, PASSWORD; the human consents at medium) it needs:
//   API_URL       the gateway's base URL, for the admin API
//   ADMIN_TOKEN   an admin API token, to change the host's denial format mid-session
//   HOST          the host the agent lives in
// On success it prints one JSON line and exits 0; on failure the reason on stderr and exit 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, connectWithOAuth, env } from "./lib.mjs";

const apiUrl = env("API_URL");
const adminToken = env("ADMIN_TOKEN");
const host = env("HOST");

async function call(client, name, args) {
  try {
    return { result: await client.callTool({ name, arguments: args }) };
  } catch (e) {
    return { error: e };
  }
}

const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? "").join(" ");

async function setDenialFormat(format) {
  const resp = await fetch(`${apiUrl}/api/v1/hosts/${host}`, {
    method: "PATCH",
    headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ settings: { denial_format: format } }),
  });
  const body = await resp.text();
  assert(resp.ok, `PATCH host ${host}: ${resp.status} ${body}`);
  assert(JSON.parse(body).settings?.denial_format === format, `host after PATCH: ${body}`);
}

async function main() {
  const client = new Client({ name: "trustgate-e2e-ts-denial", version: "1.0.0" });
  const { transport } = await connectWithOAuth(client);
  const out = { ok: false };
  try {
    // The default: a tool result with isError, which the SDK hands over without throwing.
    const denied = await call(client, "delete_issue", { id: "1" });
    assert(!denied.error, `denied call threw: ${denied.error?.stack ?? denied.error}`);
    assert(denied.result.isError === true, `denied call: ${JSON.stringify(denied.result)}, want isError`);
    out.result_text = textOf(denied.result);
    out.structured = denied.result.structuredContent ?? null;

    const after = await call(client, "create_issue", { title: "after a denial" });
    assert(!after.error && !after.result.isError, `allowed call after the denial: ${after.error ?? JSON.stringify(after.result)}`);
    out.allowed_after_result = textOf(after.result);

    // The host wants JSON-RPC errors: the SDK throws the -31001 error.
    await setDenialFormat("jsonrpc_error");
    const old = await call(client, "delete_issue", { id: "1" });
    assert(old.error, `denied call on a jsonrpc_error host did not throw: ${JSON.stringify(old.result)}`);
    out.error_code = old.error.code ?? null;
    out.error_message = String(old.error.message ?? old.error);
    out.error_reason = old.error.data?.reason ?? null;

    const again = await call(client, "create_issue", { title: "after an error" });
    assert(!again.error && !again.result.isError, `allowed call after the error: ${again.error ?? JSON.stringify(again.result)}`);
    out.allowed_after_error = textOf(again.result);
    out.ok = true;
  } finally {
    await transport.close();
  }
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`denial.mjs: FAIL: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
