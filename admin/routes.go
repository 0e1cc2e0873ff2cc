package admin

import "net/http"

// Route is one operation of the admin API. The table below is the single source of both the
// router and the OpenAPI document.
type Route struct {
	Method  string
	Path    string
	ID      string // OpenAPI operationId
	Summary string
	// Request is a zero value of the request body's type (nil: no body).
	Request any
	// Response is a zero value of the success body's type (nil: 204 No Content).
	Response any
	Status   int
	// Global routes need a global token.
	Global bool
	// Query lists the query parameters the route reads (besides limit and cursor on lists).
	Query  []string
	handle func(*API, *http.Request, *caller) (int, any, error)
}

const (
	pHosts   = "/api/v1/hosts"
	pHost    = pHosts + "/{host}"
	pServers = pHost + "/servers"
	pServer  = pServers + "/{server}"
	pTools   = pServer + "/tools"
	pTool    = pTools + "/{tool}"
	pHumans  = pHost + "/humans"
	pHuman   = pHumans + "/{human}"
	pGrant   = pHuman + "/grants/{server}"
	pAgents  = pHost + "/agents"
	pAgent   = pAgents + "/{agent}"
	pAgentSv = pAgent + "/servers/{server}"
	pHTokens = pHost + "/tokens"
	pGTokens = "/api/v1/tokens"
	pAuthMth = pHost + "/auth/methods/{method}"
	// pSetAside: the host's relationship changes set aside (setaside.go). A collection of its
	// own under the host, as approvals and standing-approvals are.
	pSetAside = pHost + "/set-aside-changes"
)

