package archtest

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mapRow is one row of the README's project map: a folder of the module.
type mapRow struct {
	folder string // relative to the module root, e.g. "store/cache"
	line   int
}

// readProjectMap reads the folders of the README's "Project map" table, top row first.
func readProjectMap(t *testing.T) []mapRow {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatalf("open README: %v", err)
	}
	defer f.Close()
	var rows []mapRow
	inMap := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			inMap = strings.TrimSpace(line) == "## Project map"
			continue
		case !inMap || !strings.HasPrefix(line, "| `"):
			continue
		}
		cell := strings.TrimPrefix(line, "| `")
		end := strings.IndexByte(cell, '`')
		if end <= 0 {
			t.Fatalf("README:%d: a project map row without a folder: %q", n, line)
		}
		rows = append(rows, mapRow{folder: strings.TrimSuffix(cell[:end], "/"), line: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read README: %v", err)
	}
	if len(rows) == 0 {
		t.Fatal("README has no project map table")
	}
	return rows
}

// rowOf is the index of the map row that holds the package: the row of the longest folder that
// contains it; -1 when none does.
func rowOf(rows []mapRow, importPath string) int {
	rel := strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
	best, bestLen := -1, -1
	for i, r := range rows {
		if (rel == r.folder || strings.HasPrefix(rel, r.folder+"/")) && len(r.folder) > bestLen {
			best, bestLen = i, len(r.folder)
		}
	}
	return best
}

// The README's project map lists the packages from the top of the building down: every package
// of the module is in a row, and a package imports only packages in its own row or rows below
// it. A change that makes a low package reach up (or adds a package the map does not name)
// fails here, so the map stays a true picture of the layers.
func TestProjectMapIsLayered(t *testing.T) {
	rows := readProjectMap(t)
	seen := map[string]int{}
	for i, r := range rows {
		if j, dup := seen[r.folder]; dup {
			t.Errorf("README:%d: folder %s is already in the map (line %d)", r.line, r.folder, rows[j].line)
		}
		seen[r.folder] = i
		if _, err := os.Stat(filepath.Join("..", "..", filepath.FromSlash(r.folder))); err != nil {
			t.Errorf("README:%d: the map names %s, which does not exist", r.line, r.folder)
		}
	}
	for _, p := range listPackages(t, module+"/...") {
		from := rowOf(rows, p.ImportPath)
		if from < 0 {
			t.Errorf("%s is in no row of the README's project map", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if !within(imp, module) {
				continue
			}
			to := rowOf(rows, imp)
			if to >= 0 && to < from {
				t.Errorf("%s (README:%d) imports %s, which the map puts above it (README:%d)",
					p.ImportPath, rows[from].line, imp, rows[to].line)
			}
		}
	}
}
