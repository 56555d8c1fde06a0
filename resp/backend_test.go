package resp

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/raftgroup"
)

// fakeBackend is a Backend without a cluster: one keyspace, plain SET
// and GET in a map, and a switch that makes every write fail. Methods a
// test does not need panic (the embedded nil interface).
type fakeBackend struct {
	Backend
	guard *auth.Guard

	mu     sync.Mutex
	data   map[string][]byte
	writes []kv.Command
	fail   error
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{guard: auth.NewGuard(auth.GuardConfig{}), data: map[string][]byte{}}
}

func (f *fakeBackend) Guard() *auth.Guard { return f.guard }
func (f *fakeBackend) ID() uint64         { return 1 }
func (f *fakeBackend) Region() string     { return "lab" }
func (f *fakeBackend) Cluster() string    { return "fake" }
func (f *fakeBackend) NowMS() int64       { return 1_700_000_000_000 }
func (f *fakeBackend) Limits() node.Limits {
	return node.Limits{MaxKeyBytes: 1 << 10, MaxValueBytes: 1 << 20}
}
func (f *fakeBackend) Metadata() *metadata.State {
	return &metadata.State{Keyspaces: map[string]*metadata.Keyspace{
		"default": {KeyspaceSpec: metadata.KeyspaceSpec{Name: "default", Strategy: metadata.Sync}},
	}}
}
func (f *fakeBackend) BlockedClients() int                  { return 0 }
func (f *fakeBackend) AddPubSubSink(node.PubSubSink) func() { return func() {} }

func (f *fakeBackend) Write(_ context.Context, keyspace string, cmd kv.Command) (kv.Result, node.Answer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return kv.Result{}, node.Answer{}, f.fail
	}
	f.writes = append(f.writes, cmd)
	if cmd.Op != kv.OpSet {
		return kv.Result{}, node.Answer{}, errors.New("fake: only SET")
	}
	f.data[keyspace+"/"+string(cmd.Args[0])] = append([]byte(nil), cmd.Args[1]...)
	return kv.Result{N: 1}, node.Answer{Region: "lab", Node: 1, Consistency: "strong"}, nil
}

// WriteAsync writes as Write does, from a goroutine of its own (the
// arguments copied first: they are the caller's).
func (f *fakeBackend) WriteAsync(keyspace string, cmd kv.Command, done func(kv.Result, node.Answer, error)) bool {
	args := make([][]byte, len(cmd.Args))
	for i, a := range cmd.Args {
		args[i] = slices.Clone(a)
	}
	cmd.Args = args
	go func() { done(f.Write(context.Background(), keyspace, cmd)) }()
	return true
}

func (f *fakeBackend) GetRecord(_ context.Context, keyspace string, key []byte, _ node.Consistency) (kv.Record, bool, node.Answer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[keyspace+"/"+string(key)]
	return kv.Record{Type: kv.TypeString, Payload: v}, ok, node.Answer{Region: "lab", Node: 1, Consistency: "strong"}, nil
}

// TestServeOverAFakeBackend: the RESP server runs against any Backend,
// no cluster needed. Commands reach the backend as the commands the node
// would get (SET as an OpSet stamped with the backend's clock), answers
// come back as Redis replies, and a backend error is an error reply on a
// connection that goes on serving.
func TestServeOverAFakeBackend(t *testing.T) {
	f := newFakeBackend()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(ln, f, Config{DefaultKeyspace: "default"})
	defer s.Close()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET: %q %v", v, err)
	}
	if _, err := c.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of a missing key: %v", err)
	}
	f.mu.Lock()
	if len(f.writes) != 1 || f.writes[0].Op != kv.OpSet || f.writes[0].NowMS != f.NowMS() {
		t.Fatalf("the backend got %+v", f.writes)
	}
	f.fail = raftgroup.ErrNoLeader
	f.mu.Unlock()
	if err := c.Set(ctx, "k", "w", 0).Err(); err == nil {
		t.Fatal("a failed write was acknowledged")
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after a failed write: %q %v", v, err)
	}
}
