package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerfileFinal is the configuration the Dockerfile's final stage declares.
type dockerfileFinal struct {
	User, Entrypoint, Cmd, Volume, Healthcheck string
	Env, Expose                                []string
}

func parseDockerfileFinal(t *testing.T) dockerfileFinal {
	t.Helper()
	var d dockerfileFinal
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(string(repoFile(t, "Dockerfile")), "\\\n", " ")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch word {
		case "FROM":
			d = dockerfileFinal{} // only the last stage counts
		case "USER":
			d.User = rest
		case "ENTRYPOINT":
			d.Entrypoint = rest
		case "CMD":
			d.Cmd = rest
		case "VOLUME":
			d.Volume = rest
		case "HEALTHCHECK":
			d.Healthcheck = rest
		case "ENV":
			d.Env = append(d.Env, strings.Fields(rest)...)
		case "EXPOSE":
			d.Expose = append(d.Expose, strings.Fields(rest)...)
		}
	}
	return d
}

// imageConfig is the part of `buildah inspect --type image` this test reads.
type imageConfig struct {
	Docker struct {
		Config struct {
			User         string
			Env          []string
			Entrypoint   []string
			Cmd          []string
			Volumes      map[string]struct{}
			ExposedPorts map[string]struct{}
			Healthcheck  *struct {
				Test        []string
				Interval    time.Duration
				Timeout     time.Duration
				StartPeriod time.Duration
				Retries     int
			}
		} `json:"config"`
	}
}