func (a *API) routes() []Route {
	ok, created, none := http.StatusOK, http.StatusCreated, http.StatusNoContent
	return []Route{
		{"GET", pHosts, "listHosts", "List hosts (a host token sees its own)", nil, Page[Host]{}, ok, false, nil, (*API).listHosts},
		{"POST", pHosts, "createHost", "Create a host", HostCreate{}, Host{}, created, true, nil, (*API).createHost},
		{"GET", pHost, "getHost", "Show a host with its MCP URL and client configuration", nil, Host{}, ok, false, nil, (*API).getHost},
		{"PATCH", pHost, "updateHost", "Change a host's name and settings", HostUpdate{}, Host{}, ok, false, nil, (*API).updateHost},
		{"POST", pHost + "/emergency-stop", "stopHost", "Emergency stop: refuse every call on the host (reason emergency_stop) until lifted, on every replica at once", EmergencyStopRequest{}, Host{}, ok, false, nil, (*API).stopHost},
		{"DELETE", pHost + "/emergency-stop", "liftHostStop", "Lift the host's emergency stop", nil, Host{}, ok, false, nil, (*API).liftHostStop},
		{"GET", pHost + "/webhook", "getWebhook", "Show whether the host's incoming webhook is set (its URL is never returned)", nil, WebhookStatus{}, ok, false, nil, (*API).getWebhook},
		{"PUT", pHost + "/webhook", "setWebhook", "Set the host's Slack-compatible incoming webhook URL (stored sealed, write-only)", WebhookSet{}, WebhookStatus{}, ok, false, nil, (*API).setWebhook},
		{"DELETE", pHost + "/webhook", "deleteWebhook", "Remove the host's incoming webhook", nil, nil, none, false, nil, (*API).deleteWebhook},
		{"POST", pHost + "/webhook/test", "testWebhook", "Post a test message to the host's incoming webhook now, once, and report the outcome", nil, WebhookTestResult{}, ok, false, nil, (*API).testWebhook},
		{"GET", pHost + "/approvals", "listHeldCalls", "List the calls waiting for a person's approval (the host's approval policy)", nil, Page[HeldCall]{}, ok, false, nil, (*API).listHeldCalls},
		{"POST", pHost + "/approvals/{id}/approve", "approveHeldCall", "Approve a held call: it is forwarded now (with standing_hours, the agent's calls of that tool go through for that long)", nil, HeldCall{}, ok, false, nil, (*API).approveHeldCall},
		{"POST", pHost + "/approvals/{id}/deny", "denyHeldCall", "Deny a held call: the agent gets the error (reason approval_denied)", nil, HeldCall{}, ok, false, nil, (*API).denyHeldCall},
		{"GET", pHost + "/standing-approvals", "listStandingApprovals", "List the approvals that let an agent's calls of a tool through for some hours", nil, Page[StandingApproval]{}, ok, false, nil, (*API).listStandingApprovals},
		{"DELETE", pHost + "/standing-approvals/{agent}/{server}/{tool}", "revokeStandingApproval", "Revoke a standing approval: the agent's next call of the tool waits for approval again", nil, nil, none, false, nil, (*API).revokeStandingApproval},
		{"GET", pSetAside, "listSetAsideChanges", "List the host's relationship changes the authorization backend refused for good, oldest first: while there is one, every call on the host is refused (reason pending_change) until it is retried or discarded", nil, Page[SetAsideChange]{}, ok, false, nil, (*API).listSetAsideChanges},
		{"POST", pSetAside + "/{id}/retry", "retrySetAsideChange", "Retry a set-aside change: queue and apply what the store implies for its relationship now (a touch when the store derives it, else a delete; never the old change over newer ones); set_aside_again when the backend refuses that too", nil, SetAsideRetry{}, ok, false, nil, (*API).retrySetAsideChange},
		{"DELETE", pSetAside + "/{id}", "discardSetAsideChange", "Discard a set-aside change: apply nothing (the authorization backend lacks the change; the host's calls are decided again)", nil, nil, none, false, nil, (*API).discardSetAsideChange},
		{"DELETE", pHost, "deleteHost", "Delete a host and everything in it", nil, nil, none, true, nil, (*API).deleteHost},

		{"GET", pHost + "/auth", "getAuthSettings", "Show the host's sign-in methods and allowed sign-in domains (secrets only as set / not set)", nil, AuthSettings{}, ok, false, nil, (*API).getAuthSettings},
		{"PUT", pAuthMth, "setAuthMethod", "Replace a sign-in method's settings (a secret is write-only; absent keeps the stored one; enabling email_otp needs the gateway to send email, else 400)", AuthMethodSet{}, AuthMethod{}, ok, false, nil, (*API).setAuthMethod},
		{"DELETE", pAuthMth, "deleteAuthMethod", "Remove a sign-in method's settings: back to its default (password on, others off)", nil, nil, none, false, nil, (*API).deleteAuthMethod},

		{"GET", pServers, "listServers", "List MCP servers", nil, Page[Server]{}, ok, false, nil, (*API).listServers},
		{"POST", pServers, "importServer", "Import an MCP server: discover and classify its tools (dry_run: save nothing)", ServerImport{}, ImportResult{}, created, false, nil, (*API).importServer},
		{"GET", pServer, "getServer", "Show an MCP server", nil, Server{}, ok, false, nil, (*API).getServer},
		{"PATCH", pServer, "updateServer", "Rename, describe, move or re-credential an MCP server", ServerUpdate{}, Server{}, ok, false, nil, (*API).updateServer},
		{"DELETE", pServer, "deleteServer", "Delete an MCP server with its tools, grants and consents", nil, nil, none, false, nil, (*API).deleteServer},
		{"POST", pServer + "/sync", "syncServer", "Re-discover an MCP server's tools", nil, SyncResult{}, ok, false, nil, (*API).syncServer},

		{"GET", pTools, "listTools", "List a server's tools", nil, Page[Tool]{}, ok, false, nil, (*API).listTools},
		{"POST", pTools, "createTool", "Add a tool by hand", ToolCreate{}, Tool{}, created, false, nil, (*API).createTool},
		{"GET", pTool, "getTool", "Show a tool", nil, Tool{}, ok, false, nil, (*API).getTool},
		{"PATCH", pTool, "updateTool", "Change a tool's level, enable or disable it, approve a changed definition", ToolUpdate{}, Tool{}, ok, false, nil, (*API).updateTool},
		{"DELETE", pTool, "deleteTool", "Remove a tool", nil, nil, none, false, nil, (*API).deleteTool},
		{"PUT", pTool + "/conditions", "setToolConditions", "Replace the conditions on a tool's arguments (a caveat on its relationship in SpiceDB; not with the Permit backend)", ToolConditions{}, Tool{}, ok, false, nil, (*API).setToolConditions},
		{"DELETE", pTool + "/conditions", "clearToolConditions", "Remove the conditions on a tool's arguments", nil, Tool{}, ok, false, nil, (*API).clearToolConditions},

		{"GET", pHumans, "listHumans", "List humans with their ceilings, agents and last activity", nil, Page[Human]{}, ok, false, nil, (*API).listHumans},
		{"POST", pHumans, "createHuman", "Add (pre-authorize) a human by email", HumanCreate{}, Human{}, created, false, nil, (*API).createHuman},
		{"GET", pHuman, "getHuman", "Show a human (by id or email)", nil, Human{}, ok, false, nil, (*API).getHuman},
		{"PATCH", pHuman, "updateHuman", "Change a human's name or admin role", HumanUpdate{}, Human{}, ok, false, nil, (*API).updateHuman},
		{"POST", pHuman + "/invitation", "inviteHuman", "Issue a new one-time invitation link (7 days) with which the human chooses a password; earlier links stop working", nil, Human{}, created, false, nil, (*API).inviteHuman},
		{"DELETE", pHuman, "deleteHuman", "Delete a human with their ceilings, agents and consents", nil, nil, none, false, nil, (*API).deleteHuman},
		{"PUT", pGrant, "setGrant", "Grant a human access to a server up to a ceiling", GrantSet{}, Human{}, ok, false, nil, (*API).setGrant},
		{"DELETE", pGrant, "revokeGrant", "Revoke a human's access to a server (their agents' consents on it end too)", nil, nil, none, false, nil, (*API).revokeGrant},

		{"GET", pAgents, "listAgents", "List agents (filter: ?human=id-or-email)", nil, Page[Agent]{}, ok, false, []string{"human"}, (*API).listAgents},
		{"GET", pAgent, "getAgent", "Show an agent with its servers and levels", nil, Agent{}, ok, false, nil, (*API).getAgent},
		{"PATCH", pAgent, "updateAgent", "Rename an agent or set its type", AgentUpdate{}, Agent{}, ok, false, nil, (*API).updateAgent},
		{"PUT", pAgentSv, "setAgentLevel", "Set an agent's level on a server (up to the human's ceiling)", AgentLevel{}, Agent{}, ok, false, nil, (*API).setAgentLevel},
		{"DELETE", pAgentSv, "revokeAgentServer", "Revoke an agent's access to a server", nil, nil, none, false, nil, (*API).revokeAgentServer},
		{"POST", pAgent + "/kill", "killAgent", "Kill switch: revoke everything the agent holds and disable it", nil, Agent{}, ok, false, nil, (*API).killAgent},

		{"GET", pHost + "/audit", "listAudit", "List the host's audit log (format=jsonl or Accept: application/x-ndjson streams every entry as JSON Lines)", nil, Page[AuditEntry]{}, ok, false, []string{"human", "agent", "server", "tool", "decision", "flag", "since", "until", "order", "format"}, (*API).listAudit},

		{"POST", pHost + "/check", "checkToolCall", "Decide whether an agent may call a tool now, as the proxy would decide its tools/call (a token with scope check suffices)", CheckRequest{}, Decision{}, ok, false, nil, (*API).checkToolCall},
		{"GET", pHost + "/explain", "explainToolCall", "Why? Whether an agent may call a tool now, the path that decided it (agent, host membership, server, tool, ceiling, grant) in words, the relationships it rests on and the authorization engine's trace of the check", nil, Explanation{}, ok, false, []string{"agent", "server", "tool"}, (*API).explain},
		{"GET", pHost + "/insights", "hostInsights", "Who may do what (human → agent → server → the tools at the agent's level) and over-permission: levels unused for 30 days, ceilings no agent uses, enabled tools no agent can call (humans paged with limit and cursor; usage from at most 200000 audit entries; at most 500 findings)", nil, Insights{}, ok, false, []string{"limit", "cursor"}, (*API).insights},
		{"POST", pHost + "/callable-tools", "callableTools", "List the tools of a server an agent may call now, from one question to the authorization backend (a token with scope check suffices)", CallableToolsRequest{}, CallableTools{}, ok, false, nil, (*API).callableTools},

		{"GET", pHTokens, "listHostTokens", "List a host's API tokens", nil, Page[Token]{}, ok, false, nil, (*API).listHostTokens},
		{"POST", pHTokens, "createHostToken", "Create an API token scoped to the host (shown once); scope check: it may only ask for decisions", TokenCreate{}, TokenCreated{}, created, false, nil, (*API).createHostToken},
		{"DELETE", pHTokens + "/{token}", "deleteHostToken", "Revoke a host API token", nil, nil, none, false, nil, (*API).deleteHostToken},
		{"GET", pGTokens, "listGlobalTokens", "List global API tokens", nil, Page[Token]{}, ok, true, nil, (*API).listGlobalTokens},
		{"POST", pGTokens, "createGlobalToken", "Create a global API token (shown once); scope check: it may only ask for decisions, on every host", TokenCreate{}, TokenCreated{}, created, true, nil, (*API).createGlobalToken},
		{"DELETE", pGTokens + "/{token}", "deleteGlobalToken", "Revoke a global API token", nil, nil, none, true, nil, (*API).deleteGlobalToken},
	}
}
