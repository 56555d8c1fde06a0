package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Typed services between nodes.
//
// A node registers its own gRPC services (generated from .proto files,
// such as node/nodepb) on the transport's server (Config.Services) and
// calls its peers' through Conn, a grpc.ClientConnInterface that the
// generated clients take. Both ends go through the transport: the
// request hop and the response hop cross the emulated network, the
// identity metadata (sender, addressee, cluster, wire version) travels
// with every call and is checked before the handler runs, and the bytes
// are counted per peer. A handler learns the sender with FromContext.

// WireVersion is the version of the node-to-node protocol this binary
// speaks. A peer that speaks another is refused before anything of its
// request runs, with an error naming both versions (ErrVersion). It goes
// up whenever a node's service gains or changes a method its peers call
// (3: the command engine's Query and Publish, the audit log's Audit; 4:
// the backups' BackupBase, BackupLog and Mark, and raft entries that
// carry commit stamps, raftgroup's envelope version 2, which a binary
// without them would stop on).
const WireVersion = "4"

// versionMarker starts the message of a refusal for the wire version, so
// the caller can tell it from other failed preconditions.
const versionMarker = "wire version mismatch"

// ErrVersion is wrapped by the errors of calls refused because the peer
// speaks another wire version (with ErrUnreachable and ErrNotSent: the
// peer ran nothing).
var ErrVersion = errors.New("transport: peer speaks another wire version")

// Service is a gRPC service a node serves to its peers.
type Service struct {
	Desc *grpc.ServiceDesc
	Impl any
}

type fromKey struct{}

// FromContext returns the id of the node that sent the request being
// served (set by the transport before a typed service's handler runs).
func FromContext(ctx context.Context) (uint64, bool) {
	id, ok := ctx.Value(fromKey{}).(uint64)
	return id, ok
}

// interceptor wraps every typed service's handler: identity checked, the
// handler run (unless the transport closed), the response hop emulated,
// the response counted.
func (s *service) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/meridian.transport.v1.Transport/") {
		return handler(ctx, req) // the transport's own, which check for themselves
	}
	t := s.t
	from, err := s.remoteID(ctx)
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, fromKey{}, from)
	var resp any
	var herr error
	if !t.callback(func() { resp, herr = handler(ctx, req) }) {
		return nil, status.Error(codes.Unavailable, ErrClosed.Error())
	}
	if err := t.net.Wait(ctx, t.cfg.NodeID, from); err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Unavailable, "transport: response to node %d: %v", from, err)
	}
	if m, ok := resp.(proto.Message); ok && herr == nil {
		if c := t.responseCounter(from); c != nil {
			c.Add(uint64(proto.Size(m)))
		}
	}
	return resp, herr
}

// Conn returns a connection to peer to for the generated clients of the
// typed services. Its calls fail with:
//
//   - ErrUnreachable (wrapped) if the peer is unknown, cannot be reached, or
//     either hop is dropped by the network; also wrapping ErrNotSent when
//     the request certainly never ran at the peer (request hop dropped, no
//     connection, refused for another cluster or wire version, or because
//     this node's certificate does not back its id: ErrIdentity);
//   - ctx's error (wrapped) if ctx ends first;
//   - ErrClosed once the Transport is closed;
//   - the handler's own gRPC status otherwise.
func (t *Transport) Conn(to uint64) grpc.ClientConnInterface { return peerConn{t: t, to: to} }

type peerConn struct {
	t  *Transport
	to uint64
}

func (c peerConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	p, err := c.t.peer(c.to)
	if err != nil {
		return err
	}
	return p.invoke(ctx, method, args, reply, opts...)
}

func (c peerConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("transport: streams between nodes belong to the transport itself")
}

// invoke runs a unary call of a typed service on the peer.
func (p *peer) invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	t := p.t
	fail := func(err error) error {
		switch {
		case t.ctx.Err() != nil:
			return ErrClosed
		case ctx.Err() != nil:
			return fmt.Errorf("transport: %s to peer %d: %w", method, p.id, ctx.Err())
		case errors.Is(err, ErrUnreachable) || errors.Is(err, ErrClosed):
			return err
		default:
			return fmt.Errorf("%w: %s to peer %d: %w", ErrUnreachable, method, p.id, err)
		}
	}
	notSent := func(err error) error {
		err = fail(err)
		if errors.Is(err, ErrUnreachable) {
			return fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return err
	}
	// The request hop.
	if err := t.net.Wait(ctx, t.cfg.NodeID, p.id); err != nil {
		return notSent(err)
	}
	conn, err := p.ready(ctx)
	if err != nil {
		return notSent(err)
	}
	if m, ok := args.(proto.Message); ok {
		p.sent.Add(uint64(proto.Size(m)))
	}
	err = conn.Invoke(p.outgoing(ctx), method, args, reply, opts...)
	if err == nil {
		return nil
	}
	if refused := refusal(err); refused != nil {
		return notSent(refused)
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			return fail(err)
		}
		return err // the handler's own answer
	}
	return fail(err)
}

// refusal turns a peer's refusal of the request before it ran into an
// error (ErrWrongCluster for another cluster, ErrVersion for another wire
// version, ErrIdentity for a sender its certificate does not back); nil for any other error. The node services' handlers answer
// their own failures inside their responses, so a gRPC status of these
// kinds can only come from the transport's checks.
func refusal(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	switch {
	case st.Code() == codes.PermissionDenied:
		return fmt.Errorf("%w: %s", ErrWrongCluster, st.Message())
	case st.Code() == codes.FailedPrecondition && strings.HasPrefix(st.Message(), versionMarker):
		return fmt.Errorf("%w: %s", ErrVersion, st.Message())
	case st.Code() == codes.Unauthenticated && strings.HasPrefix(st.Message(), identityMarker):
		return fmt.Errorf("%w: %s", ErrIdentity, st.Message())
	case st.Code() == codes.FailedPrecondition, st.Code() == codes.InvalidArgument:
		// Misaddressed (another node answers at the address) or missing
		// identity: refused before anything ran.
		return errors.New(st.Message())
	}
	return nil
}
