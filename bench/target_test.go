package bench

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in   string
		want TargetSpec
		str  string
	}{
		{"resp://127.0.0.1:6379", TargetSpec{Kind: TargetRESP, Addrs: []string{"127.0.0.1:6379"}}, "resp://127.0.0.1:6379"},
		{"redis://localhost:7000/", TargetSpec{Kind: TargetRESP, Addrs: []string{"localhost:7000"}}, "resp://localhost:7000"},
		{" RESP://[::1]:6379 ", TargetSpec{Kind: TargetRESP, Addrs: []string{"[::1]:6379"}}, "resp://[::1]:6379"},
		{"etcd://127.0.0.1:2379", TargetSpec{Kind: TargetEtcd, Addrs: []string{"127.0.0.1:2379"}}, "etcd://127.0.0.1:2379"},
		{"etcd://a:1, b:2,c:3", TargetSpec{Kind: TargetEtcd, Addrs: []string{"a:1", "b:2", "c:3"}}, "etcd://a:1,b:2,c:3"},
		{"inproc:world", TargetSpec{Kind: TargetInproc, Latency: "world"}, "inproc:world"},
		{"inproc:none", TargetSpec{Kind: TargetInproc, Latency: "none"}, "inproc:none"},
		{"inproc://world", TargetSpec{Kind: TargetInproc, Latency: "world"}, "inproc:world"},
		{"inproc:./lat.json", TargetSpec{Kind: TargetInproc, Latency: "./lat.json"}, "inproc:./lat.json"},
		{"inproc:/tmp/m", TargetSpec{Kind: TargetInproc, Latency: "/tmp/m"}, "inproc:/tmp/m"},
	} {
		got, err := ParseTarget(c.in)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", c.in, err)
			continue
		}
		if got.Kind != c.want.Kind || got.Latency != c.want.Latency || !slices.Equal(got.Addrs, c.want.Addrs) {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("ParseTarget(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
		if again, err := ParseTarget(got.String()); err != nil || again.String() != got.String() {
			t.Errorf("round trip of %q: %+v %v", got, again, err)
		}
	}
	for _, c := range []struct{ in, msg string }{
		{"", "empty target"},
		{"   ", "empty target"},
		{"127.0.0.1:6379", "no scheme"},
		{"localhost", "no scheme"},
		{"mysql://h:1", `unknown scheme "mysql"`},
		{"http://h:2379", "etcd://HOST:PORT"},
		{"rediss://h:6380", "TLS"},
		{"resp://", "missing HOST:PORT"},
		{"resp://127.0.0.1", "missing port"},
		{"resp://127.0.0.1:", "missing port"},
		{"resp://[::1]", "missing port"},
		{"resp://:6379", "missing host"},
		{"resp://h:0", "bad port"},
		{"resp://h:65536", "bad port"},
		{"resp://h:redis", "bad port"},
		{"resp://h:1,h:2", "exactly one"},
		{"resp://user@h:1", "not a plain HOST:PORT"},
		{"resp://h:1/0", "not a plain HOST:PORT"},
		{"resp://::1:6379", "bad address"},
		{"etcd://", "missing HOST:PORT"},
		{"etcd://a:1,,b:2", "missing HOST:PORT"},
		{"etcd://a:1,b", "missing port"},
		{"etcd://a:1,a:1", "listed twice"},
		{"inproc:", "missing latency"},
		{"inproc:mars", `unknown latency "mars"`},
	} {
		_, err := ParseTarget(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseTarget(%q): error %v, want one containing %q", c.in, err, c.msg)
		}
	}
}

func TestTargetSpecOpenInproc(t *testing.T) {
	s, err := ParseTarget("inproc:world")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "in-process") {
		t.Fatalf("Open of an inproc target: %v", err)
	}
}
