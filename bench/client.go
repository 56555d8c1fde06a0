package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned (possibly wrapped) by Client.Read for a key that
// does not exist. Run counts such reads apart from errors.
var ErrNotFound = errors.New("bench: key not found")

// Client is one simulated client: one connection to the system under test,
// used by one goroutine at a time.
type Client interface {
	// Read returns the value of key, or an error wrapping ErrNotFound.
	Read(ctx context.Context, key string) ([]byte, error)
	// Update sets key to value. The client must not keep value after
	// Update returns: the runner reuses the buffer.
	Update(ctx context.Context, key string, value []byte) error
	// Close releases the connection.
	Close() error
}

// BatchOp is one operation of a pipelined batch (see Pipeliner): a read of
// Key, or, when Write is set, a write of Value to Key.
type BatchOp struct {
	Key   string
	Write bool
	// Value is the value written; the client must not keep it after
	// Pipeline returns (the runner reuses the buffer).
	Value []byte
	// Err is set by Pipeline: nil, an error wrapping ErrNotFound (a read
	// of a missing key), or the operation's failure.
	Err error
}

// Pipeliner is a Client that can keep several operations in flight on its
// one connection, as redis-benchmark -P does: Run uses it when
// Params.Pipeline is more than 1.
type Pipeliner interface {
	Client
	// Pipeline sends every operation of ops without waiting for replies,
	// then reads every reply, and sets each operation's Err. It returns
	// the first failure, if any (not a read of a missing key).
	Pipeline(ctx context.Context, ops []BatchOp) error
}

// ErrNoPipeline is returned (wrapped) by Run when Params.Pipeline asks for
// more than one operation in flight and the target's clients cannot
// pipeline (they do not implement Pipeliner).
var ErrNoPipeline = errors.New("bench: the target's clients send one request at a time and cannot pipeline")

// Target is a system under test: it makes one Client per simulated client.
type Target interface {
	// Name identifies the target in reports, e.g. "resp://127.0.0.1:6379".
	Name() string
	// NewClient opens a new client. It may be called from several
	// goroutines.
	NewClient(ctx context.Context) (Client, error)
	// Close releases what the target holds (not the clients: close those
	// first).
	Close() error
}

// FuncTarget adapts a function to a Target, for in-process targets such as
// a Meridian cluster started by the caller.
type FuncTarget struct {
	Label string
	New   func(ctx context.Context) (Client, error)
	// Done is called by Close; nil means nothing to release.
	Done func() error
}

// Name implements Target.
func (f *FuncTarget) Name() string { return f.Label }

// NewClient implements Target.
func (f *FuncTarget) NewClient(ctx context.Context) (Client, error) { return f.New(ctx) }

// Close implements Target.
func (f *FuncTarget) Close() error {
	if f.Done == nil {
		return nil
	}
	return f.Done()
}

// Default timeouts of the network targets.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultOpTimeout   = 10 * time.Second
)

// RESPOptions tunes a RESP target. The zero value is fine.
type RESPOptions struct {
	// DialTimeout bounds connecting and the reachability check; 0 means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// OpTimeout bounds reading or writing one command; 0 means
	// DefaultOpTimeout.
	OpTimeout time.Duration
	// Username and Password for AUTH, if the server wants them.
	Username, Password string
	// TLS, if set, speaks TLS to the server (a Meridian node with
	// certificates, Redis with tls-port).
	TLS *tls.Config
	// ConnectCommands are sent on every new connection before it is used,
	// e.g. {"MERIDIAN.CONSISTENCY", "eventual"} to benchmark Meridian's
	// local reads.
	ConnectCommands [][]any
}

// RESPTarget benchmarks a server that speaks the Redis protocol (Meridian,
// Redis, Valkey...) with GET and SET. Every client has its own connection,
// like redis-benchmark -c.
type RESPTarget struct {
	addr string
	opts RESPOptions
}

