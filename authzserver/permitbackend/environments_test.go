package permitbackend_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/authzserver/permitbackend"
	"github.com/trustgate/trustgate/internal/testkit/permitstandin"
	"github.com/trustgate/trustgate/schema"
)

const (
	projectKey = "permit_key_project"
	orgKey     = "permit_key_org"
	envB       = "env-b"
	otherProj  = "other-project"
)

// twoEnvironments is a stand-in with two environments of one project (the first one's and
// envB), each with its own PDP, an environment-level key of the first (apiKey), a
// project-level key and an organization-level key; a third environment is in another project.
type twoEnvironments struct {
	standin          *permitstandin.Server
	api, pdpA, pdpB  *httptest.Server
	apiURL, pdpAURL  string
	mappingB         permitbackend.HostEnvironment
	mappingA, beyond permitbackend.HostEnvironment
}

func startTwoEnvironments(t *testing.T) twoEnvironments {
	t.Helper()
	s := permitstandin.New(apiKey)
	s.AddEnvironment(permitstandin.ProjectID, envB)
	s.AddEnvironment(otherProj, "prod")
	s.AddKey(projectKey, permitstandin.ProjectID)
	s.AddKey(orgKey, "")
	e := twoEnvironments{standin: s}
	e.api = httptest.NewServer(s.API())
	t.Cleanup(e.api.Close)
	e.pdpA = httptest.NewServer(s.PDP())
	t.Cleanup(e.pdpA.Close)
	e.pdpB = httptest.NewServer(s.PDPFor(permitstandin.ProjectID, envB))
	t.Cleanup(e.pdpB.Close)
	e.apiURL, e.pdpAURL = e.api.URL, e.pdpA.URL
	e.mappingA = permitbackend.HostEnvironment{Host: "acme", Project: permitstandin.ProjectID, Environment: permitstandin.EnvironmentID}
	e.mappingB = permitbackend.HostEnvironment{Host: "beta", Project: permitstandin.ProjectID, Environment: envB, PDPURL: e.pdpB.URL}
	e.beyond = permitbackend.HostEnvironment{Host: "gamma", Project: otherProj, Environment: "prod", PDPURL: e.pdpB.URL}
	return e
}

func consentFacts(host string) []schema.Relationship {
	rels := []schema.Relationship{
		schema.HostMember(host, "u_1"),
		schema.ServerHost(host, "linear"),
		schema.ToolLevel(host, "linear", "get.issue", schema.Low),
		schema.ToolLevel(host, "linear", "delete_issue", schema.High),
		schema.Ceiling(host, "linear", "a_1", schema.High),
		schema.Grant(host, "linear", "a_1", schema.Low),
	}
	return append(rels, schema.AgentTuples(host, "a_1", "u_1")...)
}

