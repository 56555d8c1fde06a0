package resp

import (
	"os"
	"strings"
	"testing"

	"github.com/meridian-db/meridian/kv"
)

// TestCommandsDoc checks that docs/commands.md is what the command table
// says; MERIDIAN_UPDATE_DOCS=1 writes it.
func TestCommandsDoc(t *testing.T) {
	redis7, err := os.ReadFile("testdata/redis-7.0-commands.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := commandsDoc(string(redis7))
	const path = "../docs/commands.md"
	if os.Getenv("MERIDIAN_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (MERIDIAN_UPDATE_DOCS=1 go test ./resp -run TestCommandsDoc writes it)", err)
	}
	if string(want) != got {
		t.Fatal("docs/commands.md is out of date: MERIDIAN_UPDATE_DOCS=1 go test ./resp -run TestCommandsDoc")
	}
	for _, l := range strings.Split(got, "\n") {
		if strings.Contains(l, "| partial |") && strings.Count(l, "|  |") > 0 {
			t.Fatalf("a partial command without its difference: %s", l)
		}
	}
}

// TestCommandTable checks the table against the command engine: every
// engine command is in it with the engine's arity and keys, notes name
// commands that exist.
func TestCommandTable(t *testing.T) {
	for _, s := range kv.Specs() {
		cmd := commandTable[s.Name]
		if cmd == nil {
			t.Fatalf("engine command %s missing from the table", s.Name)
		}
		if cmd.spec != s {
			t.Fatalf("%s: the table's command does not carry the engine's spec", s.Name)
		}
		if cmd.arity != s.Arity || cmd.firstKey != s.First || cmd.lastKey != s.Last || cmd.step != s.Step {
			t.Fatalf("%s: table arity %d keys %d,%d,%d; engine %d keys %d,%d,%d", s.Name, cmd.arity, cmd.firstKey, cmd.lastKey, cmd.step, s.Arity, s.First, s.Last, s.Step)
		}
	}
	for name := range compat {
		if commandTable[name] == nil {
			t.Fatalf("compatibility note for unknown command %s", name)
		}
	}
	for name := range unsupportedCommands {
		if commandTable[name] != nil {
			t.Fatalf("%s is listed as unsupported but is in the table", name)
		}
	}
}
