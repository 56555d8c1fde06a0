package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// TargetKind is the system a TargetSpec names.
type TargetKind string

// The kinds of target ParseTarget knows.
const (
	// TargetRESP is a server speaking the Redis protocol: Meridian or Redis.
	TargetRESP TargetKind = "resp"
	// TargetEtcd is an etcd v3 cluster, through its JSON gateway.
	TargetEtcd TargetKind = "etcd"
	// TargetInproc is a Meridian cluster started inside the benchmarking
	// process on an emulated network; the caller starts it.
	TargetInproc TargetKind = "inproc"
)

// TargetSpec is a parsed --target value.
type TargetSpec struct {
	Kind TargetKind `json:"kind"`
	// Addrs are host:port addresses: exactly one for resp, one or more
	// for etcd, none for inproc.
	Addrs []string `json:"addrs,omitempty"`
	// Latency is the emulated network of an inproc target: "none",
	// "world" or the path of a matrix file (see netsim.MatrixFor).
	Latency string `json:"latency,omitempty"`
}

const targetSyntax = "resp://HOST:PORT, etcd://HOST:PORT[,HOST:PORT...], inproc:world, inproc:none or inproc:MATRIX.json"

// ParseTarget parses the target syntax of `meridian bench --target`:
//
//	resp://HOST:PORT                 a RESP server (Meridian, Redis); redis:// is a synonym
//	etcd://HOST:PORT[,HOST:PORT...]  an etcd v3 cluster's client URLs
//	inproc:world | inproc:none       a Meridian cluster in this process on an emulated network
//	inproc:PATH                      the same with a matrix file (a path with a / or ending in .json)
func ParseTarget(s string) (TargetSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return TargetSpec{}, fmt.Errorf("bench: empty target (want %s)", targetSyntax)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest, ok = strings.Cut(s, ":")
		if !ok || strings.ToLower(scheme) != string(TargetInproc) {
			return TargetSpec{}, fmt.Errorf("bench: target %q has no scheme (want %s; for example resp://%s)", s, targetSyntax, s)
		}
	}
	switch strings.ToLower(scheme) {
	case "resp", "redis":
		if strings.Contains(rest, ",") {
			return TargetSpec{}, fmt.Errorf("bench: target %q: a resp target takes exactly one HOST:PORT", s)
		}
		addr, err := parseHostPort(strings.TrimSuffix(rest, "/"))
		if err != nil {
			return TargetSpec{}, fmt.Errorf("bench: target %q: %w", s, err)
		}
		return TargetSpec{Kind: TargetRESP, Addrs: []string{addr}}, nil
	case "etcd":
		var addrs []string
		for _, part := range strings.Split(strings.TrimSuffix(rest, "/"), ",") {
			addr, err := parseHostPort(strings.TrimSpace(part))
			if err != nil {
				return TargetSpec{}, fmt.Errorf("bench: target %q: %w", s, err)
			}
			if slices.Contains(addrs, addr) {
				return TargetSpec{}, fmt.Errorf("bench: target %q: endpoint %s listed twice", s, addr)
			}
			addrs = append(addrs, addr)
		}
		return TargetSpec{Kind: TargetEtcd, Addrs: addrs}, nil
	case "inproc":
		lat := strings.TrimSpace(rest)
		switch {
		case lat == "":
			return TargetSpec{}, fmt.Errorf("bench: target %q: missing latency after inproc: (want inproc:world, inproc:none or inproc:MATRIX.json)", s)
		case lat == "world" || lat == "none":
		case strings.Contains(lat, "/") || strings.HasSuffix(lat, ".json"):
		default:
			return TargetSpec{}, fmt.Errorf("bench: target %q: unknown latency %q (want world, none, or the path of a matrix file containing a / or ending in .json)", s, lat)
		}
		return TargetSpec{Kind: TargetInproc, Latency: lat}, nil
	case "rediss":
		return TargetSpec{}, fmt.Errorf("bench: target %q: TLS (rediss://) is not supported", s)
	case "http", "https":
		return TargetSpec{}, fmt.Errorf("bench: target %q: unknown scheme %q (for an etcd cluster write etcd://HOST:PORT; want %s)", s, scheme, targetSyntax)
	}
	return TargetSpec{}, fmt.Errorf("bench: target %q: unknown scheme %q (want %s)", s, scheme, targetSyntax)
}

// parseHostPort checks one HOST:PORT and returns it in canonical form.
func parseHostPort(s string) (string, error) {
	if s == "" {
		return "", errors.New("missing HOST:PORT")
	}
	if strings.ContainsAny(s, "/@?# \t") {
		return "", fmt.Errorf("%q is not a plain HOST:PORT (no paths, users or options)", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if !strings.Contains(s, ":") || (strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")) {
			return "", fmt.Errorf("missing port in %q (want HOST:PORT)", s)
		}
		return "", fmt.Errorf("bad address %q: %w", s, err)
	}
	if host == "" {
		return "", fmt.Errorf("missing host in %q (want HOST:PORT, e.g. 127.0.0.1%s)", s, s)
	}
	if port == "" {
		return "", fmt.Errorf("missing port in %q (want HOST:PORT)", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port %q in %q (want 1 to 65535)", port, s)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// String returns the canonical form of the spec, which ParseTarget accepts.
func (t TargetSpec) String() string {
	switch t.Kind {
	case TargetRESP, TargetEtcd:
		return string(t.Kind) + "://" + strings.Join(t.Addrs, ",")
	case TargetInproc:
		return "inproc:" + t.Latency
	}
	return string(t.Kind)
}

// Open connects to a resp or etcd target with default options, checking
// that it is reachable. An inproc target cannot be opened here: the caller
// starts the cluster and wraps it in a FuncTarget.
func (t TargetSpec) Open(ctx context.Context) (Target, error) {
	switch t.Kind {
	case TargetRESP:
		if len(t.Addrs) != 1 {
			return nil, fmt.Errorf("bench: resp target with %d addresses, want 1", len(t.Addrs))
		}
		return NewRESPTarget(ctx, t.Addrs[0], RESPOptions{})
	case TargetEtcd:
		return NewEtcdTarget(ctx, t.Addrs, EtcdOptions{})
	case TargetInproc:
		return nil, fmt.Errorf("bench: %s is an in-process target: the caller starts the cluster", t)
	}
	return nil, fmt.Errorf("bench: unknown target kind %q", t.Kind)
}
