package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// EtcdOptions tunes an etcd target. The zero value is fine.
type EtcdOptions struct {
	// DialTimeout bounds connecting and the reachability check; 0 means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// OpTimeout bounds one request; 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// Serializable makes reads serializable (answered by the member from
	// its own state) instead of linearizable (etcd's default: a quorum
	// round through the leader).
	Serializable bool
}

// EtcdTarget benchmarks an etcd v3 cluster through its gRPC-JSON gateway
// (POST /v3/kv/put and /v3/kv/range, keys and values in base64), using only
// net/http. Clients are spread over the endpoints round-robin, each with its
// own connection.
type EtcdTarget struct {
	endpoints []string // base URLs, http://host:port
	opts      EtcdOptions
	next      atomic.Uint64
}

// NewEtcdTarget checks that every endpoint (host:port or http://host:port)
// answers a range request on its JSON gateway and returns a target for them.
func NewEtcdTarget(ctx context.Context, endpoints []string, opts EtcdOptions) (*EtcdTarget, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("bench: etcd target without endpoints")
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	t := &EtcdTarget{opts: opts}
	for _, e := range endpoints {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "" {
			return nil, errors.New("bench: empty etcd endpoint")
		}
		if strings.HasPrefix(e, "https://") {
			return nil, fmt.Errorf("bench: etcd endpoint %s: TLS is not supported", e)
		}
		if !strings.HasPrefix(e, "http://") {
			e = "http://" + e
		}
		t.endpoints = append(t.endpoints, e)
	}
	for _, e := range t.endpoints {
		c := t.newClient(e)
		pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+opts.OpTimeout)
		_, err := c.Read(pctx, "bench-reachability-check")
		cancel()
		c.Close()
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("bench: etcd endpoint %s is unreachable or not an etcd v3 JSON gateway: %w", e, err)
		}
	}
	return t, nil
}

// Name implements Target.
func (t *EtcdTarget) Name() string {
	hosts := make([]string, len(t.endpoints))
	for i, e := range t.endpoints {
		hosts[i] = strings.TrimPrefix(e, "http://")
	}
	return "etcd://" + strings.Join(hosts, ",")
}

// NewClient implements Target.
func (t *EtcdTarget) NewClient(context.Context) (Client, error) {
	e := t.endpoints[(t.next.Add(1)-1)%uint64(len(t.endpoints))]
	return t.newClient(e), nil
}

// Close implements Target.
func (t *EtcdTarget) Close() error { return nil }

func (t *EtcdTarget) newClient(endpoint string) *etcdClient {
	dialer := &net.Dialer{Timeout: t.opts.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &etcdClient{
		base:         endpoint,
		http:         &http.Client{Transport: tr, Timeout: t.opts.OpTimeout},
		tr:           tr,
		serializable: t.opts.Serializable,
	}
}

type etcdClient struct {
	base         string
	http         *http.Client
	tr           *http.Transport
	serializable bool
	buf          bytes.Buffer
}

// The JSON shapes of the gateway; []byte fields travel as base64.
type etcdPutRequest struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

type etcdRangeRequest struct {
	Key          []byte `json:"key"`
	Serializable bool   `json:"serializable,omitempty"`
}

type etcdRangeResponse struct {
	Kvs []struct {
		Value []byte `json:"value"`
	} `json:"kvs"`
}

type etcdError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Code    int    `json:"code"`
}

func (c *etcdClient) Read(ctx context.Context, key string) ([]byte, error) {
	var out etcdRangeResponse
	if err := c.post(ctx, "/v3/kv/range", etcdRangeRequest{Key: []byte(key), Serializable: c.serializable}, &out); err != nil {
		return nil, err
	}
	if len(out.Kvs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return out.Kvs[0].Value, nil
}

func (c *etcdClient) Update(ctx context.Context, key string, value []byte) error {
	return c.post(ctx, "/v3/kv/put", etcdPutRequest{Key: []byte(key), Value: value}, nil)
}

func (c *etcdClient) post(ctx context.Context, path string, in, out any) error {
	c.buf.Reset()
	if err := json.NewEncoder(&c.buf).Encode(in); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(c.buf.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 2*MaxValueSize))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e etcdError
		if json.Unmarshal(body, &e) == nil && (e.Message != "" || e.Error != "") {
			msg := e.Message
			if msg == "" {
				msg = e.Error
			}
			return fmt.Errorf("%s: %s: %s (code %d)", path, resp.Status, msg, e.Code)
		}
		return fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(truncate(body, 200))))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: bad answer: %w", path, err)
	}
	return nil
}

func (c *etcdClient) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
