package tests

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

// previousVersionFile names the commit the mixed-version test runs beside this one: the
// release before this one. Move it forward when a release is cut (or when a migration that
// the previous release must survive is added), so that N-1 and N are what is tested.
const previousVersionFile = "testdata/previous-version"

// previousVersion returns the commit named in previousVersionFile and the top directory of
// this clone, whose git history holds it. Without git or without that commit in the history
// (a shallow clone) the test is skipped, or fails under CI=true, which must run it.
func previousVersion(t *testing.T) (commit, top string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but the previous version is not in this clone: "+format, args...)
		}
		t.Skipf("the previous version is not in this clone: "+format, args...)
	}
	raw, err := os.ReadFile(previousVersionFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			commit = line
			break
		}
	}
	if len(commit) != 40 {
		t.Fatalf("%s names no commit (40 hex digits): %q", previousVersionFile, commit)
	}
	if _, err := exec.LookPath("git"); err != nil {
		missing("no git on this machine")
	}
	if out, err := exec.Command("git", "cat-file", "-e", commit+"^{commit}").CombinedOutput(); err != nil {
		missing("commit %s is not in this clone's history (a shallow clone?): %v %s", commit, err, out)
	}
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		missing("not in a git clone: %v", err)
	}
	return commit, strings.TrimSpace(string(out))
}

// buildPreviousVersion builds trustgate at the commit named in previousVersionFile, from this
// clone's git history (git archive into a temporary directory: the clone is left as it was).
func buildPreviousVersion(t *testing.T) (string, string) {
	t.Helper()
	commit, top := previousVersion(t)
	src := t.TempDir()
	// From the top of the clone: in a sub-directory git archive takes only that directory.
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = top
	var tarball bytes.Buffer
	archive.Stdout = &tarball
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", commit, err)
	}
	untar := exec.Command("tar", "-x", "-C", src)
	untar.Stdin = &tarball
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v %s", commit, err, out)
	}
	bin := filepath.Join(t.TempDir(), "trustgate-previous")
	// -trimpath keeps the temporary directory out of the build: the next run's build of the
	// same commit comes from the build cache.
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/trustgate")
	build.Dir = src
	began := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build trustgate at %s: %v\n%s", commit, err, out)
	}
	t.Logf("built the previous version %s in %s", commit[:12], time.Since(began).Round(time.Second))
	return bin, commit[:12]
}