// Two hosts in two environments, each with its PDP: each environment holds only its host's
// facts, and each check goes to the PDP of its host's environment.
func TestPermitHostsInTheirEnvironments(t *testing.T) {
	ctx := context.Background()
	for _, key := range []string{projectKey, orgKey} {
		t.Run(key, func(t *testing.T) {
			e := startTwoEnvironments(t)
			b, err := permitbackend.Open(ctx, permitbackend.Config{APIKey: key, APIURL: e.apiURL, PDPURL: e.pdpAURL,
				Environments: []permitbackend.HostEnvironment{e.mappingA, e.mappingB}})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer b.Close()
			if _, err := b.WriteRelationships(ctx, touch(append(consentFacts("acme"), consentFacts("beta")...)...)); err != nil {
				t.Fatal(err)
			}
			for env, host := range map[string]string{permitstandin.EnvironmentID: "acme", envB: "beta"} {
				tuples := e.standin.TuplesIn(permitstandin.ProjectID, env)
				if len(tuples) != len(consentFacts(host)) {
					t.Errorf("environment %s holds %d tuples, want the %d of %s", env, len(tuples), len(consentFacts(host)), host)
				}
				for _, tp := range tuples {
					if tp.Tenant != host {
						t.Errorf("environment %s holds %+v, of another host than %s", env, tp, host)
					}
				}
				as := e.standin.AssignmentsIn(permitstandin.ProjectID, env)
				want := permitstandin.Assignment{User: host + "~a_1", Role: "low", Tenant: host, ResourceInstance: "mcp_server:" + host + "~linear"}
				if len(as) != 1 || as[0] != want {
					t.Errorf("environment %s role assignments = %+v, want %+v", env, as, want)
				}
			}
			for _, host := range []string{"acme", "beta"} {
				if !check(t, b, host, "linear", "get.issue", "a_1") || check(t, b, host, "linear", "delete_issue", "a_1") {
					t.Errorf("%s: want get.issue allowed and delete_issue denied", host)
				}
				tools, err := b.CallableTools(ctx, host, "linear", "a_1")
				if err != nil || !slices.Equal(tools, []string{"get.issue"}) {
					t.Errorf("%s: CallableTools = %v, %v; want get.issue", host, tools, err)
				}
			}
			wantPDP := map[string]string{"acme": permitstandin.ProjectID + "/" + permitstandin.EnvironmentID, "beta": permitstandin.ProjectID + "/" + envB}
			checks := 0
			for _, r := range e.standin.Requests() {
				if r.Path != "/allowed" {
					continue
				}
				checks++
				for host, env := range wantPDP {
					if strings.Contains(string(r.Body), `"tenant":"`+host+`"`) && r.PDPEnv != env {
						t.Errorf("a check of %s went to the PDP of %s, want %s", host, r.PDPEnv, env)
					}
				}
			}
			if checks != 4 {
				t.Errorf("%d checks reached the PDPs, want 4", checks)
			}
			// Revoking in one environment leaves the other alone.
			if _, err := b.DeleteRelationships(ctx, []schema.Relationship{schema.Grant("beta", "linear", "a_1", schema.Low)}); err != nil {
				t.Fatal(err)
			}
			if check(t, b, "beta", "linear", "get.issue", "a_1") || !check(t, b, "acme", "linear", "get.issue", "a_1") {
				t.Error("revoking beta's consent: want beta denied and acme still allowed")
			}
			// Reading gives back both environments' facts.
			var read []string
			if err := b.ReadRelationships(ctx, schema.TypeServer, func(r schema.Relationship) error { read = append(read, r.String()); return nil }); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, r := range append(consentFacts("acme"), consentFacts("beta")...) {
				if r.Resource.Type == schema.TypeServer && r != schema.Grant("beta", "linear", "a_1", schema.Low) {
					want = append(want, r.String())
				}
			}
			slices.Sort(read)
			slices.Sort(want)
			if !slices.Equal(read, want) {
				t.Errorf("server relationships read = %v, want %v", read, want)
			}
			// With no environment-level key, a host nobody mapped has nowhere to go.
			if _, err := b.WriteRelationships(ctx, touch(schema.ServerHost("zulu", "linear"))); err == nil || !strings.Contains(err.Error(), "--permit-host-environment") {
				t.Errorf("a write for an unmapped host = %v, want an error naming --permit-host-environment", err)
			}
			if _, err := b.CallableTools(ctx, "zulu", "linear", "a_1"); err == nil {
				t.Error("CallableTools for an unmapped host succeeded")
			}
			if err := b.Ready(ctx); err != nil {
				t.Errorf("ready: %v", err)
			}
			e.pdpB.Close()
			if err := b.Ready(ctx); err == nil {
				t.Error("ready with the second environment's PDP down")
			}
		})
	}
}

// An environment-level key keeps the hosts not mapped in its own environment; one mapped to
// that same environment is accepted.
func TestPermitEnvironmentKeyServesUnmappedHosts(t *testing.T) {
	ctx := context.Background()
	e := startTwoEnvironments(t)
	b, err := permitbackend.Open(ctx, permitbackend.Config{APIKey: apiKey, APIURL: e.apiURL, PDPURL: e.pdpAURL,
		Environments: []permitbackend.HostEnvironment{e.mappingA}})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer b.Close()
	if _, err := b.WriteRelationships(ctx, touch(append(consentFacts("acme"), consentFacts("zulu")...)...)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.standin.TuplesIn(permitstandin.ProjectID, permitstandin.EnvironmentID)); n != 2*len(consentFacts("acme")) {
		t.Errorf("the key's environment holds %d tuples, want both hosts' %d", n, 2*len(consentFacts("acme")))
	}
	if !check(t, b, "zulu", "linear", "get.issue", "a_1") {
		t.Error("an unmapped host's consented call is denied")
	}
}

