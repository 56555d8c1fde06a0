package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/transport/transportpb"
)

// The raft service is generated from transportpb/transport.proto.
const (
	// mdFrom and mdTo carry the sender's and the addressee's node ids,
	// mdCluster the sender's cluster identity, mdVersion the wire version.
	mdFrom    = "meridian-from"
	mdTo      = "meridian-to"
	mdCluster = "meridian-cluster"
	mdVersion = "meridian-wire-version"

	// refusalWarnInterval is the least time between two warnings about
	// requests from one node of another cluster.
	refusalWarnInterval = time.Minute

	// snapshotPreallocBytes caps the buffer allocated for a snapshot before
	// its bytes arrive.
	snapshotPreallocBytes = 8 << 20
)

// service is the receiving side of a Transport.
type service struct {
	transportpb.UnimplementedTransportServer
	t *Transport
}

var _ transportpb.TransportServer = (*service)(nil)

// remoteID returns the sender's node id from the metadata and checks that
// the request comes from this node's cluster and is meant for this node.
// A request from another cluster is refused with PermissionDenied (the
// caller turns it into ErrWrongCluster) and a warning, at most one a
// minute per sending node and cluster.
func (s *service) remoteID(ctx context.Context) (uint64, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	from, to, cluster := md.Get(mdFrom), md.Get(mdTo), md.Get(mdCluster)
	if len(from) != 1 || len(to) != 1 {
		return 0, status.Error(codes.InvalidArgument, "transport: missing node id metadata")
	}
	if err := s.certifiedID(ctx, from[0]); err != nil {
		return 0, err
	}
	if v := md.Get(mdVersion); len(v) != 1 || v[0] != WireVersion {
		got := "none"
		if len(v) > 0 {
			got = v[0]
		}
		return 0, status.Errorf(codes.FailedPrecondition, "%s: node %s speaks wire version %s, node %d speaks %s",
			versionMarker, from[0], got, s.t.cfg.NodeID, WireVersion)
	}
	if len(cluster) != 1 {
		return 0, status.Errorf(codes.InvalidArgument, "transport: request from node %s carries no cluster identity", from[0])
	}
	if cluster[0] != s.t.cfg.Cluster {
		addr := "unknown"
		if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
			addr = p.Addr.String()
		}
		if s.t.refused.warn(from[0]+"\x00"+cluster[0], time.Now()) {
			s.t.log.Warn("refusing a node of another cluster (misconfigured peer address?)",
				"peer", from[0], "peer_cluster", cluster[0], "cluster", s.t.cfg.Cluster, "remote_addr", addr)
		}
		return 0, status.Errorf(codes.PermissionDenied, "node %s of cluster %q reached node %d of cluster %q, which refuses other clusters",
			from[0], cluster[0], s.t.cfg.NodeID, s.t.cfg.Cluster)
	}
	id, err := strconv.ParseUint(from[0], 10, 64)
	if err != nil || id == 0 {
		return 0, status.Errorf(codes.InvalidArgument, "transport: bad sender id %q", from[0])
	}
	if to[0] != strconv.FormatUint(s.t.cfg.NodeID, 10) {
		return 0, status.Errorf(codes.FailedPrecondition,
			"transport: request for node %s reached node %d", to[0], s.t.cfg.NodeID)
	}
	return id, nil
}

// refusals remembers when a warning about a refused sender was last
// logged.
type refusals struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// warn reports whether a warning about key may be logged now.
func (r *refusals) warn(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < refusalWarnInterval {
		return false
	}
	if r.last == nil || len(r.last) >= 1024 {
		r.last = map[string]time.Time{} // bounded: forget them all
	}
	r.last[key] = now
	return true
}

// wrongCluster turns a refusal from a peer of another cluster into an
// error wrapping ErrWrongCluster; any other error is returned as is.
func wrongCluster(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.PermissionDenied {
		return fmt.Errorf("%w: %s", ErrWrongCluster, st.Message())
	}
	return err
}

// Raft receives batch frames.
func (s *service) Raft(stream grpc.ClientStreamingServer[transportpb.Frame, transportpb.Done]) error {
	t := s.t
	from, err := s.remoteID(stream.Context())
	if err != nil {
		return err
	}
	certified := s.stillCertified(stream.Context(), strconv.FormatUint(from, 10))
	for {
		in, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return stream.SendAndClose(&transportpb.Done{})
			}
			return err
		}
		batch, err := decodeBatch(in.GetData())
		if err != nil {
			t.log.Warn("bad batch frame", "peer", from, "err", err)
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if len(batch) == 0 {
			continue
		}
		if err := certified(); err != nil {
			return err
		}
		if !t.callback(func() { t.h.HandleRaft(from, batch) }) {
			return status.Error(codes.Unavailable, ErrClosed.Error())
		}
	}
}

// Snapshot receives one snapshot in chunks.
func (s *service) Snapshot(stream grpc.ClientStreamingServer[transportpb.Frame, transportpb.Done]) error {
	t := s.t
	ctx := stream.Context()
	from, err := s.remoteID(ctx)
	if err != nil {
		return err
	}
	in, err := stream.Recv()
	if err != nil {
		return err
	}
	group, size, err := decodeSnapshotHeader(in.GetData())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if size > uint64(t.cfg.MaxSnapshotBytes) {
		t.log.Warn("refusing oversized snapshot", "peer", from, "group", group, "bytes", size)
		return status.Errorf(codes.ResourceExhausted,
			"transport: snapshot of %d bytes exceeds the limit of %d", size, t.cfg.MaxSnapshotBytes)
	}
	// Grow with the data instead of trusting the header for the allocation.
	data := make([]byte, 0, min(size, snapshotPreallocBytes))
	for {
		in, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if uint64(len(data))+uint64(len(in.GetData())) > size {
			return status.Errorf(codes.InvalidArgument, "transport: snapshot longer than its announced %d bytes", size)
		}
		data = append(data, in.GetData()...)
	}
	if uint64(len(data)) != size {
		return status.Errorf(codes.InvalidArgument, "transport: snapshot of %d bytes, %d announced", len(data), size)
	}
	msg := new(raftpb.Message)
	if err := proto.Unmarshal(data, msg); err != nil {
		return status.Error(codes.InvalidArgument, fmt.Errorf("%w: snapshot: %w", ErrBadFrame, err).Error())
	}
	if !t.callback(func() { t.h.HandleRaft(from, []Envelope{{Group: group, Msg: msg}}) }) {
		return status.Error(codes.Unavailable, ErrClosed.Error())
	}
	// The acknowledgement crosses the network back to the sender.
	if err := t.net.Wait(ctx, t.cfg.NodeID, from); err != nil {
		return status.Errorf(codes.Unavailable, "transport: snapshot ack to node %d: %v", from, err)
	}
	return stream.SendAndClose(&transportpb.Done{})
}

// Ping answers at once, after the response hop of the emulated network.
func (s *service) Ping(ctx context.Context, _ *transportpb.Done) (*transportpb.Done, error) {
	from, err := s.remoteID(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.t.net.Wait(ctx, s.t.cfg.NodeID, from); err != nil {
		return nil, status.Errorf(codes.Unavailable, "transport: ping answer to node %d: %v", from, err)
	}
	return &transportpb.Done{}, nil
}
