package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

// agentTypes are the types an agent may be given.
var agentTypes = []string{"chat", "proactive", "ambient"}

func newAdminAgentCommand(o *adminOptions) *cobra.Command {
	var host string
	cmd := groupCommand("agent", "Manage agents (MCP clients acting for a human): levels and the kill switch",
		newAgentListCommand(o, &host), newAgentShowCommand(o, &host), newAgentUpdateCommand(o, &host),
		newAgentSetLevelCommand(o, &host), newAgentRevokeCommand(o, &host), newAgentKillCommand(o, &host))
	addHostFlag(cmd, &host)
	return cmd
}

func newAgentListCommand(o *adminOptions, host *string) *cobra.Command {
	var human string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List agents with their human and levels",
		Args:  argsNamed(),
		RunE: o.api(func(a *adminCall, _ []string) error {
			agents, err := sdk.Collect(a.client.Agents(a.ctx, *host, human))
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, agents)
			}
			return writeAgentTable(a.out, agents)
		}),
	}
	cmd.Flags().StringVar(&human, "human", "", "only the agents of this human (id or email)")
	return cmd
}

func newAgentShowCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "show AGENT",
		Short: "Show an agent with its level on each server",
		Args:  argsNamed("AGENT"),
		RunE: o.api(func(a *adminCall, args []string) error {
			ag, err := a.client.GetAgent(a.ctx, *host, args[0])
			if err != nil {
				return err
			}
			return a.printAgent(ag)
		}),
	}
}

func newAgentUpdateCommand(o *adminOptions, host *string) *cobra.Command {
	var name, typ string
	cmd := &cobra.Command{
		Use:   "update AGENT",
		Short: "Rename an agent or set its type (only the flags given change)",
		Args:  argsNamed("AGENT"),
	}
	cmd.RunE = o.api(func(a *adminCall, args []string) error {
		var req sdk.AgentUpdate
		if cmd.Flags().Changed("name") {
			req.Name = &name
		}
		if cmd.Flags().Changed("type") {
			t, err := oneOf("--type", typ, agentTypes...)
			if err != nil {
				return err
			}
			req.Type = &t
		}
		if req == (sdk.AgentUpdate{}) {
			return errNothingToUpdate(cmd, "name", "type")
		}
		ag, err := a.client.UpdateAgent(a.ctx, *host, args[0], req)
		if err != nil {
			return err
		}
		return a.printAgent(ag)
	})
	cmd.Flags().StringVar(&name, "name", "", "display name")
	cmd.Flags().StringVar(&typ, "type", "", "agent type: "+orList(agentTypes))
	return cmd
}

func newAgentSetLevelCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "set-level AGENT SERVER LEVEL",
		Short: "Set an agent's level on a server (up to its human's ceiling)",
		Args:  argsNamed("AGENT", "SERVER", "LEVEL"),
		RunE: o.api(func(a *adminCall, args []string) error {
			level, err := parseLevel("LEVEL", args[2])
			if err != nil {
				return err
			}
			ag, err := a.client.SetAgentLevel(a.ctx, *host, args[0], args[1], level)
			if err != nil {
				return err
			}
			return a.printAgent(ag)
		}),
	}
}

func newAgentRevokeCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke AGENT SERVER",
		Short: "Remove an agent's access to a server",
		Args:  argsNamed("AGENT", "SERVER"),
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.DeleteAgentLevel(a.ctx, *host, args[0], args[1]); err != nil {
				return err
			}
			return a.done("Revoked agent %s's access to %s.\n", args[0], args[1])
		}),
	}
}

func newAgentKillCommand(o *adminOptions, host *string) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "kill AGENT",
		Short: "Kill switch: revoke everything an agent holds and disable it",
		Args:  argsNamed("AGENT"),
		PreRunE: func(_ *cobra.Command, args []string) error {
			if yes {
				return nil
			}
			return fmt.Errorf("this would kill agent %q of host %q (delete every consent it holds and disable it); run again with --yes to do it", args[0], *host)
		},
		RunE: o.api(func(a *adminCall, args []string) error {
			ag, err := a.client.KillAgent(a.ctx, *host, args[0])
			if err != nil {
				return err
			}
			return a.printAgent(ag)
		}),
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "really kill")
	return cmd
}

func agentStatus(disabled bool) string {
	if disabled {
		return "killed"
	}
	return "active"
}

// agentLevel renders an agent's level on a server, with the cap its human's ceiling puts on it.
func agentLevel(s sdk.AgentServer) string {
	switch {
	case s.Effective == s.Level:
		return s.Level
	case s.Effective == "":
		return s.Level + " (no ceiling)"
	default:
		return s.Level + " (capped: " + s.Effective + ")"
	}
}

func writeAgentTable(w io.Writer, agents []sdk.Agent) error {
	rows := make([][]string, 0, len(agents))
	for _, ag := range agents {
		servers := make([]string, 0, len(ag.Servers))
		for _, s := range ag.Servers {
			servers = append(servers, s.Server+":"+agentLevel(s))
		}
		rows = append(rows, []string{ag.ID, ag.Name, ag.ClientID, ag.HumanEmail, ag.Type,
			strings.Join(ag.RedirectURIs, " "), strings.Join(servers, ", "), agentStatus(ag.Disabled)})
	}
	return writeTable(w, []string{"id", "name", "client id", "human", "type", "redirect uris", "servers", "status"}, rows)
}

func (a *adminCall) printAgent(ag sdk.Agent) error {
	if a.json {
		return writeJSON(a.out, ag)
	}
	human := ag.HumanEmail
	if ag.HumanID != "" {
		human += " (" + ag.HumanID + ")"
	}
	err := writeFields(a.out, []field{
		{"ID", ag.ID},
		{"Name", ag.Name},
		{"Client ID", ag.ClientID},
		{"Human", human},
		{"Type", ag.Type},
		{"Status", agentStatus(ag.Disabled)},
		{"Redirect URIs", strings.Join(ag.RedirectURIs, " ")},
		{"Created", formatTime(ag.CreatedAt)},
		{"Last active", formatTimePtr(ag.LastActiveAt)},
	})
	if err != nil {
		return err
	}
	if err := printf(a.out, "\nServers:\n"); err != nil {
		return err
	}
	rows := make([][]string, 0, len(ag.Servers))
	for _, s := range ag.Servers {
		rows = append(rows, []string{s.Server, s.Level, s.Ceiling, s.Effective})
	}
	return writeTable(a.out, []string{"server", "level", "ceiling", "effective"}, rows)
}