// NewRESPTarget checks that a RESP server answers PING at addr (host:port)
// and returns a target for it. An unreachable or unhappy server is reported
// here, before any load is sent.
func NewRESPTarget(ctx context.Context, addr string, opts RESPOptions) (*RESPTarget, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	t := &RESPTarget{addr: addr, opts: opts}
	rdb := t.newRedis(1) // fail fast: this is the reachability check
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+opts.OpTimeout)
	defer cancel()
	res, err := rdb.Ping(pctx).Result()
	switch {
	case err != nil && isRedisReply(err):
		return nil, fmt.Errorf("bench: RESP target %s answered PING with an error: %w", addr, err)
	case err != nil:
		return nil, fmt.Errorf("bench: RESP target %s is unreachable (or does not speak RESP): %w", addr, err)
	case res != "PONG":
		return nil, fmt.Errorf("bench: RESP target %s answered PING with %q, not PONG", addr, res)
	}
	return t, nil
}

func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// newRedis returns a one-connection client; dialRetries 0 means go-redis's
// default.
func (t *RESPTarget) newRedis(dialRetries int) *redis.Client {
	o := &redis.Options{
		Addr:                  t.addr,
		Protocol:              2,
		Username:              t.opts.Username,
		Password:              t.opts.Password,
		DialTimeout:           t.opts.DialTimeout,
		ReadTimeout:           t.opts.OpTimeout,
		WriteTimeout:          t.opts.OpTimeout,
		ContextTimeoutEnabled: true,
		PoolSize:              1,
		MaxRetries:            -1, // a retry would hide a failure inside a latency
		DisableIdentity:       true,
		DialerRetries:         dialRetries,
		TLSConfig:             t.opts.TLS,
	}
	if len(t.opts.ConnectCommands) > 0 {
		cmds := t.opts.ConnectCommands
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			for _, c := range cmds {
				if err := cn.Do(ctx, c...).Err(); err != nil {
					return fmt.Errorf("bench: connect command %v: %w", c, err)
				}
			}
			return nil
		}
	}
	return redis.NewClient(o)
}

// Name implements Target.
func (t *RESPTarget) Name() string {
	if t.opts.TLS != nil {
		return "resp+tls://" + t.addr
	}
	return "resp://" + t.addr
}

// NewClient implements Target. The connection is opened by the first
// operation.
func (t *RESPTarget) NewClient(context.Context) (Client, error) {
	return &respClient{rdb: t.newRedis(0)}, nil
}

// Close implements Target.
func (t *RESPTarget) Close() error { return nil }

type respClient struct {
	rdb *redis.Client
	// For Pipeline: go-redis's pipeline (reusable after Exec) and the
	// commands of the batch.
	pipe redis.Pipeliner
	cmds []redis.Cmder
}

func (c *respClient) Read(ctx context.Context, key string) ([]byte, error) {
	v, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return v, err
}

func (c *respClient) Update(ctx context.Context, key string, value []byte) error {
	return c.rdb.Set(ctx, key, value, 0).Err()
}

// Pipeline implements Pipeliner: the batch's commands go out in one write
// on the client's connection, then every reply is read.
func (c *respClient) Pipeline(ctx context.Context, ops []BatchOp) error {
	if c.pipe == nil {
		c.pipe = c.rdb.Pipeline()
	}
	c.cmds = c.cmds[:0]
	for _, op := range ops {
		if op.Write {
			c.cmds = append(c.cmds, c.pipe.Set(ctx, op.Key, op.Value, 0))
		} else {
			c.cmds = append(c.cmds, c.pipe.Get(ctx, op.Key))
		}
	}
	_, _ = c.pipe.Exec(ctx) // every command carries its own error
	var first error
	for i, cmd := range c.cmds {
		err := cmd.Err()
		if errors.Is(err, redis.Nil) {
			err = fmt.Errorf("%w: %s", ErrNotFound, ops[i].Key)
		} else if err != nil && first == nil {
			first = err
		}
		ops[i].Err = err
		c.cmds[i] = nil
	}
	return first
}

