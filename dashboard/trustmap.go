package dashboard

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/trustgate/trustgate/sdk"
)

// The trust map: the admin API's insights of a host drawn as a graph, human → agent → server
// → tools, as SVG made on the server (no script), with the over-permission highlighted and
// the same facts as tables for screen readers and narrow screens.

// trustMapHumans is how many humans one page of the map shows.
const trustMapHumans = 25

// trustMapTools bounds the tools drawn per server (the rest are counted in one node; the
// table lists them all).
const trustMapTools = 40

// Geometry of the graph, in SVG user units.
const (
	tmColumnWidth = 200
	tmColumnGap   = 40
	tmRowHeight   = 30
	tmNodeHeight  = 22
	tmMargin      = 10
	tmLabelChars  = 26
)

type trustMapData struct {
	Insights sdk.Insights
	Graph    svgGraph
	// Next is the map's next page of humans ("" after the last).
	Next string
	// Rows is the who-may-do-what table: one row per agent and server.
	Rows []trustMapRow
}

type trustMapRow struct {
	Human, Agent, AgentID, Server, Level, Ceiling, Effective string
	Tools, Used                                              []string
	Disabled, Over                                           bool
}

// svgGraph is the trust map's drawing.
type svgGraph struct {
	Width, Height int
	Nodes         []svgNode
	Edges         []svgEdge
	Columns       []svgColumn
}

type svgColumn struct {
	X     int
	Label string
}

type svgNode struct {
	X, Y, W, H int
	// TX, TY place the label.
	TX, TY int
	Label  string
	// Title is the node's accessible name and tooltip (the full text).
	Title string
	Class string
}

type svgEdge struct {
	X1, Y1, X2, Y2 int
	Class          string
	Title          string
}

func (d *Dashboard) trustMapPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	host := r.PathValue("host")
	x, err := d.api.Insights(as(r, v), host, sdk.PageRequest{Limit: trustMapHumans, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		d.apiError(w, r, v, err)
		return
	}
	data := trustMapData{Insights: x, Graph: drawTrustMap(x), Rows: trustMapRows(x)}
	if x.NextCursor != "" {
		data.Next = Prefix + "/hosts/" + host + "/trust-map?" + url.Values{"cursor": {x.NextCursor}}.Encode()
	}
	d.render(w, r, v, http.StatusOK, "trustmap", "Trust map", host, data)
}

// overLevels are the agent×server pairs with an unused level, overCeilings the human×server
// pairs with an unused ceiling.
func overSets(x sdk.Insights) (levels, ceilings map[[2]string]sdk.InsightFinding) {
	levels, ceilings = map[[2]string]sdk.InsightFinding{}, map[[2]string]sdk.InsightFinding{}
	for _, f := range x.Findings {
		switch f.Kind {
		case sdk.FindingUnusedLevel:
			levels[[2]string{f.Agent, f.Server}] = f
		case sdk.FindingUnusedCeiling:
			ceilings[[2]string{f.HumanID, f.Server}] = f
		}
	}
	return levels, ceilings
}

func trustMapRows(x sdk.Insights) []trustMapRow {
	levels, _ := overSets(x)
	var rows []trustMapRow
	for _, h := range x.Humans {
		for _, a := range h.Agents {
			for _, s := range a.Servers {
				_, over := levels[[2]string{a.ID, s.Server}]
				rows = append(rows, trustMapRow{Human: h.Email, Agent: a.Name, AgentID: a.ID, Server: s.Server, Level: s.Level,
					Ceiling: s.Ceiling, Effective: s.Effective, Tools: s.Tools, Used: s.Used, Disabled: a.Disabled, Over: over})
			}
		}
	}
	return rows
}

