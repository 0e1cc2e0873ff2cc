package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/sdk"
)

func newAdminHumanCommand(o *adminOptions) *cobra.Command {
	var host string
	cmd := groupCommand("human", "Manage humans and their ceilings (grants) on MCP servers",
		newHumanAddCommand(o, &host), newHumanInviteCommand(o, &host), newHumanListCommand(o, &host), newHumanShowCommand(o, &host),
		newHumanUpdateCommand(o, &host), newHumanGrantCommand(o, &host), newHumanRevokeCommand(o, &host),
		newHumanDeleteCommand(o, &host))
	addHostFlag(cmd, &host)
	return cmd
}

func newHumanAddCommand(o *adminOptions, host *string) *cobra.Command {
	var req sdk.HumanCreate
	cmd := &cobra.Command{
		Use:   "add EMAIL",
		Short: "Add (pre-authorize) a human by email",
		Args:  argsNamed("EMAIL"),
		RunE: o.api(func(a *adminCall, args []string) error {
			req.Email = args[0]
			h, err := a.client.CreateHuman(a.ctx, *host, req)
			if err != nil {
				return err
			}
			return a.printHuman(h)
		}),
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "display name")
	cmd.Flags().BoolVar(&req.Admin, "admin", false, "make the human an administrator of the host")
	cmd.Flags().BoolVar(&req.Invite, "invite", false, "print a one-time invitation link (7 days) with which the human chooses a password; without one they cannot sign in")
	return cmd
}

func newHumanInviteCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "invite HUMAN",
		Short: "Print a new one-time invitation link (7 days) for a human; earlier links stop working",
		Long: `invite issues a link with which the human chooses their password and signs in. Send it to
them yourself: it works once, for 7 days, and only until a newer invitation replaces it.
Use it again when a link expired or a human forgot their password.`,
		Args: argsNamed("HUMAN"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.InviteHuman(a.ctx, *host, args[0])
			if err != nil {
				return err
			}
			return a.printHuman(h)
		}),
	}
}

func newHumanListCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List humans with their ceilings, agents and last activity",
		Args:  argsNamed(),
		RunE: o.api(func(a *adminCall, _ []string) error {
			humans, err := sdk.Collect(a.client.Humans(a.ctx, *host))
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, humans)
			}
			return writeHumanTable(a.out, humans)
		}),
	}
}

func newHumanShowCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "show HUMAN",
		Short: "Show a human (by id or email) with their ceilings and agents",
		Args:  argsNamed("HUMAN"),
		RunE: o.api(func(a *adminCall, args []string) error {
			h, err := a.client.GetHuman(a.ctx, *host, args[0])
			if err != nil {
				return err
			}
			return a.printHuman(h)
		}),
	}
}

func newHumanUpdateCommand(o *adminOptions, host *string) *cobra.Command {
	var (
		name    string
		isAdmin bool
	)
	cmd := &cobra.Command{
		Use:   "update HUMAN",
		Short: "Change a human's name or admin role (only the flags given change)",
		Args:  argsNamed("HUMAN"),
	}
	cmd.RunE = o.api(func(a *adminCall, args []string) error {
		var req sdk.HumanUpdate
		if cmd.Flags().Changed("name") {
			req.Name = &name
		}
		if cmd.Flags().Changed("admin") {
			req.Admin = &isAdmin
		}
		if req == (sdk.HumanUpdate{}) {
			return errNothingToUpdate(cmd, "name", "admin")
		}
		h, err := a.client.UpdateHuman(a.ctx, *host, args[0], req)
		if err != nil {
			return err
		}
		return a.printHuman(h)
	})
	cmd.Flags().StringVar(&name, "name", "", "display name")
	cmd.Flags().BoolVar(&isAdmin, "admin", false, "administrator of the host (true or false)")
	return cmd
}

