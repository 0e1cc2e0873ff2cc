// Package storetest is the conformance suite of store engines: every engine runs the same
// tests of the store.Store contract (Run), so that the engines agree on what the rest of
// trustgate relies on. It is imported only by tests.
package storetest

import (
	"context"
	"errors"
	"sort"
	"testing"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// Opener opens a fresh, empty store; every call is a new database. It closes the store when t
// ends (t.Cleanup) and skips t when its engine is not available.
type Opener func(t *testing.T) store.Store

// Run runs every test of the suite against stores open returns, each in its own subtest and
// its own fresh store.
func Run(t *testing.T, open Opener) {
	t.Helper()
	for _, tc := range []struct {
		name string
		test func(t *testing.T, open Opener)
	}{
		{"HostSettingsRoundTrip", testHostSettingsRoundTrip},
		{"UpdateHost", testUpdateHost},
		{"EnsureHost", testEnsureHost},
		{"UserAdminAndActivity", testUserAdminAndActivity},
		{"HostAdminTuple", testHostAdminTuple},
		{"ServerCredentials", testServerCredentials},
		{"ToolAdminFields", testToolAdminFields},
		{"ToolConditions", testToolConditions},
		{"AgentAdminFields", testAgentAdminFields},
		{"KillAgent", testKillAgent},
		{"APITokens", testAPITokens},
		{"KillAgentRacesConsents", testKillAgentRacesConsents},
		{"ServerNetwork", testServerNetwork},
		{"DLPSettings", testDLPSettings},
		{"AuditAppendListScan", testAuditAppendListScan},
		{"AuditKeptWhenHostDeleted", testAuditKeptWhenHostDeleted},
		{"AuthorizeRequests", testAuthorizeRequests},
		{"UseOnce", testUseOnce},
		{"SSOStates", testSSOStates},
		{"FlagToolOnce", testFlagToolOnce},
		{"AddToolOnce", testAddToolOnce},
		{"OAuthRevocations", testOAuthRevocations},
		{"DeletingPrincipalsRevokesTheirGrants", testDeletingPrincipalsRevokesTheirGrants},
		{"OAuthClients", testOAuthClients},
		{"OAuthRequests", testOAuthRequests},
		{"OAuthGrantRevocation", testOAuthGrantRevocation},
		{"RevokeOAuthBySubjectAndAgent", testRevokeOAuthBySubjectAndAgent},
		{"DeleteOAuthClientRevokesItsTokens", testDeleteOAuthClientRevokesItsTokens},
		{"PruneOAuthRequests", testPruneOAuthRequests},
		{"DeactivateOAuthRequestOnce", testDeactivateOAuthRequestOnce},
		{"OAuthRevocationRacesTokenCreation", testOAuthRevocationRacesTokenCreation},
		{"DeleteHostWithOAuth", testDeleteHostWithOAuth},
		{"DeletingHumanOrKillingAgentRevokesTokens", testDeletingHumanOrKillingAgentRevokesTokens},
		{"OutboxAgreesWithRelationships", testOutboxAgreesWithRelationships},
		{"OutboxEntries", testOutboxEntries},
		{"Drain", testDrain},
		{"PendingHosts", testPendingHosts},
		{"Quarantine", testQuarantine},
		{"DeleteHostReleasesQuarantine", testDeleteHostReleasesQuarantine},
		{"DrainAllowsReadsMeanwhile", testDrainAllowsReadsMeanwhile},
		{"ConcurrentDrains", testConcurrentDrains},
		{"ConcurrentWriters", testConcurrentWriters},
		{"UserPasswords", testUserPasswords},
		{"Dashboard", testDashboard},
		{"AuthMethods", testAuthMethods},
		{"BrowserSessions", testBrowserSessions},
		{"EmailCodes", testEmailCodes},
		{"Passkeys", testPasskeys},
		{"Approvals", testApprovals},
		{"SigningKeysCreateAndList", testSigningKeysCreateAndList},
		{"SigningKeysValidation", testSigningKeysValidation},
		{"SigningKeysRetireAndPrune", testSigningKeysRetireAndPrune},
		{"SigningKeysConcurrentRotations", testSigningKeysConcurrentRotations},
		{"Hosts", testHosts},
		{"Users", testUsers},
		{"Servers", testServers},
		{"Tools", testTools},
		{"Grants", testGrants},
		{"Agents", testAgents},
		{"Consents", testConsents},
		{"HostIsolation", testHostIsolation},
		{"Cascades", testCascades},
		{"ReadWriteTxRollsBackOnError", testReadWriteTxRollsBackOnError},
		{"ReadWriteTxCommits", testReadWriteTxCommits},
		{"UpstreamTokens", testUpstreamTokens},
		{"UpstreamClientsAndStates", testUpstreamClientsAndStates},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

// withStore runs fn against a fresh store.
func withStore(t *testing.T, open Opener, fn func(t *testing.T, s store.Store)) {
	t.Helper()
	fn(t, open(t))
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// relationshipSet reads Relationships into a set of zed strings.
func relationshipSet(t *testing.T, s store.Store) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	err := s.Relationships(context.Background(), func(r schema.Relationship) error {
		k := r.String()
		if set[k] {
			t.Errorf("Relationships yields %s twice", k)
		}
		set[k] = true
		return nil
	})
	noErr(t, "Relationships", err)
	return set
}

// drainAll drains the whole outbox and returns its changes in order.
func drainAll(t *testing.T, s store.Store) []store.RelationshipChange {
	t.Helper()
	var got []store.RelationshipChange
	_, err := s.DrainRelationshipChanges(context.Background(), 0, func(_ context.Context, cs []store.RelationshipChange) error {
		got = append(got[:0], cs...)
		return nil
	})
	noErr(t, "drain", err)
	return got
}

// changeStrings renders changes as "op rel" lines.
func changeStrings(cs []store.RelationshipChange) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c.Op) + " " + c.Relationship.String()
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
