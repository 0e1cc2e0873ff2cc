package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func newHealthcheckCommand() *cobra.Command {
	var (
		target  string
		caFile  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Ask a running gateway's /readyz and exit 0 when it is ready (for container health checks)",
		Long: `healthcheck requests --url (default the local gateway's /readyz) and exits 0 on 200, 1
otherwise, printing why. It needs no shell, so a container image without one (distroless,
scratch) can use it as its HEALTHCHECK. --ca-file verifies an https gateway's certificate
against that CA (default: the system's roots).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 || timeout > time.Minute {
				return fmt.Errorf("--timeout %s: want more than 0 and at most 1m", timeout)
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.Proxy = nil // a health check asks the gateway itself
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca-file: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
				}
				tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
			client := &http.Client{Transport: tr, Timeout: timeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return fmt.Errorf("--url %q: %w", target, err)
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("not healthy: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("not ready: %s answered %d: %s", target, resp.StatusCode, body)
			}
			return printf(cmd.OutOrStdout(), "ready: %s answered 200\n", target)
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "url", "http://127.0.0.1:8080/readyz", "the readiness URL to ask")
	f.StringVar(&caFile, "ca-file", "", "PEM CA to verify an https --url with (default: the system's roots)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	bindEnv(f, "url", "TRUSTGATE_HEALTHCHECK_URL")
	return cmd
}
