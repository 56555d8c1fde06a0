package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDesignCitationsExist: every "DESIGN.md" a Go file or the README
// cites exists (docs/DESIGN.md, or a package's own note such as
// stream/DESIGN.md), and every section of docs/DESIGN.md it names is a
// heading there.
func TestDesignCitationsExist(t *testing.T) {
	design, err := os.ReadFile("DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,3} (\d+(?:\.\d+)?)[. ]`).FindAllStringSubmatch(string(design), -1) {
		sections[m[1]] = true
	}
	if len(sections) < 10 {
		t.Fatalf("only %d numbered sections in DESIGN.md", len(sections))
	}
	cite := regexp.MustCompile(`(\S*)DESIGN\.md(?:,? (?:section |sections )?(\d+(?:\.\d+)?)(?: and (\d+(?:\.\d+)?))?)?`)
	checked := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || path == filepath.Join("..", "README.md")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range cite.FindAllStringSubmatch(string(data), -1) {
			if strings.HasSuffix(path, "design_test.go") || strings.HasSuffix(path, "doc.go") && strings.Contains(path, "docs") {
				continue
			}
			checked++
			if !strings.HasSuffix(m[1], "docs/") {
				// A package's own invariants (stream/DESIGN.md): the file
				// cited must exist, beside the citing file or at the
				// path given from the repository's root.
				prefix := strings.Trim(m[1], "(`'\"")
				own := filepath.Join(filepath.Dir(path), "DESIGN.md")
				if prefix != "" {
					own = filepath.Join("..", prefix+"DESIGN.md")
				}
				if _, err := os.Stat(own); err != nil {
					t.Errorf("%s cites %q: neither docs/DESIGN.md nor an existing package note (%v)", path, m[0], err)
				}
				continue
			}
			for _, s := range m[2:] {
				if s != "" && !sections[s] {
					t.Errorf("%s cites section %s of docs/DESIGN.md, which has no such section", path, s)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no citation of docs/DESIGN.md found")
	}
	t.Logf("%d citations of docs/DESIGN.md checked against %d sections", checked, len(sections))
}
