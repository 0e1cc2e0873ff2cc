package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Most of the packaging (docker-compose.yaml, deploy/kubernetes, deploy/systemd) cannot be run
// here (no Docker, no Kubernetes, no systemd as PID 1; the image itself is built and run by
// TestContainerImage). These tests hold it to the binary instead: every
// file parses, every flag and environment variable it gives trustgate exists, the probes and
// health check ask endpoints the gateway serves, and every metric the dashboard and the alert
// rules use is one a running gateway exports.

// repoFile reads a file of the repository (the tests run in tests/).
func repoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(repoFile(t, path)))
	dec.KnownFields(true)
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s does not parse: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s has no document", path)
	}
	return docs
}

// serveHelp is `trustgate serve --help`.
func serveHelp(t *testing.T) string {
	t.Helper()
	out, err := run(t, 10*time.Second, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	flagName = regexp.MustCompile(`^--([a-z0-9-]+)`)
	envName  = regexp.MustCompile(`\bTRUSTGATE_[A-Z0-9_]+\b`)
)

// wantFlags fails for each --flag in args that `help` does not list.
func wantFlags(t *testing.T, where, help string, args []string) {
	t.Helper()
	for _, a := range args {
		if m := flagName.FindStringSubmatch(a); m != nil && !strings.Contains(help, "--"+m[1]+" ") {
			t.Errorf("%s gives --%s, which trustgate does not have", where, m[1])
		}
	}
}

// wantEnvs fails for each TRUSTGATE_ variable in text that `help` does not name.
func wantEnvs(t *testing.T, where, help, text string) {
	t.Helper()
	for _, e := range envName.FindAllString(text, -1) {
		if !strings.Contains(help, e) {
			t.Errorf("%s sets %s, which trustgate does not read", where, e)
		}
	}
}

func path(doc any, keys ...any) any {
	for _, k := range keys {
		switch v := doc.(type) {
		case map[string]any:
			doc = v[k.(string)]
		case []any:
			i := k.(int)
			if i >= len(v) {
				return nil
			}
			doc = v[i]
		default:
			return nil
		}
	}
	return doc
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	help := serveHelp(t)
	kinds := map[string][]map[string]any{}
	files, err := filepath.Glob("../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f, "../")
		for _, d := range yamlDocs(t, rel) {
			kind, _ := d["kind"].(string)
			if kind == "" || d["apiVersion"] == nil || path(d, "metadata", "name") == nil {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name: %v", rel, d)
			}
			kinds[kind] = append(kinds[kind], d)
		}
	}
	byName := func(kind, name string) map[string]any {
		for _, d := range kinds[kind] {
			if path(d, "metadata", "name") == name {
				return d
			}
		}
		t.Fatalf("no %s %s", kind, name)
		return nil
	}
	tg := byName("Deployment", "trustgate")
	c := path(tg, "spec", "template", "spec", "containers", 0)
	if path(c, "readinessProbe", "httpGet", "path") != "/readyz" || path(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("trustgate's probes: readiness %v, liveness %v", path(c, "readinessProbe"), path(c, "livenessProbe"))
	}
	args := strs(path(c, "args"))
	if args[0] != "serve" {
		t.Errorf("trustgate container args %v do not run serve", args)
	}
	wantFlags(t, "deploy/kubernetes trustgate args", help, args[1:])
	var envs []string
	for _, e := range path(c, "env").([]any) {
		envs = append(envs, path(e, "name").(string))
		if ref := path(e, "valueFrom", "secretKeyRef"); ref != nil {
			key := path(ref, "key").(string)
			if _, ok := path(byName("Secret", path(ref, "name").(string)), "stringData").(map[string]any)[key]; !ok {
				t.Errorf("env %v reads key %s the Secret does not have", path(e, "name"), key)
			}
		}
	}
	wantEnvs(t, "deploy/kubernetes trustgate env", help, strings.Join(envs, " "))
	if !slices.Contains(envs, "TRUSTGATE_MASTER_KEY") {
		t.Error("the trustgate Deployment does not take the master key from the Secret")
	}
	byName("Service", "trustgate")
	byName("PodDisruptionBudget", "trustgate")
	sp := byName("Deployment", "spicedb")
	if img := path(sp, "spec", "template", "spec", "containers", 0, "image").(string); !strings.HasSuffix(img, ":v1.56.1") {
		t.Errorf("SpiceDB image %s is not the version trustgate embeds (v1.56.1)", img)
	}
	byName("Service", "spicedb")
}

func TestComposeAndDockerfile(t *testing.T) {
	help := serveHelp(t)
	compose := yamlDocs(t, "docker-compose.yaml")[0]
	svc := path(compose, "services", "trustgate").(map[string]any)
	var env []string
	for k := range svc["environment"].(map[string]any) {
		env = append(env, k)
	}
	wantEnvs(t, "docker-compose.yaml", help, strings.Join(env, " "))
	if path(compose, "services", "postgres") == nil {
		t.Error("docker-compose.yaml has no PostgreSQL")
	}

	df := string(repoFile(t, "Dockerfile"))
	var froms []string
	var healthcheck, user string
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(df, "\\\n", " ")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "FROM "):
			froms = append(froms, line)
		case strings.HasPrefix(line, "HEALTHCHECK "):
			healthcheck = line
		case strings.HasPrefix(line, "USER "):
			user = line
		}
	}
	if len(froms) < 2 || !(strings.Contains(froms[len(froms)-1], "distroless/static") || strings.Contains(froms[len(froms)-1], "scratch")) {
		t.Errorf("the Dockerfile is not multi-stage onto distroless/static or scratch: %v", froms)
	}
	if user == "" || strings.Contains(user, " 0") || strings.Contains(user, "root:") {
		t.Errorf("the final image does not run as a non-root user: %q", user)
	}
	if !strings.Contains(df, `VOLUME ["/data"]`) || !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("the Dockerfile lacks the /data volume or the static build")
	}
	// HEALTHCHECK CMD ["/usr/local/bin/trustgate", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]
	_, cmdJSON, ok := strings.Cut(healthcheck, "CMD ")
	var hc []string
	if !ok || json.Unmarshal([]byte(cmdJSON), &hc) != nil || len(hc) < 2 || hc[1] != "healthcheck" {
		t.Fatalf("HEALTHCHECK does not run the binary's healthcheck: %q", healthcheck)
	}
	hcHelp, err := run(t, 10*time.Second, "healthcheck", "--help")
	if err != nil {
		t.Fatal(err)
	}
	wantFlags(t, "Dockerfile HEALTHCHECK", hcHelp, hc[2:])
	if !strings.HasSuffix(hc[len(hc)-1], "/readyz") {
		t.Errorf("HEALTHCHECK asks %s, not /readyz", hc[len(hc)-1])
	}
}

