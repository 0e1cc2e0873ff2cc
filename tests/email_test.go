package tests

import (
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
)

// serve says at start whether email is on, and never shows the SMTP password.
func TestServeLogsWhetherEmailIsOn(t *testing.T) {
	off := start(t, "--data-dir", t.TempDir())
	off.stopCleanly(t)
	if !strings.Contains(off.output(), "email is off") {
		t.Errorf("without --smtp-url the log does not say email is off:\n%s", off.output())
	}

	srv := smtpserver.Start(t, smtpserver.Options{Username: "gw", Password: "s3cr3tpw"})
	on := start(t, "--data-dir", t.TempDir(), "--smtp-url", srv.URL(), "--smtp-from", "trustgate <gateway@example.com>")
	on.stopCleanly(t)
	out := on.output()
	if !strings.Contains(out, "email is on") || !strings.Contains(out, srv.Addr) {
		t.Errorf("with --smtp-url the log does not say email is on through %s:\n%s", srv.Addr, out)
	}
	if strings.Contains(out, "s3cr3tpw") {
		t.Errorf("the log shows the SMTP password:\n%s", out)
	}
}
