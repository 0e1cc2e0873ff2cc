// End-to-end: calls held for a person's approval, as the official MCP TypeScript SDK client sees
// them. The host holds every high call; the human consents at high.
//
// Run by tests/approvals_test.go (TestTypeScriptSDKApprovals), which decides the calls through
// the signed links of the approval emails: the first is approved, the second denied, the third
// left to time out. Environment: lib.mjs's (MCP_URL, EMAIL, PASSWORD, TRUST_LEVEL=high).
// On success it prints one JSON line and exits 0; on failure the reason on stderr and exit 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { connectWithOAuth, toolError } from "./lib.mjs";

async function call(client, name, args, options) {
  try {
    return { result: await client.callTool({ name, arguments: args }, undefined, options) };
  } catch (e) {
    return { error: e };
  }
}

const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? "").join(" ");

async function main() {
  const client = new Client({ name: "trustgate-e2e-ts-approvals", version: "1.0.0" });
  await connectWithOAuth(client);
  const out = { ok: false };
  try {
    // Held, approved through the link: the answer comes back; progress notifications kept the
    // request alive meanwhile (and reset the SDK's timeout).
    let progress = 0;
    const approved = await call(client, "delete_issue", { id: "approve-me" }, {
      onprogress: () => { progress++; },
      resetTimeoutOnProgress: true,
      timeout: 20000,
    });
    out.approved = toolError(approved.result, approved.error) ?? textOf(approved.result);
    out.approved_ok = !approved.error && !approved.result?.isError;
    out.progress = progress;

    // Held, denied through the link.
    const denied = await call(client, "delete_issue", { id: "deny-me" });
    out.denied = toolError(denied.result, denied.error) ?? `not denied: ${textOf(denied.result)}`;

    // Held, nobody decides: denied at the rule's timeout.
    const timedOut = await call(client, "delete_issue", { id: "forget-me" });
    out.timed_out = toolError(timedOut.result, timedOut.error) ?? `not denied: ${textOf(timedOut.result)}`;

    // Calls the policy does not name are not held.
    const listed = await call(client, "list_issues", {});
    out.unheld = toolError(listed.result, listed.error) ?? textOf(listed.result);
    out.ok = true;
  } finally {
    await client.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e?.stack ?? String(e));
  process.exit(1);
});
