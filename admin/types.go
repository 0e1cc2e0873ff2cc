package admin

import "github.com/trustgate/trustgate/sdk"

// The JSON documents of the admin API are the Go SDK's (package sdk): the API serves the very
// types its clients read, so the two cannot drift apart. The names below keep the handlers
// readable.
type (
	Page[T any]           = sdk.Page[T]
	Problem               = sdk.Problem
	HostSettings          = sdk.HostSettings
	HostSettingsPatch     = sdk.HostSettingsPatch
	DLPSettings           = sdk.DLPSettings
	DLPPattern            = sdk.DLPPattern
	RateLimit             = sdk.RateLimit
	EmergencyStop         = sdk.EmergencyStop
	EmergencyStopRequest  = sdk.EmergencyStopRequest
	WebhookStatus         = sdk.WebhookStatus
	AnomalySettings       = sdk.AnomalySettings
	UsualHours            = sdk.UsualHours
	WebhookSet            = sdk.WebhookSet
	WebhookTestResult     = sdk.WebhookTestResult
	Host                  = sdk.Host
	ClientConfig          = sdk.ClientConfig
	HostCreate            = sdk.HostCreate
	HostUpdate            = sdk.HostUpdate
	CredentialHeader      = sdk.CredentialHeader
	OAuthClient           = sdk.OAuthClient
	Server                = sdk.Server
	ServerImport          = sdk.ServerImport
	ImportResult          = sdk.ImportResult
	ServerUpdate          = sdk.ServerUpdate
	Timeouts              = sdk.Timeouts
	SyncResult            = sdk.SyncResult
	Tool                  = sdk.Tool
	ToolCreate            = sdk.ToolCreate
	ToolUpdate            = sdk.ToolUpdate
	ToolConditions        = sdk.ToolConditions
	Human                 = sdk.Human
	Invitation            = sdk.Invitation
	HumanCreate           = sdk.HumanCreate
	HumanUpdate           = sdk.HumanUpdate
	Grant                 = sdk.Grant
	GrantSet              = sdk.GrantSet
	AgentSummary          = sdk.AgentSummary
	Agent                 = sdk.Agent
	AgentServer           = sdk.AgentServer
	AgentUpdate           = sdk.AgentUpdate
	AgentLevel            = sdk.AgentLevel
	Token                 = sdk.Token
	TokenCreate           = sdk.TokenCreate
	TokenCreated          = sdk.TokenCreated
	AuditEntry            = sdk.AuditEntry
	CheckRequest          = sdk.CheckRequest
	Decision              = sdk.Decision
	CallableToolsRequest  = sdk.CallableToolsRequest
	CallableTools         = sdk.CallableTools
	AuthSettings          = sdk.AuthSettings
	AuthMethod            = sdk.AuthMethod
	AuthMethodSet         = sdk.AuthMethodSet
	Explanation           = sdk.Explanation
	ExplanationStep       = sdk.ExplanationStep
	ExplainedRelationship = sdk.ExplainedRelationship
	TraceStep             = sdk.TraceStep
	Insights              = sdk.Insights
	InsightCounts         = sdk.InsightCounts
	InsightHuman          = sdk.InsightHuman
	InsightAgent          = sdk.InsightAgent
	InsightAgentServer    = sdk.InsightAgentServer
	InsightServer         = sdk.InsightServer
	InsightTool           = sdk.InsightTool
	InsightFinding        = sdk.InsightFinding
	ApprovalRule          = sdk.ApprovalRule
	HeldCall              = sdk.HeldCall
	StandingApproval      = sdk.StandingApproval
	SetAsideChange        = sdk.SetAsideChange
	SetAsideRetry         = sdk.SetAsideRetry
)