func buildah(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("buildah", args...)
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if e, ok := err.(*exec.ExitError); ok {
			stderr = e.Stderr
		}
		t.Fatalf("buildah %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return strings.TrimSpace(string(out))
}

// TestContainerImage builds the image with `make image`'s script (deploy/image/build.sh:
// buildah, from scratch where the Dockerfile's base images cannot be pulled), checks its
// configuration is the Dockerfile's (non-root user, entrypoint, health check on /readyz, the
// /data volume, the ports) and that it holds the CA certificates, then runs it (buildah run,
// chroot isolation, the host's network) as the image's user: /readyz answers 200, the image's
// health check command passes, and the server's process runs as the image's user.
// Run where buildah is installed and the test runs as root; CI installs buildah.
func TestContainerImage(t *testing.T) {
	if _, err := exec.LookPath("buildah"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but buildah is not installed (.ci/run installs it)")
		}
		t.Skip("buildah is not installed (Debian: apt-get install buildah)")
	}
	if os.Getuid() != 0 {
		t.Skip("building and running the image with buildah needs root here")
	}
	name := fmt.Sprintf("localhost/trustgate-test:%d", time.Now().UnixNano())
	build := exec.Command("../deploy/image/build.sh", name)
	build.Env = append(cleanEnv(), "VERSION=test")
	began := time.Now()
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/image/build.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("buildah", "rmi", "--force", name).Run() })
	t.Logf("built the image in %s:\n%s", time.Since(began).Round(time.Second), out)

	var inspected imageConfig
	if err := json.Unmarshal([]byte(buildah(t, "inspect", "--type", "image", name)), &inspected); err != nil {
		t.Fatal(err)
	}
	cfg := inspected.Docker.Config
	want := parseDockerfileFinal(t)
	if cfg.User == "" || cfg.User == "0" || strings.HasPrefix(cfg.User, "0:") || strings.HasPrefix(cfg.User, "root") || cfg.User != want.User {
		t.Errorf("image user %q, want the Dockerfile's non-root %q", cfg.User, want.User)
	}
	asJSON := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	if got := asJSON(cfg.Entrypoint); got != strings.ReplaceAll(want.Entrypoint, " ", "") {
		t.Errorf("entrypoint %s, want the Dockerfile's %s", got, want.Entrypoint)
	}
	if got := strings.Join(cfg.Cmd, " "); got != strings.Trim(want.Cmd, `[]"`) {
		t.Errorf("cmd %q, want the Dockerfile's %s", got, want.Cmd)
	}
	if _, ok := cfg.Volumes["/data"]; !ok || len(cfg.Volumes) != 1 || want.Volume != `["/data"]` {
		t.Errorf("volumes %v, want /data only (the Dockerfile: %s)", cfg.Volumes, want.Volume)
	}
	for _, port := range want.Expose {
		if _, ok := cfg.ExposedPorts[port+"/tcp"]; !ok {
			t.Errorf("port %s the Dockerfile exposes is not exposed: %v", port, cfg.ExposedPorts)
		}
	}
	if len(cfg.ExposedPorts) != len(want.Expose) {
		t.Errorf("exposed ports %v, want the Dockerfile's %v", cfg.ExposedPorts, want.Expose)
	}
	for _, kv := range want.Env {
		if !slices.Contains(cfg.Env, kv) {
			t.Errorf("environment %v lacks the Dockerfile's %s", cfg.Env, kv)
		}
	}
	// HEALTHCHECK --interval=10s ... CMD ["/usr/local/bin/trustgate", "healthcheck", ...]
	opts, cmdJSON, _ := strings.Cut(want.Healthcheck, "CMD ")
	var wantTest []string
	if err := json.Unmarshal([]byte(cmdJSON), &wantTest); err != nil {
		t.Fatalf("the Dockerfile's HEALTHCHECK %q: %v", want.Healthcheck, err)
	}
	wantOpts := map[string]string{}
	for _, o := range strings.Fields(opts) {
		k, v, _ := strings.Cut(o, "=")
		wantOpts[k] = v
	}
	hc := cfg.Healthcheck
	if hc == nil || !slices.Equal(hc.Test, append([]string{"CMD"}, wantTest...)) {
		t.Fatalf("health check %+v, want the Dockerfile's %s", hc, want.Healthcheck)
	}
	for flag, got := range map[string]time.Duration{"--interval": hc.Interval, "--timeout": hc.Timeout, "--start-period": hc.StartPeriod} {
		if d, err := time.ParseDuration(wantOpts[flag]); err != nil || d != got {
			t.Errorf("health check %s %s, the Dockerfile's %q", flag, got, wantOpts[flag])
		}
	}
	if fmt.Sprint(hc.Retries) != wantOpts["--retries"] {
		t.Errorf("health check retries %d, the Dockerfile's %q", hc.Retries, wantOpts["--retries"])
	}

	// Run it: one container, the server in it, the health check command beside it.
	ctr := buildah(t, "from", "--quiet", name)
	t.Cleanup(func() { _ = exec.Command("buildah", "rm", ctr).Run() })
	root := buildah(t, "mount", ctr)
	if info, err := os.Stat(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")); err != nil || info.Size() == 0 {
		t.Errorf("the image has no CA certificates: %v", err)
	}
	addr := freeAddr(t)
	serve := exec.Command("buildah", "run", "--isolation", "chroot", "--network", "host", ctr, "--",
		"/usr/local/bin/trustgate", "serve", "--listen", addr, "--metrics-listen", "")
	serve.Env = cleanEnv()
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs strings.Builder
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = serve.Wait(); close(exited) }()
	stop := func() {
		_ = syscall.Kill(-serve.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-serve.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body := readAll(resp)
			if resp.StatusCode == http.StatusOK {
				t.Logf("/readyz of the image's trustgate: %s", strings.TrimSpace(body))
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("trustgate in the image exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("trustgate in the image: no /readyz 200 within 3 minutes:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	check := exec.Command("buildah", "run", "--isolation", "chroot", "--network", "host", ctr, "--",
		"/usr/local/bin/trustgate", "healthcheck", "--url", "http://"+addr+"/readyz")
	check.Env = cleanEnv()
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("the image's health check command: %v\n%s", err, out)
	}
	// The server runs as the image's user (found by its command line in /proc).
	if uid, ok := processUID("/usr/local/bin/trustgate\x00serve\x00--listen\x00" + addr); !ok {
		t.Error("the image's trustgate process is not in /proc")
	} else if fmt.Sprint(uid) != strings.Split(want.User, ":")[0] {
		t.Errorf("the image's trustgate runs as uid %d, want the image's user %s", uid, want.User)
	}
	stop()
}

// processUID returns the real user id of a process whose command line (arguments separated by
// NUL) starts with cmdline.
func processUID(cmdline string) (int, bool) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !strings.HasPrefix(string(raw), cmdline) {
			continue
		}
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				var uid int
				if _, err := fmt.Sscan(rest, &uid); err == nil {
					return uid, true
				}
			}
		}
	}
	return 0, false
}
