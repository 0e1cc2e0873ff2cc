package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

// newHostDLPCommand changes a host's result filter (DLP): its mode, the built-in detectors on,
// and its custom patterns. The API replaces the settings whole, so the command reads them,
// changes what its flags say, and writes them back.
func newHostDLPCommand(o *adminOptions) *cobra.Command {
	var (
		mode          string
		kinds         []string
		add, remove   []string
		clearPatterns bool
	)
	cmd := &cobra.Command{
		Use:   "dlp HOST",
		Short: "Show or change a host's result filter (DLP): mode, detectors, custom patterns",
		Long: `Show or change what the gateway does with tool results that carry secrets or personal data.

Without flags it shows the settings. --mode off|redact|block sets the host's mode (a server's
own mode, admin server update --dlp-mode, wins over it); --kinds chooses the built-in detectors
(--kinds= turns them all on again); --pattern NAME=REGEXP adds or replaces a custom detector
(RE2 syntax), --remove-pattern NAME removes one, --clear-patterns removes them all.`,
		Example: `  trustgate admin host dlp acme --mode redact
  trustgate admin host dlp acme --kinds aws_access_key_id,private_key,card_number
  trustgate admin host dlp acme --pattern 'employee_id=\bEMP-\d{6}\b'`,
		Args: argsNamed("HOST"),
	}
	cmd.RunE = o.api(func(a *adminCall, args []string) error {
		f := cmd.Flags()
		h, err := a.client.GetHost(a.ctx, args[0])
		if err != nil {
			return err
		}
		d := h.Settings.DLP
		changed := false
		if f.Changed("mode") {
			if d.Mode, err = oneOf("--mode", mode, "off", "redact", "block"); err != nil {
				return err
			}
			changed = true
		}
		if f.Changed("kinds") {
			d.Kinds = []string{}
			for _, k := range kinds {
				if k = strings.TrimSpace(k); k != "" {
					d.Kinds = append(d.Kinds, k)
				}
			}
			changed = true
		}
		if clearPatterns {
			d.Patterns, changed = []sdk.DLPPattern{}, true
		}
		for _, name := range remove {
			i := slices.IndexFunc(d.Patterns, func(p sdk.DLPPattern) bool { return p.Name == name })
			if i < 0 {
				return fmt.Errorf("--remove-pattern %s: the host has no pattern of that name", name)
			}
			d.Patterns, changed = slices.Delete(d.Patterns, i, i+1), true
		}
		for _, p := range add {
			name, re, ok := strings.Cut(p, "=")
			if !ok || name == "" || re == "" {
				return fmt.Errorf("--pattern %q: want NAME=REGEXP", p)
			}
			d.Patterns = slices.DeleteFunc(d.Patterns, func(x sdk.DLPPattern) bool { return x.Name == name })
			d.Patterns, changed = append(d.Patterns, sdk.DLPPattern{Name: name, Regexp: re}), true
		}
		if changed {
			if h, err = a.client.UpdateHost(a.ctx, args[0], sdk.HostUpdate{Settings: &sdk.HostSettingsPatch{DLP: &d}}); err != nil {
				return err
			}
		}
		if a.json {
			return writeJSON(a.out, h.Settings.DLP)
		}
		return writeDLP(a, h.Settings.DLP)
	})
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "off (results pass unchanged), redact (findings become [redacted:<kind>]) or block (a result with a finding becomes a denial)")
	f.StringSliceVar(&kinds, "kinds", nil, "the built-in detectors on, comma-separated (--kinds= : all)")
	f.StringArrayVar(&add, "pattern", nil, "add or replace a custom detector NAME=REGEXP (repeatable)")
	f.StringArrayVar(&remove, "remove-pattern", nil, "remove the custom detector NAME (repeatable)")
	f.BoolVar(&clearPatterns, "clear-patterns", false, "remove every custom detector")
	return cmd
}

func writeDLP(a *adminCall, d sdk.DLPSettings) error {
	fields := []field{
		{"Mode", d.Mode},
		{"Detectors", listOr(d.Kinds, "all built-in")},
	}
	if len(d.Patterns) == 0 {
		fields = append(fields, field{"Custom patterns", "none"})
	}
	for _, p := range d.Patterns {
		fields = append(fields, field{"Pattern " + p.Name, p.Regexp})
	}
	return writeFields(a.out, fields)
}

// dlpText is one line of a host's result filter settings.
func dlpText(d sdk.DLPSettings) string {
	text := d.Mode + ", detectors: " + listOr(d.Kinds, "all built-in")
	if len(d.Patterns) > 0 {
		names := make([]string, len(d.Patterns))
		for i, p := range d.Patterns {
			names[i] = p.Name
		}
		text += ", custom: " + strings.Join(names, ", ")
	}
	return text
}

// orText is s, or none when s is empty.
func orText(s, none string) string {
	if s == "" {
		return none
	}
	return s
}
