package resp

import (
	"strings"
	"testing"
	"time"
)

func TestCursorTable(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := newCursorTable(2, time.Minute)
	tab.nowFunc = func() time.Time { return now }
	a := tab.put("ks", "0:YQ")
	b := tab.put("ks", "1:Yg")
	if a == 0 || b == 0 || a == b {
		t.Fatalf("ids %d %d", a, b)
	}
	if cur, ok := tab.get("ks", a); !ok || cur != "0:YQ" {
		t.Fatalf("get a: %q %v", cur, ok)
	}
	if _, ok := tab.get("other", a); ok {
		t.Fatal("a cursor was valid in another keyspace")
	}
	if cur, ok := tab.get("ks", a); !ok || cur != "0:YQ" {
		t.Fatal("a cursor must stay valid when reused (retries)")
	}
	c := tab.put("ks", "2:Yw") // evicts the oldest, a
	if _, ok := tab.get("ks", a); ok {
		t.Fatal("the oldest cursor survived beyond the table's size")
	}
	if _, ok := tab.get("ks", c); !ok {
		t.Fatal("the newest cursor is missing")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := tab.get("ks", c); ok {
		t.Fatal("a cursor outlived its TTL")
	}
	if tab.byAge.Len() != 0 || len(tab.byID) != 0 || tab.bytes != 0 {
		t.Fatalf("expired cursors still held: %d %d %d", tab.byAge.Len(), len(tab.byID), tab.bytes)
	}
	// The table's bytes are bounded too.
	big := strings.Repeat("k", maxCursorBytes/2+1)
	tab.put("ks", big)
	tab.put("ks", big)
	if tab.bytes > maxCursorBytes || tab.byAge.Len() != 1 {
		t.Fatalf("%d bytes in %d cursors", tab.bytes, tab.byAge.Len())
	}
}
