package resp

import (
	"context"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// Backend is what the commands run against: a node (*node.Node, the
// only implementation outside tests) or a fake. The server holds nothing
// else of the node, so every command's effect goes through these
// methods, and a test can serve RESP over a backend of its own (see
// backend_test.go).
type Backend interface {
	AddPubSubSink(s node.PubSubSink) func()
	Audit(rec node.AuditRecord) error
	BlockedClients() int
	BlockingWrite(ctx context.Context, keyspace string, keys [][]byte, args [][]byte, timeout time.Duration) (kv.Result, node.Answer, error)
	Cluster() string
	DBSize(ctx context.Context, keyspace string, c node.Consistency) (int64, node.Answer, error)
	DeleteKeys(ctx context.Context, keyspace string, keys [][]byte) (int64, node.Answer, error)
	DeleteUser(ctx context.Context, name string) (bool, error)
	FlushDB(ctx context.Context, keyspace string) (node.Answer, error)
	GetRecord(ctx context.Context, keyspace string, key []byte, c node.Consistency) (kv.Record, bool, node.Answer, error)
	Guard() *auth.Guard
	ID() uint64
	Limits() node.Limits
	LocalShards() []node.ShardInfo
	MGet(ctx context.Context, keyspace string, keys [][]byte, c node.Consistency) ([]kv.Record, []bool, node.Answer, error)
	MSet(ctx context.Context, keyspace string, pairs [][]byte) (node.Answer, error)
	Metadata() *metadata.State
	NowMS() int64
	Publish(channel, message []byte) int
	Query(ctx context.Context, keyspace string, key []byte, args [][]byte, c node.Consistency) ([]byte, node.Answer, error)
	RandomKey(ctx context.Context, keyspace string, c node.Consistency) ([]byte, node.Answer, error)
	Region() string
	SameShard(keyspace string, keys [][]byte) (int, error)
	Scan(ctx context.Context, keyspace, cursor, match string, count int, c node.Consistency) ([][]byte, string, node.Answer, error)
	Session(keyspace, token string, a node.Answer) (string, error)
	SetUser(ctx context.Context, name string, rules []string) (*auth.User, error)
	Streams() []node.StreamStatus
	User(name string) (*auth.User, bool)
	Users() []*auth.User
	Write(ctx context.Context, keyspace string, cmd kv.Command) (kv.Result, node.Answer, error)
	WriteAsync(keyspace string, cmd kv.Command, done func(kv.Result, node.Answer, error)) bool
}

var _ Backend = (*node.Node)(nil)
