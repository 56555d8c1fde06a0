package node

import (
	"errors"
	"testing"
)

func TestCursor(t *testing.T) {
	for _, c := range []struct {
		shard int
		key   string
	}{{0, ""}, {2, "user:1"}, {1, "\x00\xff:"}} {
		s := formatCursor(c.shard, []byte(c.key))
		shard, key, err := parseCursor(s, 3, 100)
		if err != nil || shard != c.shard || string(key) != c.key {
			t.Errorf("cursor %q -> %d %q %v", s, shard, key, err)
		}
	}
	if shard, key, err := parseCursor("0", 3, 100); err != nil || shard != 0 || key != nil {
		t.Errorf(`"0": %d %q %v`, shard, key, err)
	}
	for _, bad := range []string{"", "1", "3:", "-1:", "01:", "x:", "1:!!", "1:" + string(make([]byte, 200))} {
		if _, _, err := parseCursor(bad, 3, 100); !errors.Is(err, ErrBadCursor) {
			t.Errorf("parseCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}