// TestMixedVersionsShareOnePostgres is a rolling upgrade caught in the middle: a replica of the
// previous version (testdata/previous-version) serves a store on PostgreSQL, a replica of this
// version starts on the same database (and applies its migrations under the running one), and
// both serve at once behind one public URL. An agent that consented through the old replica
// calls tools through the new one and the other way round, with the same token; a grant
// revoked through one is enforced at the next call through the other; the audit chain, written
// by both, verifies.
func TestMixedVersionsShareOnePostgres(t *testing.T) {
	db := services.Postgres(t)
	previous, commit := buildPreviousVersion(t)

	// One public URL in front of both; target says which one the next request goes to.
	var target atomic.Pointer[url.URL]
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := target.Load()
		(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(to)
			pr.Out.Host = pr.In.Host
		}}).ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	args := []string{"--database", db, "--master-key", strings.Repeat("6b", 32), "--public-url", lb.URL}

	// The previous version first: it creates the store at its schema version.
	oldAddr := freeAddr(t)
	oldProc := &process{t: t, url: "http://" + oldAddr, exited: make(chan struct{})}
	oldProc.cmd = exec.Command(previous, append([]string{"serve", "--listen", oldAddr}, args...)...)
	oldProc.cmd.Env = cleanEnv()
	oldProc.cmd.Stdout, oldProc.cmd.Stderr = syncWriter{oldProc}, syncWriter{oldProc}
	if err := oldProc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { oldProc.err = oldProc.cmd.Wait(); close(oldProc.exited) }()
	t.Cleanup(func() {
		oldProc.stop()
		if t.Failed() {
			t.Logf("previous version (%s) output:\n%s", commit, oldProc.output())
		}
	})
	waitReady(t, oldProc)
	via := func(p *process) {
		u, _ := url.Parse(p.url)
		target.Store(u)
	}
	via(oldProc)

	tokenOut, err := exec.Command(previous, "admin", "token", "create", "--global", "--name", "mixed", "--database", db).CombinedOutput()
	if err != nil {
		t.Fatalf("bootstrap token with the previous version: %v\n%s", err, tokenOut)
	}
	token := strings.TrimSpace(strings.SplitN(string(tokenOut), "\n", 2)[0])
	up := mcpserver.Start(t, "")
	cli(t, oldProc, token, "host", "create", "acme", "--exact")
	cli(t, oldProc, token, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	addClaimed(t, oldProc, token, "acme", "alice@acme.test", "correct horse battery staple")
	cli(t, oldProc, token, "human", "grant", "alice@acme.test", "tracker", "--level", "high", "--host", "acme")

	// This version joins: it migrates the store while the previous one serves.
	newProc := start(t, args...)

	issuer := lb.URL + "/h/acme"
	resource := issuer + "/mcp/tracker"
	via(oldProc)
	throughOld := connectAgent(t, lb.URL, issuer, resource, "alice@acme.test", "correct horse battery staple", "medium")
	via(newProc)
	throughNew := connectAgent(t, lb.URL, issuer, resource, "alice@acme.test", "correct horse battery staple", "medium")

	client := &http.Client{Timeout: 30 * time.Second}
	session := func(p *process, tok string) *loadSession {
		t.Helper()
		s := &loadSession{endpoint: p.url + "/h/acme/mcp/tracker", token: tok, client: client}
		if err := s.open(); err != nil {
			t.Fatalf("session on %s: %v", p.url, err)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		p     *process
		token string
	}{
		{"consented through the previous version, calling this one", newProc, throughOld},
		{"consented through this version, calling the previous one", oldProc, throughNew},
		{"consented through the previous version, calling it", oldProc, throughOld},
	} {
		s := session(tc.p, tc.token)
		if o, detail := s.call("list_issues"); o != served {
			t.Errorf("%s: list_issues (medium consent) %v %s, want served", tc.name, o, detail)
		}
		if o, detail := s.call("delete_issue"); o != denied {
			t.Errorf("%s: delete_issue (needs high) %v %s, want denied", tc.name, o, detail)
		}
	}

	// A change through one is enforced at the next call through the other.
	onNew, onOld := session(newProc, throughOld), session(oldProc, throughNew)
	cli(t, oldProc, token, "human", "grant", "alice@acme.test", "tracker", "--level", "low", "--host", "acme")
	if o, detail := onNew.call("list_issues"); o != served {
		t.Errorf("after the ceiling was lowered to low through the previous version, list_issues through this one: %v %s", o, detail)
	}
	cli(t, newProc, token, "human", "revoke", "alice@acme.test", "tracker", "--host", "acme")
	if o, detail := onOld.call("list_issues"); o == served {
		t.Error("a grant revoked through this version: the next call through the previous one was served")
	} else {
		t.Logf("after the revocation through this version, the previous one answered: %v %s", o, detail)
	}
	if o, _ := onNew.call("list_issues"); o == served {
		t.Error("a grant revoked through this version: a call through it was served")
	}

	oldProc.stopCleanly(t)
	newProc.stopCleanly(t)
	out, err := run(t, 60*time.Second, "audit", "verify", "--database", db)
	if err != nil || !strings.Contains(out, "acme: ") || !strings.Contains(out, "chain intact") {
		t.Fatalf("audit verify of the log both versions wrote: %v\n%s", err, out)
	}
	// The chain holds entries of both formats: the previous version's (1, no client address)
	// and this one's with a client address (2), so the verify above covered both.
	formats := auditFormatVersions(t, db)
	if formats[1] == 0 || formats[2] == 0 {
		t.Errorf("audit entries by format version %v: want entries of versions 1 and 2 in the chain", formats)
	}
	// README: verify with the new binary — the previous one refuses the migrated store.
	if out, err := exec.Command(previous, "audit", "verify", "--database", db).CombinedOutput(); err == nil {
		t.Errorf("the previous version's audit verify ran on the store this version migrated (README says it refuses it):\n%s", out)
	} else if !strings.Contains(string(out), "newer") {
		t.Errorf("the previous version's audit verify on the migrated store: %v, want a refusal of the newer schema:\n%s", err, out)
	}
	t.Logf("previous version %s and this one served one PostgreSQL store together", commit)
}

// auditFormatVersions counts the audit entries of each canonical format version in the
// PostgreSQL store at url.
func auditFormatVersions(t *testing.T, url string) map[int]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT format_version, count(*) FROM audit_entries GROUP BY format_version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[int]int{}
	for rows.Next() {
		var version, n int
		if err := rows.Scan(&version, &n); err != nil {
			t.Fatal(err)
		}
		counts[version] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}