func TestPermitOpenRefusesBadEnvironments(t *testing.T) {
	ctx := context.Background()
	e := startTwoEnvironments(t)
	bogus := e.mappingB
	bogus.Environment = "no-such-env"
	twice := e.mappingA
	twice.Host, twice.PDPURL = "delta", e.pdpB.URL // the first environment, on another PDP
	cases := []struct {
		name string
		cfg  permitbackend.Config
		want []string
	}{
		{"an environment key addressing another environment", permitbackend.Config{APIKey: apiKey, Environments: []permitbackend.HostEnvironment{e.mappingB}},
			[]string{"host beta", "cannot address", "project- or organization-level key"}},
		{"a project key addressing another project", permitbackend.Config{APIKey: projectKey, Environments: []permitbackend.HostEnvironment{e.mappingA, e.beyond}},
			[]string{"host gamma", "cannot address"}},
		{"an environment that does not exist", permitbackend.Config{APIKey: orgKey, Environments: []permitbackend.HostEnvironment{bogus}},
			[]string{"host beta", "no-such-env"}},
		{"a project key and no mapping", permitbackend.Config{APIKey: projectKey},
			[]string{"not an environment-level key", "--permit-host-environment"}},
		{"a host mapped twice", permitbackend.Config{APIKey: orgKey, Environments: []permitbackend.HostEnvironment{e.mappingB, e.mappingB}},
			[]string{"host beta is given twice"}},
		{"one environment on two PDPs", permitbackend.Config{APIKey: orgKey, Environments: []permitbackend.HostEnvironment{e.mappingA, twice}},
			[]string{"served by the PDP"}},
	}
	for _, c := range cases {
		c.cfg.APIURL, c.cfg.PDPURL = e.apiURL, e.pdpAURL
		_, err := permitbackend.Open(ctx, c.cfg)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Open = %v, want an error naming %q", c.name, err, w)
			}
		}
	}
}

func TestParseHostEnvironment(t *testing.T) {
	good := map[string]permitbackend.HostEnvironment{
		"acme=default/production":                        {Host: "acme", Project: "default", Environment: "production"},
		"beta=p_1/e-2@https://pdp.beta.example:7766/":    {Host: "beta", Project: "p_1", Environment: "e-2", PDPURL: "https://pdp.beta.example:7766"},
		"x1=7c1cf4e1-4c2c/7c1cf4e1-0003@http://10.0.0.1": {Host: "x1", Project: "7c1cf4e1-4c2c", Environment: "7c1cf4e1-0003", PDPURL: "http://10.0.0.1"},
	}
	for in, want := range good {
		got, err := permitbackend.ParseHostEnvironment(in)
		if err != nil || got != want {
			t.Errorf("ParseHostEnvironment(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"acme":                                 "no '='",
		"acme=production":                      "no '/'",
		"=p/e":                                 "host key",
		"Acme=p/e":                             "host key",
		"acme=p/":                              "environment",
		"acme=/e":                              "project",
		"acme=p/e/x":                           "environment",
		"acme=p q/e":                           "project",
		"acme=p/e@pdp.example:7766":            "http(s) URL",
		"acme=p/e@":                            "http(s) URL",
		"acme=p/e" + strings.Repeat("x", 3000): "longer than",
	}
	for in, want := range bad {
		_, err := permitbackend.ParseHostEnvironment(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "HOST=PROJECT/ENVIRONMENT") {
			t.Errorf("ParseHostEnvironment(%.40q) = %v, want an error naming %q and the form", in, err, want)
		}
	}
}
