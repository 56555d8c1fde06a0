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
// cites is docs/DESIGN.md, and every section it names is a heading there.
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
				t.Errorf("%s cites %q: not docs/DESIGN.md", path, m[0])
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
