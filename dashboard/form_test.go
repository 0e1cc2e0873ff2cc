package dashboard_test

import (
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// formValues is what a browser submits with the form of the page whose action is action: its
// named inputs (checked boxes and radios only), selects (the selected option, else the first)
// and text areas, as the page rendered them.
func formValues(t *testing.T, page, action string) url.Values {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	attr := func(n *html.Node, k string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val, true
			}
		}
		return "", false
	}
	var form *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if form != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" {
			if a, _ := attr(n, "action"); a == action {
				form = n
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if form == nil {
		t.Fatalf("no form with action %q in the page:\n%s", action, page)
	}
	out := url.Values{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			name, named := attr(n, "name")
			switch n.Data {
			case "input":
				typ, _ := attr(n, "type")
				val, _ := attr(n, "value")
				_, checked := attr(n, "checked")
				switch {
				case !named:
				case typ == "checkbox" || typ == "radio":
					if checked {
						if val == "" {
							val = "on"
						}
						out.Add(name, val)
					}
				case typ == "submit":
				default:
					out.Add(name, val)
				}
			case "textarea":
				var text strings.Builder
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.TextNode {
						text.WriteString(c.Data)
					}
				}
				if named {
					out.Add(name, strings.TrimPrefix(text.String(), "\n"))
				}
				return
			case "select":
				var first, selected *html.Node
				for o := n.FirstChild; o != nil; o = o.NextSibling {
					if o.Type != html.ElementNode || o.Data != "option" {
						continue
					}
					if first == nil {
						first = o
					}
					if _, ok := attr(o, "selected"); ok {
						selected = o
					}
				}
				if selected == nil {
					selected = first
				}
				if named && selected != nil {
					v, _ := attr(selected, "value")
					out.Add(name, v)
				}
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(form)
	return out
}

// rowIndex is the index N of the tools-table row whose tool-N field names tool.
func rowIndex(t *testing.T, form url.Values, tool string) string {
	t.Helper()
	for k, v := range form {
		if strings.HasPrefix(k, "tool-") && len(v) == 1 && v[0] == tool {
			return strings.TrimPrefix(k, "tool-")
		}
	}
	t.Fatalf("no row for tool %q in %v", tool, form)
	return ""
}
