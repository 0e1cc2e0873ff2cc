package accesstoken_test

import (
	"strings"
	"testing"

	"github.com/trustgate/trustgate/accesstoken"
)

func TestUpstreamMCPResource(t *testing.T) {
	const mcp = "https://gw.example.com/h/acme/mcp"
	const up = "https://mcp.example.com/mcp?team=a&x=%2F"
	res := accesstoken.UpstreamMCPResource(mcp, up)
	if want := mcp + "?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp%3Fteam%3Da%26x%3D%252F"; res != want {
		t.Fatalf("UpstreamMCPResource = %s, want %s", res, want)
	}
	if got, ok := accesstoken.IsUpstreamMCPResource(mcp, res); !ok || got != up {
		t.Fatalf("IsUpstreamMCPResource(its own spelling) = %q, %v", got, ok)
	}
	if got, ok := accesstoken.UpstreamMCPOf(strings.TrimPrefix(res, mcp+"?")); !ok || got != up {
		t.Fatalf("UpstreamMCPOf = %q, %v", got, ok)
	}
	// The query a client sends may be spelled otherwise; it reads the same.
	if got, ok := accesstoken.UpstreamMCPOf("upstream_mcp=http://127.0.0.1:9000/mcp"); !ok || got != "http://127.0.0.1:9000/mcp" {
		t.Errorf("UpstreamMCPOf(unescaped) = %q, %v", got, ok)
	}

	// As a resource only the one spelling is accepted, on this MCP URL.
	for _, r := range []string{
		mcp,
		mcp + "?",
		mcp + "?upstream_mcp=https://mcp.example.com/mcp",           // another spelling
		mcp + "?upstream_mcp=https%3a%2f%2fmcp.example.com%2fmcp",   // lower-case escapes
		mcp + "/x?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp", // another path
		"https://gw.example.com/h/other/mcp?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp",
		mcp + "?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp&upstream_mcp=https%3A%2F%2Fevil.example%2Fmcp",
		mcp + "?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp&x=1",
		mcp + "?x=1&upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp",
		mcp + "?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp#f",
	} {
		if got, ok := accesstoken.IsUpstreamMCPResource(mcp, r); ok {
			t.Errorf("IsUpstreamMCPResource(%s) = %q, want refused", r, got)
		}
	}

	// Values that are not a server URL.
	for _, q := range []string{
		"", "upstream_mcp=", "upstream_mcp", "x=1", "upstream_mcp=a&upstream_mcp=a", "upstream_mcp=%zz",
		"upstream_mcp=mcp.example.com", "upstream_mcp=ftp%3A%2F%2Fmcp.example.com", "upstream_mcp=https%3A%2F%2F%2Fmcp",
		"upstream_mcp=https%3A%2F%2Fu%40mcp.example.com", "upstream_mcp=https%3A%2F%2Fmcp.example.com%23f",
		"upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fa%20b", "upstream_mcp=https%3A%2F%2Fmcp.example.com%0A",
		"upstream_mcp=https%3Amcp", "upstream_mcp=https%3A%2F%2F" + strings.Repeat("a", accesstoken.MaxUpstreamMCPLen),
	} {
		if got, ok := accesstoken.UpstreamMCPOf(q); ok {
			t.Errorf("UpstreamMCPOf(%q) = %q, want refused", q, got)
		}
	}
}