func TestSystemdUnit(t *testing.T) {
	help := serveHelp(t)
	unit := string(repoFile(t, "deploy/systemd/trustgate.service"))
	var exec string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			exec = v
		}
	}
	fields := strings.Fields(exec)
	if len(fields) < 2 || fields[1] != "serve" {
		t.Fatalf("ExecStart %q does not run trustgate serve", exec)
	}
	wantFlags(t, "the systemd unit's ExecStart", help, fields[2:])
	for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "StateDirectory=trustgate", "Restart=always"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the systemd unit lacks %s", want)
		}
	}
}

var metricName = regexp.MustCompile(`\btrustgate_[a-z_]+`)

// TestMonitoringUsesExportedMetrics: a real gateway decides allowed and denied calls; every
// trustgate_ metric in the Grafana dashboard and the Prometheus rules is in its /metrics.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	var exprs []string
	for _, g := range path(yamlDocs(t, "deploy/monitoring/alerts.yaml")[0], "groups").([]any) {
		for _, r := range path(g, "rules").([]any) {
			if path(r, "alert") == nil || path(r, "expr") == nil {
				t.Errorf("rule without alert or expr: %v", r)
				continue
			}
			exprs = append(exprs, path(r, "expr").(string))
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(repoFile(t, "deploy/monitoring/grafana-dashboard.json"), &dash); err != nil {
		t.Fatalf("the dashboard does not parse: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}

	s := setupTracker(t)
	token := connectAgent(t, s.p.url, s.p.url+"/h/acme", s.resource, s.email, s.password, "medium")
	session := connectSDK(t.Context(), t, s.resource, token)
	if _, ok := callText(t, session, "create_issue", map[string]any{"title": "x"}); !ok {
		t.Fatal("allowed call failed")
	}
	if _, ok := callText(t, session, "delete_issue", map[string]any{"id": "1"}); ok {
		t.Fatal("denied call went through")
	}
	_, scrape := getJSON(t, s.metrics)
	exported := map[string]bool{}
	for _, line := range strings.Split(scrape, "\n") {
		if name := metricName.FindString(line); name != "" && strings.HasPrefix(line, name) {
			exported[name] = true
		}
	}
	used := 0
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			used++
			if !exported[name] {
				t.Errorf("the monitoring uses %s, which the gateway does not export (exports %v)", name, keys(exported))
			}
		}
	}
	if used < 10 {
		t.Fatalf("only %d metric uses found in the dashboard and the rules", used)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestHealthcheckCommand: the container's health check exits 0 against a ready gateway and
// non-zero, saying why, when nothing answers.
func TestHealthcheckCommand(t *testing.T) {
	p := start(t, "--data-dir", t.TempDir(), "--metrics-listen", "")
	if out, err := run(t, 30*time.Second, "healthcheck", "--url", p.url+"/readyz"); err != nil || !strings.Contains(out, "ready") {
		t.Fatalf("healthcheck of a ready gateway: %v\n%s", err, out)
	}
	out, err := run(t, 30*time.Second, "healthcheck", "--url", "http://"+freeAddr(t)+"/readyz", "--timeout", "2s")
	if err == nil || !strings.Contains(out, "not healthy") {
		t.Fatalf("healthcheck of nothing: %v\n%s", err, out)
	}
}