func newHumanGrantCommand(o *adminOptions, host *string) *cobra.Command {
	var level string
	cmd := &cobra.Command{
		Use:   "grant HUMAN SERVER --level LEVEL",
		Short: "Let a human use a server up to a ceiling (low, medium or high)",
		Long: `grant sets the human's ceiling on the server: their agents can be given any level up
to it at consent. Lowering a ceiling caps existing consents at once.`,
		Args: argsNamed("HUMAN", "SERVER"),
		RunE: o.api(func(a *adminCall, args []string) error {
			ceiling, err := parseLevel("--level", level)
			if err != nil {
				return err
			}
			h, err := a.client.SetGrant(a.ctx, *host, args[0], args[1], ceiling)
			if err != nil {
				return err
			}
			return a.printHuman(h)
		}),
	}
	cmd.Flags().StringVar(&level, "level", "", "the ceiling: low, medium or high")
	_ = cmd.MarkFlagRequired("level")
	return cmd
}

func newHumanRevokeCommand(o *adminOptions, host *string) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke HUMAN SERVER",
		Short: "Remove a human's ceiling on a server and their agents' consents there, cutting every agent of theirs off it",
		Args:  argsNamed("HUMAN", "SERVER"),
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.DeleteGrant(a.ctx, *host, args[0], args[1]); err != nil {
				return err
			}
			return a.done("Revoked %s's access to %s; none of their agents can use it now, and after a new grant each must be consented again.\n", args[0], args[1])
		}),
	}
}

func newHumanDeleteCommand(o *adminOptions, host *string) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete HUMAN",
		Short: "Delete a human with their ceilings, agents and consents",
		Args:  argsNamed("HUMAN"),
		PreRunE: func(_ *cobra.Command, args []string) error {
			return requireYes(yes, fmt.Sprintf("human %q of host %q with their ceilings, agents and consents", args[0], *host))
		},
		RunE: o.api(func(a *adminCall, args []string) error {
			if err := a.client.DeleteHuman(a.ctx, *host, args[0]); err != nil {
				return err
			}
			return a.done("Deleted human %s of host %s.\n", args[0], *host)
		}),
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete")
	return cmd
}

// grantList renders a human's ceilings as "server:ceiling, …".
func grantList(grants []sdk.Grant) string {
	items := make([]string, 0, len(grants))
	for _, g := range grants {
		items = append(items, g.Server+":"+g.Ceiling)
	}
	return listOr(items, "")
}

func writeHumanTable(w io.Writer, humans []sdk.Human) error {
	rows := make([][]string, 0, len(humans))
	for _, h := range humans {
		rows = append(rows, []string{h.Email, h.Name, yesNo(h.Admin), grantList(h.Grants),
			strconv.Itoa(len(h.Agents)), formatTimePtr(h.LastActiveAt)})
	}
	return writeTable(w, []string{"email", "name", "admin", "servers", "agents", "last active"}, rows)
}

func (a *adminCall) printHuman(h sdk.Human) error {
	if a.json {
		return writeJSON(a.out, h)
	}
	return writeHuman(a.out, h)
}

func writeHuman(w io.Writer, h sdk.Human) error {
	err := writeFields(w, []field{
		{"ID", h.ID},
		{"Email", h.Email},
		{"Name", h.Name},
		{"Admin", yesNo(h.Admin)},
		{"Created", formatTime(h.CreatedAt)},
		{"Last active", formatTimePtr(h.LastActiveAt)},
	})
	if err != nil {
		return err
	}
	if h.Invitation != nil {
		if err := printf(w, "\nInvitation (send it to %s; it works once, until %s):\n%s\n", h.Email, formatTime(h.Invitation.ExpiresAt), h.Invitation.URL); err != nil {
			return err
		}
	}
	if err := printf(w, "\nServers (ceilings):\n"); err != nil {
		return err
	}
	grants := make([][]string, 0, len(h.Grants))
	for _, g := range h.Grants {
		grants = append(grants, []string{g.Server, g.Ceiling, formatTime(g.UpdatedAt)})
	}
	if err := writeTable(w, []string{"server", "ceiling", "updated"}, grants); err != nil {
		return err
	}
	if err := printf(w, "\nAgents:\n"); err != nil {
		return err
	}
	agents := make([][]string, 0, len(h.Agents))
	for _, ag := range h.Agents {
		agents = append(agents, []string{ag.ID, ag.Name, ag.ClientID, agentStatus(ag.Disabled)})
	}
	return writeTable(w, []string{"id", "name", "client id", "status"}, agents)
}