// drawTrustMap lays the page's humans and their agents out on the left, every server and its
// tools on the right, and joins them: human → agent, agent → server (at the effective level),
// server → tool. Over-permission gets the class "over".
func drawTrustMap(x sdk.Insights) svgGraph {
	levels, ceilings := overSets(x)
	col := func(i int) int { return tmMargin + i*(tmColumnWidth+tmColumnGap) }
	g := svgGraph{Columns: []svgColumn{{col(0), "Humans"}, {col(1), "Agents"}, {col(2), "MCP servers"}, {col(3), "Tools"}}}
	top := tmMargin + tmRowHeight // below the column headings
	node := func(column, row int, label, title, class string) svgNode {
		x, y := col(column), top+row*tmRowHeight
		return svgNode{X: x, Y: y, W: tmColumnWidth, H: tmNodeHeight, TX: x + 6, TY: y + 15, Label: shorten(label), Title: title, Class: class}
	}
	mid := func(n svgNode) int { return n.Y + n.H/2 }

	// The right side: servers and their tools.
	serverNode := map[string]svgNode{}
	row := 0
	for _, s := range x.Servers {
		sn := node(2, row, s.Key, fmt.Sprintf("MCP server %s (%d tools)", s.Key, len(s.Tools)), "tm-server")
		serverNode[s.Key] = sn
		g.Nodes = append(g.Nodes, sn)
		for i, t := range s.Tools {
			if i == trustMapTools {
				more := node(3, row, fmt.Sprintf("+%d more tools", len(s.Tools)-i), fmt.Sprintf("%d more tools of %s: see the table", len(s.Tools)-i, s.Key), "tm-tool")
				g.Nodes = append(g.Nodes, more)
				row++
				break
			}
			class, title := "tm-tool", fmt.Sprintf("Tool %s of %s: level %s, %d agents can call it", t.Name, s.Key, t.Level, t.Callers)
			switch {
			case !t.Enabled:
				class, title = "tm-tool tm-disabled", fmt.Sprintf("Tool %s of %s: disabled", t.Name, s.Key)
			case t.Uncallable:
				class, title = "tm-tool tm-over", fmt.Sprintf("Over-permission: tool %s of %s is enabled at %s but no agent can call it", t.Name, s.Key, t.Level)
			}
			label := t.Name
			if t.Enabled {
				label += " · " + t.Level
			}
			tn := node(3, row, label, title, class)
			g.Nodes = append(g.Nodes, tn)
			edgeClass := "tm-edge"
			if !t.Enabled {
				edgeClass += " tm-disabled"
			}
			g.Edges = append(g.Edges, svgEdge{X1: sn.X + sn.W, Y1: mid(sn), X2: tn.X, Y2: mid(tn), Class: edgeClass, Title: title})
			row++
		}
		if len(s.Tools) == 0 {
			row++
		}
		row++ // a gap between servers
	}
	right := row

	// The left side: humans and their agents, joined to the servers.
	row = 0
	for _, h := range x.Humans {
		class, title := "tm-human", fmt.Sprintf("Human %s", h.Email)
		for _, c := range h.Ceilings {
			if f, ok := ceilings[[2]string{h.ID, c.Server}]; ok {
				class = "tm-human tm-over"
				title += ". Over-permission: " + f.Text
			}
		}
		hn := node(0, row, h.Email, title, class)
		g.Nodes = append(g.Nodes, hn)
		if len(h.Agents) == 0 {
			row += 2
			continue
		}
		for _, a := range h.Agents {
			aclass, atitle := "tm-agent", fmt.Sprintf("Agent %s of %s", a.Name, h.Email)
			if a.Disabled {
				aclass, atitle = "tm-agent tm-disabled", atitle+" (disabled)"
			}
			an := node(1, row, a.Name, atitle, aclass)
			g.Nodes = append(g.Nodes, an)
			g.Edges = append(g.Edges, svgEdge{X1: hn.X + hn.W, Y1: mid(hn), X2: an.X, Y2: mid(an), Class: "tm-edge", Title: atitle})
			for _, s := range a.Servers {
				sn, ok := serverNode[s.Server]
				if !ok || s.Effective == "none" {
					continue
				}
				eclass, etitle := "tm-edge tm-level-"+s.Effective, fmt.Sprintf("%s holds %s on %s", a.Name, s.Effective, s.Server)
				if f, over := levels[[2]string{a.ID, s.Server}]; over {
					eclass, etitle = eclass+" tm-over", "Over-permission: "+f.Text
				}
				g.Edges = append(g.Edges, svgEdge{X1: an.X + an.W, Y1: mid(an), X2: sn.X, Y2: mid(sn), Class: eclass, Title: etitle})
			}
			row++
		}
		row++
	}
	g.Width = col(4) - tmColumnGap + tmMargin
	g.Height = top + max(row, right, 1)*tmRowHeight + tmMargin
	return g
}

// shorten bounds a label to tmLabelChars characters (the node's title has it whole).
func shorten(s string) string {
	r := []rune(s)
	if len(r) <= tmLabelChars {
		return s
	}
	return string(r[:tmLabelChars-1]) + "…"
}
