package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chromedp/chromedp"
)

// Violation is one axe-core rule a page breaks, with the elements that break it.
type Violation struct {
	ID          string `json:"id"`
	Impact      string `json:"impact"` // minor, moderate, serious or critical
	Help        string `json:"help"`
	HelpURL     string `json:"helpUrl"`
	Description string `json:"description"`
	Nodes       []struct {
		// Target is the element's selector path (nested for shadow roots and frames).
		Target         json.RawMessage `json:"target"`
		HTML           string          `json:"html"`
		FailureSummary string          `json:"failureSummary"`
	} `json:"nodes"`
}

// axeScript is axe-core as tests/ts pins it, relative to the module's root.
var axeScript = filepath.Join("tests", "ts", "node_modules", "axe-core", "axe.min.js")

// axeSource reads axe.min.js from the module this test runs in; it skips (fails under CI=true)
// when tests/ts's packages are not installed.
func (b *Browser) axeSource() string {
	b.t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		b.t.Fatalf("axe-core: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			b.t.Fatalf("axe-core: no go.mod above the test's directory")
		}
		dir = parent
	}
	src, err := os.ReadFile(filepath.Join(dir, axeScript))
	if err != nil {
		unavailable(b.t, "axe-core is not installed (npm ci --prefix tests/ts): "+err.Error())
	}
	return string(src)
}

// Axe injects axe-core into the page the tab shows, runs it and returns the rules it breaks, of every impact.
// axe-core is evaluated through the DevTools protocol, so the page's Content-Security-Policy
// stays as it is.
func (b *Browser) Axe(ctx context.Context) ([]Violation, error) {
	b.t.Helper()
	src := b.axeSource()
	// The actions run on the tab's context, bounded by ActionTimeout and ended with ctx.
	tab, cancel := context.WithTimeout(b.tab, ActionTimeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	if err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](src)); err != nil {
		return nil, fmt.Errorf("inject axe-core: %w", err)
	}
	raw, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](
		`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations)`, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("run axe-core: %w", err)
	}
	var violations []Violation
	if err := json.Unmarshal(raw, &violations); err != nil {
		return nil, fmt.Errorf("axe-core's violations: %w", err)
	}
	return violations, nil
}

// RequireAccessible runs axe-core on the page the tab shows (named page in messages), in the
// light and in the dark color scheme, and fails the test on every serious or critical
// violation, listing each with its elements; minor and moderate ones are logged. The tab is
// left on the browser's own color scheme.
func (b *Browser) RequireAccessible(page string) {
	b.t.Helper()
	defer b.PreferColorScheme("")
	for _, scheme := range []string{"light", "dark"} {
		b.PreferColorScheme(scheme)
		violations, err := b.Axe(context.Background())
		if err != nil {
			b.t.Fatalf("axe-core on the %s (%s scheme): %v", page, scheme, err)
		}
		var serious []string
		for _, v := range violations {
			if v.Impact == "serious" || v.Impact == "critical" {
				serious = append(serious, describe(v))
			} else {
				b.t.Logf("axe-core on the %s (%s scheme; %s, not failing): %s", page, scheme, v.Impact, describe(v))
			}
		}
		if len(serious) > 0 {
			b.t.Errorf("axe-core: the %s in the %s color scheme (%s) has %d serious or critical violation(s):\n%s",
				page, scheme, b.locationOrUnknown(), len(serious), strings.Join(serious, "\n"))
		}
	}
}

// describe renders a violation and its elements for a failure message.
func describe(v Violation) string {
	var s strings.Builder
	fmt.Fprintf(&s, "- [%s] %s: %s (%s)", v.Impact, v.ID, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&s, "\n    %s %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.FailureSummary, "\n", "\n      "))
	}
	return s.String()
}
