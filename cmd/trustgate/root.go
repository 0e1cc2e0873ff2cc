package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// envAnnotation marks a flag with the environment variable that sets it.
const envAnnotation = "trustgate_env"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "trustgate",
		Short: "trustgate is a self-hosted permissions gateway for the Model Context Protocol",
		Long: `trustgate sits between AI agents (MCP clients) and the MCP servers they call.
Every tools/call is authenticated, checked against relationships in SpiceDB
(the trust level a human granted the agent, capped by an admin's ceiling), and audited.

Every flag can also be set with the environment variable named in its help.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd)
		},
	}
	root.AddCommand(newServeCommand(), newMigrateCommand(), newVersionCommand(), newBenchCommand())
	root.AddCommand(newAdminCommand(), newAuditCommand(), newBackupCommand(), newRestoreCommand(), newHealthcheckCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the trustgate version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "trustgate", version)
			return err
		},
	}
}

// bindEnv documents and wires the environment variable of a flag.
func bindEnv(flags *pflag.FlagSet, name, env string) {
	f := flags.Lookup(name)
	if f == nil {
		panic("bindEnv: no flag " + name)
	}
	f.Usage += " (env " + env + ")"
	_ = flags.SetAnnotation(name, envAnnotation, []string{env})
}

// applyEnv sets every flag that was not given on the command line from its environment
// variable, when that is set.
func applyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		envs := f.Annotations[envAnnotation]
		if err != nil || len(envs) == 0 || f.Changed {
			return
		}
		if v, ok := os.LookupEnv(envs[0]); ok {
			if setErr := cmd.Flags().Set(f.Name, v); setErr != nil {
				err = fmt.Errorf("environment variable %s: %w", envs[0], setErr)
			}
		}
	})
	return err
}

// logFlags are the logging options every long-running command shares.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&l.format, "log-format", "text", "log format: text or json")
	flags.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	bindEnv(flags, "log-format", "TRUSTGATE_LOG_FORMAT")
	bindEnv(flags, "log-level", "TRUSTGATE_LOG_LEVEL")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(l.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}
