package resp

import (
	"strings"
	"testing"
)

// TestCommandNamesFitLookup: every command is found by its name in any
// ASCII case, and only by such a name.
func TestCommandNamesFitLookup(t *testing.T) {
	c := &client{}
	for name, cmd := range commandTable {
		if len(name) > maxCommandName {
			t.Errorf("command %q is longer than maxCommandName (%d)", name, maxCommandName)
		}
		if name != strings.ToLower(name) || cmd.name != name {
			t.Errorf("command %q is filed as %q", cmd.name, name)
		}
		for _, form := range []string{name, strings.ToUpper(name), mixedCase(name)} {
			if got := c.lookup([]byte(form)); got != cmd {
				t.Errorf("lookup(%q) = %v, want %q", form, got, name)
			}
		}
	}
	for _, name := range []string{"", "nosuchcommand", strings.Repeat("g", maxCommandName+1), "g\u0130t", "\u212aeys"} {
		if got := c.lookup([]byte(name)); got != nil {
			t.Errorf("lookup(%q) = %q, want nothing", name, got.name)
		}
	}
}

// mixedCase upper-cases every other letter of s.
func mixedCase(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i += 2 {
		if 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// TestPermissionOfAllocations: finding a command's permission allocates
// nothing for a command without subcommand entries (every command asks,
// on every call); a "command|subcommand" key is built only for those
// that have entries.
func TestPermissionOfAllocations(t *testing.T) {
	args := [][]byte{[]byte("get"), []byte("Key:000001")}
	if n := testing.AllocsPerRun(1000, func() { _, _ = permissionOf("get", args) }); n != 0 {
		t.Fatalf("permissionOf(GET key) allocates %v times", n)
	}
	if p, _ := permissionOf("client", [][]byte{[]byte("client"), []byte("LIST")}); p != subcommandPermissions["client|list"] {
		t.Fatalf("CLIENT LIST: %+v", p)
	}
}
