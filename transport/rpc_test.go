package transport

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/transport/transportpb"
)

// healthServer is a typed service for the tests: it answers SERVING for
// "ok", NotFound otherwise, and records who asked.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	mu   sync.Mutex
	from []uint64
}

func (h *healthServer) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no sender in the context")
	}
	h.mu.Lock()
	h.from = append(h.from, id)
	h.mu.Unlock()
	if req.GetService() != "ok" {
		return nil, status.Errorf(codes.NotFound, "no service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func TestTypedServices(t *testing.T) {
	nw, err := netsim.New(netsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nw.Close)
	hs := &healthServer{}
	b := startNode(t, Config{NodeID: 2, Region: "r", Net: nw, Services: []Service{{Desc: &healthpb.Health_ServiceDesc, Impl: hs}}})
	a := startNode(t, Config{NodeID: 1, Region: "r", Net: nw})
	other := startNode(t, Config{NodeID: 3, Region: "r", Cluster: "elsewhere"})
	a.tr.SetPeer(b.peer("r"))
	other.tr.SetPeer(b.peer("r"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(a.tr.Conn(b.id))

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("typed call: %v %v", resp, err)
	}
	hs.mu.Lock()
	if len(hs.from) != 1 || hs.from[0] != a.id {
		t.Fatalf("the handler saw senders %v, want [%d]", hs.from, a.id)
	}
	hs.mu.Unlock()
	// The handler's own status reaches the caller as it is.
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound || errors.Is(err, ErrUnreachable) {
		t.Fatalf("a handler's error: %v", err)
	}
	// A cut link: not sent.
	nw.BlockLink(a.id, b.id)
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"}); !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a call over a cut link: %v", err)
	}
	nw.Heal()
	// Another cluster: refused before the handler runs.
	if _, err := healthpb.NewHealthClient(other.tr.Conn(b.id)).Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"}); !errors.Is(err, ErrWrongCluster) || !errors.Is(err, ErrNotSent) {
		t.Fatalf("a call from another cluster: %v", err)
	}
	hs.mu.Lock()
	if len(hs.from) != 2 {
		t.Fatalf("the handler ran %d times, want 2 (the refused call must not run)", len(hs.from))
	}
	hs.mu.Unlock()
	// A stream cannot be opened through Conn.
	if _, err := a.tr.Conn(b.id).NewStream(ctx, &grpc.StreamDesc{}, "/x/y"); err == nil {
		t.Fatal("Conn opened a stream")
	}
}

// TestWireVersionRefused: a peer that speaks another wire version is
// refused before anything runs, with a message naming both versions that
// the caller turns into ErrVersion.
func TestWireVersionRefused(t *testing.T) {
	b := startNode(t, Config{NodeID: 2, Region: "r"})
	conn, err := grpc.NewClient(b.tr.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, version := range []string{"1", ""} {
		md := metadata.Pairs(mdFrom, "1", mdTo, "2", mdCluster, "test")
		if version != "" {
			md.Append(mdVersion, version)
		}
		err := conn.Invoke(metadata.NewOutgoingContext(ctx, md), transportpb.Transport_Ping_FullMethodName, &transportpb.Done{}, new(transportpb.Done))
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "speaks wire version") || !strings.Contains(err.Error(), WireVersion) {
			t.Fatalf("version %q: %v", version, err)
		}
		if r := refusal(err); !errors.Is(r, ErrVersion) {
			t.Fatalf("version %q: refusal %v, want ErrVersion", version, r)
		}
	}
}
