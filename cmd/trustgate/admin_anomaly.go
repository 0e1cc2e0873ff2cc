package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

// A host's anomaly flags policy from the command line (settings.anomaly, replaced whole).

func newHostAnomalyCommand(o *adminOptions) *cobra.Command {
	return groupCommand("anomaly", "Manage a host's anomaly flags: which are raised, posted to the webhook, and suspend the agent",
		newHostAnomalyShowCommand(o), newHostAnomalySetCommand(o), newHostAnomalyOffCommand(o))
}

func newHostAnomalyShowCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show HOST",
		Short: "Show the host's anomaly flags policy",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.GetHost(a.ctx, args[0])
			if err != nil {
				return err
			}
			return writeAnomaly(a, h.Settings.Anomaly)
		}),
	}
}

func writeAnomaly(a *adminCall, s sdk.AnomalySettings) error {
	if a.json {
		return writeJSON(a.out, s)
	}
	hours := "learned from each human's last two weeks"
	if w := s.UsualHours; w != nil {
		hours = fmt.Sprintf("%02d:00-%02d:00 %s", w.Start, w.End, orDefault(w.Timezone, "UTC"))
	}
	return writeFields(a.out, []field{
		{"Flags", listOr(s.Flags, "none (off)")},
		{"Posted to the webhook", listOr(s.Notify, "none")},
		{"Suspend the agent", listOr(s.Suspend, "none")},
		{"Usual hours", hours},
		{"Rate spike", fmt.Sprintf("≥ %s calls a minute and ≥ %s× the agent's average", orDefault(strconv.Itoa(s.RateMinPerMinute), "20"), orDefault(strconv.FormatFloat(s.RateFactor, 'g', -1, 64), "10"))},
		{"Denial streak", orDefault(strconv.Itoa(s.DenialStreak), "5") + " denials in a row"},
	})
}

func orDefault(v, def string) string {
	if v == "" || v == "0" {
		return def
	}
	return v
}

func newHostAnomalySetCommand(o *adminOptions) *cobra.Command {
	var (
		flags, notify, suspend []string
		hours, timezone        string
		factor                 float64
		minimum, streak        int
	)
	cmd := &cobra.Command{
		Use:   "set HOST --flags FLAG,… [--notify FLAG,…] [--suspend FLAG,…]",
		Short: "Replace the host's anomaly flags policy",
		Long: "Flags: new_tool, new_server, off_hours, rate_spike, denial_streak. Each raised flag is in the\n" +
			"call's audit entry and the trustgate_anomaly_flags_total metric; --notify posts it to the host's\n" +
			"webhook; --suspend disables the agent (its kill switch).\n\n" +
			"  trustgate admin host anomaly set acme --flags new_tool,off_hours,rate_spike,denial_streak \\\n" +
			"      --notify rate_spike,denial_streak --suspend rate_spike --usual-hours 7-20 --timezone Europe/Berlin",
		Args: argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			s := sdk.AnomalySettings{Flags: flags, Notify: notify, Suspend: suspend, RateFactor: factor, RateMinPerMinute: minimum, DenialStreak: streak}
			if len(flags) == 0 {
				return fmt.Errorf("give the flags to raise with --flags ('anomaly off' turns them off)")
			}
			if hours != "" {
				from, to, ok := strings.Cut(hours, "-")
				start, err1 := strconv.Atoi(from)
				end, err2 := strconv.Atoi(to)
				if !ok || err1 != nil || err2 != nil {
					return fmt.Errorf("--usual-hours %q: want START-END in hours, such as 7-20", hours)
				}
				s.UsualHours = &sdk.UsualHours{Start: start, End: end, Timezone: timezone}
			} else if timezone != "" {
				return fmt.Errorf("--timezone goes with --usual-hours")
			}
			h, err := a.client.UpdateHost(a.ctx, args[0], sdk.HostUpdate{Settings: &sdk.HostSettingsPatch{Anomaly: &s}})
			if err != nil {
				return err
			}
			return writeAnomaly(a, h.Settings.Anomaly)
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&flags, "flags", nil, "flags to raise: new_tool, new_server, off_hours, rate_spike, denial_streak")
	f.StringSliceVar(&notify, "notify", nil, "flags posted to the host's webhook")
	f.StringSliceVar(&suspend, "suspend", nil, "flags that suspend the agent")
	f.StringVar(&hours, "usual-hours", "", "the usual hours as START-END (default: learned from each human's history)")
	f.StringVar(&timezone, "timezone", "", "the usual hours' IANA time zone (default UTC)")
	f.Float64Var(&factor, "rate-factor", 0, "rate_spike: times the agent's average a minute (default 10)")
	f.IntVar(&minimum, "rate-min", 0, "rate_spike: calls in the last minute at least (default 20)")
	f.IntVar(&streak, "denial-streak", 0, "denial_streak: denials in a row (default 5)")
	return cmd
}

func newHostAnomalyOffCommand(o *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "off HOST",
		Short: "Turn the host's anomaly flags off",
		Args:  argsNamed("HOST"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.UpdateHost(a.ctx, args[0], sdk.HostUpdate{Settings: &sdk.HostSettingsPatch{Anomaly: &sdk.AnomalySettings{}}})
			if err != nil {
				return err
			}
			return writeAnomaly(a, h.Settings.Anomaly)
		}),
	}
}
