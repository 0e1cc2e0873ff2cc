package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

// Conditions on a tool's arguments from the command line (a SpiceDB caveat on the tool's
// relationship).

func newToolConditionCommand(o *adminOptions, host *string) *cobra.Command {
	return groupCommand("condition", "Set conditions on a tool's arguments (checked by SpiceDB with each call's arguments)",
		newToolConditionSetCommand(o, host), newToolConditionClearCommand(o, host))
}

func newToolConditionSetCommand(o *adminOptions, host *string) *cobra.Command {
	var prefix, maxes, mins, oneOf []string
	cmd := &cobra.Command{
		Use:   "set SERVER TOOL [--prefix ARG=TEXT] [--max ARG=N] [--min ARG=N] [--one-of ARG=A,B]",
		Short: "Replace the conditions on a tool's arguments",
		Long: "Replace the conditions on a tool's top-level arguments. Each flag may be repeated; a call\n" +
			"whose arguments do not meet every condition is refused (reason argument_condition).\n\n" +
			"  trustgate admin tool condition set github create_issue --prefix repository=acme/\n" +
			"  trustgate admin tool condition set billing refund --max amount=1000 --min amount=1\n" +
			"  trustgate admin tool condition set deploy release --one-of environment=staging,qa",
		Args: argsNamed("SERVER", "TOOL"),
		RunE: o.api(func(a *adminCall, args []string) error {
			var c sdk.ToolConditions
			var err error
			if c.Prefix, err = parseStringPairs("--prefix", prefix); err != nil {
				return err
			}
			if c.Max, err = parseNumberPairs("--max", maxes); err != nil {
				return err
			}
			if c.Min, err = parseNumberPairs("--min", mins); err != nil {
				return err
			}
			if c.OneOf, err = parseListPairs("--one-of", oneOf); err != nil {
				return err
			}
			if len(c.Prefix)+len(c.Max)+len(c.Min)+len(c.OneOf) == 0 {
				return fmt.Errorf("give at least one of --prefix, --max, --min, --one-of ('condition clear' removes them)")
			}
			t, err := a.client.SetToolConditions(a.ctx, *host, args[0], args[1], c)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, t)
			}
			return a.done("Conditions of %s/%s: %s.\n", t.Server, t.Name, describeConditions(t.Conditions))
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&prefix, "prefix", nil, "ARG=TEXT: the string argument ARG must start with TEXT")
	f.StringArrayVar(&maxes, "max", nil, "ARG=N: the number argument ARG must be at most N")
	f.StringArrayVar(&mins, "min", nil, "ARG=N: the number argument ARG must be at least N")
	f.StringArrayVar(&oneOf, "one-of", nil, "ARG=A,B,…: the string argument ARG must be one of these")
	return cmd
}

func newToolConditionClearCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "clear SERVER TOOL",
		Short: "Remove the conditions on a tool's arguments",
		Args:  argsNamed("SERVER", "TOOL"),
		RunE: o.api(func(a *adminCall, args []string) error {
			t, err := a.client.ClearToolConditions(a.ctx, *host, args[0], args[1])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, t)
			}
			return a.done("%s/%s has no conditions on its arguments.\n", t.Server, t.Name)
		}),
	}
}

func splitPair(flag, s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return "", "", fmt.Errorf("%s %q: want ARG=VALUE", flag, s)
	}
	return k, v, nil
}

func parseStringPairs(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, p := range pairs {
		k, v, err := splitPair(flag, p)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func parseNumberPairs(flag string, pairs []string) (map[string]float64, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := map[string]float64{}
	for _, p := range pairs {
		k, v, err := splitPair(flag, p)
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %q is not a number", flag, p, v)
		}
		out[k] = n
	}
	return out, nil
}

func parseListPairs(flag string, pairs []string) (map[string][]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := map[string][]string{}
	for _, p := range pairs {
		k, v, err := splitPair(flag, p)
		if err != nil {
			return nil, err
		}
		out[k] = append(out[k], strings.Split(v, ",")...)
	}
	return out, nil
}

// describeConditions is a tool's conditions in one line ("-" when none).
func describeConditions(c *sdk.ToolConditions) string {
	if c == nil {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(c.Prefix) {
		parts = append(parts, fmt.Sprintf("%s starts with %q", k, c.Prefix[k]))
	}
	for _, k := range sortedKeys(c.Max) {
		parts = append(parts, fmt.Sprintf("%s ≤ %v", k, c.Max[k]))
	}
	for _, k := range sortedKeys(c.Min) {
		parts = append(parts, fmt.Sprintf("%s ≥ %v", k, c.Min[k]))
	}
	for _, k := range sortedKeys(c.OneOf) {
		parts = append(parts, fmt.Sprintf("%s one of %s", k, strings.Join(c.OneOf[k], "|")))
	}
	if len(parts) == 0 {
		return "set (unreadable: every call is refused)"
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