func (c *respClient) Close() error { return c.rdb.Close() }

// Conn is a raw RESP connection for the workloads that need more than GET
// and SET (INCR, MERIDIAN.LAST): one connection, used by one goroutine at
// a time.
type Conn interface {
	// Do sends one command and returns its reply as go-redis decodes it
	// (string, int64, []any, map...). A null reply is an error wrapping
	// ErrNotFound.
	Do(ctx context.Context, args ...any) (any, error)
	// Close releases the connection.
	Close() error
}

// NewConn opens a raw connection (see Conn), with the target's connect
// commands. The connection is opened by the first command.
func (t *RESPTarget) NewConn(context.Context) (Conn, error) {
	return &respConn{rdb: t.newRedis(0)}, nil
}

type respConn struct{ rdb *redis.Client }

func (c *respConn) Do(ctx context.Context, args ...any) (any, error) {
	v, err := c.rdb.Do(ctx, args...).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, args)
	}
	return v, err
}

func (c *respConn) Close() error { return c.rdb.Close() }

// replyString returns a bulk or simple string reply as a string.
func replyString(v any) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	case []byte:
		return string(s), nil
	}
	return "", fmt.Errorf("bench: reply %v (%T) is not a string", v, v)
}

// replyInt returns an integer reply, or a string holding an integer (GET
// of a counter), as an int64.
func replyInt(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case string, []byte:
		s, _ := replyString(n)
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: reply %q is not an integer", s)
		}
		return i, nil
	}
	return 0, fmt.Errorf("bench: reply %v (%T) is not an integer", v, v)
}

// LastAnswer is what MERIDIAN.LAST says of the previous command on a
// connection: how Meridian served it.
type LastAnswer struct {
	Region      string
	Node        int64
	Consistency string
	Forwarded   bool
	// StalenessMS bounds the answer's staleness: 0 for strong answers,
	// -1 when unknown.
	StalenessMS int64
}

// parseLast decodes a MERIDIAN.LAST reply: a map (RESP3) or an array of
// field, value pairs (RESP2).
func parseLast(v any) (LastAnswer, error) {
	fields := map[string]any{}
	switch m := v.(type) {
	case []any:
		if len(m)%2 != 0 {
			return LastAnswer{}, fmt.Errorf("bench: MERIDIAN.LAST answered an array of %d elements, not field/value pairs", len(m))
		}
		for i := 0; i < len(m); i += 2 {
			k, err := replyString(m[i])
			if err != nil {
				return LastAnswer{}, err
			}
			fields[k] = m[i+1]
		}
	case map[any]any:
		for k, fv := range m {
			ks, err := replyString(k)
			if err != nil {
				return LastAnswer{}, err
			}
			fields[ks] = fv
		}
	case map[string]any:
		fields = m
	default:
		return LastAnswer{}, fmt.Errorf("bench: MERIDIAN.LAST answered %v (%T), not a map", v, v)
	}
	var a LastAnswer
	var err error
	need := func(name string) any {
		fv, ok := fields[name]
		if !ok && err == nil {
			err = fmt.Errorf("bench: MERIDIAN.LAST has no field %s", name)
		}
		return fv
	}
	cons, stale := need("consistency"), need("staleness_ms")
	if err != nil {
		return a, err
	}
	if a.Consistency, err = replyString(cons); err != nil {
		return a, err
	}
	if a.StalenessMS, err = replyInt(stale); err != nil {
		return a, err
	}
	if r, ok := fields["region"]; ok {
		a.Region, _ = replyString(r)
	}
	if n, ok := fields["node"]; ok {
		a.Node, _ = replyInt(n)
	}
	if f, ok := fields["forwarded"]; ok {
		fw, _ := replyInt(f)
		a.Forwarded = fw != 0
	}
	return a, nil
}
