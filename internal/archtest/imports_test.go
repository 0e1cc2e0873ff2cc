package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/trustgate/trustgate"

// pkg is what go list says of one package of the module.
type pkg struct {
	ImportPath string
	Imports    []string // direct imports of its non-test files
	Deps       []string // everything it imports, directly or not (non-test files)
}

// listPackages runs go list -json on patterns.
func listPackages(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(goBin, append([]string{"list", "-json=ImportPath,Imports,Deps"}, patterns...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(patterns, " "), err, stderr.String())
	}
	var out []pkg
	dec := json.NewDecoder(&stdout)
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Fatalf("go list %s listed no package", strings.Join(patterns, " "))
	}
	return out
}

// within reports whether path is dir or a package below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// The proxy (the hot path) does not depend on the OAuth server, directly or not: what it
// needs of tokens is in accesstoken.
func TestProxyDoesNotImportTheOAuthServer(t *testing.T) {
	for _, p := range listPackages(t, module+"/proxy") {
		for _, d := range p.Deps {
			if within(d, module+"/oauthserver") {
				t.Errorf("%s depends on %s", p.ImportPath, d)
			}
		}
	}
}

// The packages under oauthserver/ are its own: outside it, only the package oauthserver (its
// constructor) is imported, with one exception: the dashboard uses consentui's password
// hashing (the first operator's, at setup) and CSRF tokens, so that there is one of each (it
// signs people in on the hosts' own sign-in pages). Tests may still use its helpers.
func TestOAuthServerInternalsStayInside(t *testing.T) {
	const root = module + "/oauthserver"
	shared := map[[2]string]bool{{module + "/dashboard", root + "/consentui"}: true}
	for _, p := range listPackages(t, module+"/...") {
		if within(p.ImportPath, root) {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, root+"/") && !shared[[2]string{p.ImportPath, imp}] {
				t.Errorf("%s imports %s; only %s may be imported from outside it", p.ImportPath, imp, root)
			}
		}
	}
}

// The rules above are not vacuous: the graph read has the packages they speak of.
func TestImportGraphIsRead(t *testing.T) {
	var paths []string
	for _, p := range listPackages(t, module+"/...") {
		paths = append(paths, p.ImportPath)
	}
	for _, want := range []string{module + "/proxy", module + "/oauthserver", module + "/oauthserver/consentui", module + "/gateway"} {
		if !slices.Contains(paths, want) {
			t.Errorf("go list did not list %s", want)
		}
	}
}

// The conformance suites (store/storetest, authzserver/backendtest) are for tests: no package
// of the binary depends on them.
func TestConformanceSuitesOnlyInTests(t *testing.T) {
	suites := []string{module + "/store/storetest", module + "/authzserver/backendtest"}
	for _, p := range listPackages(t, module+"/...") {
		for _, suite := range suites {
			if p.ImportPath != suite && slices.Contains(p.Deps, suite) {
				t.Errorf("%s depends on %s, which only tests may import", p.ImportPath, suite)
			}
		}
	}
}

// The Go SDK (sdk/, a module of its own) is what other services import: it depends on the
// standard library and go-jose only, never on the gateway's packages, so that importing it does
// not pull SpiceDB, the store or the gateway in.
func TestSDKDependsOnTheStandardLibraryAndGoJOSEOnly(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...")
	cmd.Dir = "../../sdk"
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list in sdk: %v\n%s", err, stderr.String())
	}
	for _, p := range strings.Fields(stdout.String()) {
		if p != module+"/sdk" && !within(p, "github.com/go-jose/go-jose/v4") {
			t.Errorf("the SDK depends on %s", p)
		}
	}
}
