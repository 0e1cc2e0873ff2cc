package authzserver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

func TestMalformedSchemaNamesItsPosition(t *testing.T) {
	bad := "definition user {}\n\ndefinition agent {\n    relation owner: user\n    permission broken = owner +\n}\n"
	err := authzserver.ValidateSchema(bad)
	if !errors.Is(err, authzserver.ErrInvalidSchema) {
		t.Fatalf("malformed schema: %v", err)
	}
	if !strings.Contains(err.Error(), "line 6") && !strings.Contains(err.Error(), "line 5") {
		t.Errorf("error does not name the line: %v", err)
	}
}

func TestSchemaMissingWhatTrustgateWritesIsRefused(t *testing.T) {
	trimmed := strings.Replace(schema.Text, "relation granted_high: agent", "", 1)
	trimmed = strings.Replace(trimmed, "granted_medium + granted_high", "granted_medium", -1)
	trimmed = strings.Replace(trimmed, "granted_low + granted_medium + granted_high", "granted_low + granted_medium", -1)
	trimmed = strings.Replace(trimmed, "permission use_high = granted_high & ceiling_high & host->agent", "permission use_high = ceiling_high & host->agent", -1)
	err := authzserver.ValidateSchema(trimmed)
	if !errors.Is(err, authzserver.ErrInvalidSchema) || !strings.Contains(err.Error(), "mcp_server#granted_high") {
		t.Fatalf("schema without granted_high: %v", err)
	}
	// Extra definitions are welcome.
	if err := authzserver.ValidateSchema(schema.Text + "\ndefinition document {\n    relation viewer: user\n}\n"); err != nil {
		t.Fatalf("schema with an extra definition: %v", err)
	}
}
