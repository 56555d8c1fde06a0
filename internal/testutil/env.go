package testutil

import (
	"os"
	"strconv"
	"testing"
)

// EnvInt returns the integer in the environment variable name (a knob
// that scales a long test up), or def when it is unset. A value that is
// not a positive integer fails the test rather than being ignored.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}
