// End-to-end: the official MCP TypeScript SDK client checks a tool result's structuredContent
// against the outputSchema the tool was listed with, even when isError is set, and throws when
// it does not match. A denied call of such a tool must still reach it as a tool result.
//
// Run by tests/agent_denials_test.go (TestTypeScriptSDKDeniedCallOfAToolWithAnOutputSchema).
// Besides lib.mjs's environment (MCP_URL, EMAIL, PASSWORD; the human consents at medium) it
// needs TOOL, a tool listed with an outputSchema that the agent may not call. On success it
// prints one JSON line and exits 0; on failure the reason on stderr and exit 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, connectWithOAuth, env } from "./lib.mjs";

const toolName = env("TOOL");

async function call(client, name, args) {
  try {
    return { result: await client.callTool({ name, arguments: args }) };
  } catch (e) {
    return { error: e };
  }
}

const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? "").join(" ");

async function main() {
  const client = new Client({ name: "trustgate-e2e-ts-output-schema", version: "1.0.0" });
  const { transport } = await connectWithOAuth(client);
  const out = { ok: false };
  try {
    // The listing makes the SDK keep the tool's output schema, to check results against.
    const { tools } = await client.listTools();
    const listed = tools.find((t) => t.name === toolName);
    assert(listed, `tools/list lacks ${toolName}: ${JSON.stringify(tools.map((t) => t.name))}`);
    out.output_schema = listed.outputSchema ?? null;

    const denied = await call(client, toolName, {});
    out.threw = denied.error ? String(denied.error.message ?? denied.error) : null;
    assert(!denied.error, `denied call threw: ${denied.error?.stack ?? denied.error}`);
    assert(denied.result.isError === true, `denied call: ${JSON.stringify(denied.result)}, want isError`);
    out.result_text = textOf(denied.result);
    out.structured = denied.result.structuredContent ?? null;
    out.meta = denied.result._meta?.["trustgate/denial"] ?? null;

    const after = await call(client, "create_issue", { title: "after a denial" });
    assert(!after.error && !after.result.isError, `allowed call after the denial: ${after.error ?? JSON.stringify(after.result)}`);
    out.allowed_after = textOf(after.result);
    out.ok = true;
  } finally {
    await transport.close();
  }
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`denial_output_schema.mjs: FAIL: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
