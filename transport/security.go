package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Security secures node-to-node traffic with mutual TLS (package pki's
// NodeTLS implements it). With it, a node's identity is the one its
// verified certificate names, never the id its metadata claims.
type Security interface {
	// ServerConfig is the listener's TLS configuration: it must require
	// a peer certificate, and refuse at the handshake one that is not a
	// node of this cluster trusted by the CA bundle.
	ServerConfig() *tls.Config
	// ClientConfig is the TLS configuration for dialling node peer: it
	// must refuse a server whose certificate is not that node's.
	ClientConfig(peer uint64) *tls.Config
	// PeerID returns the node id a connection's certificate names,
	// checked against the CA bundle in use now.
	PeerID(cs tls.ConnectionState) (uint64, error)
	// Generation changes whenever the certificates or bundle change;
	// PeerID's answers hold while it does not.
	Generation() uint64
	// Changed is closed when the certificates or bundle change: the
	// transport then drops its connections, so that they are made again
	// with the new certificates.
	Changed() <-chan struct{}
}

// ErrIdentity is wrapped (with ErrUnreachable and ErrNotSent) by the
// errors of requests a peer refused because the sender's certificate
// does not back the node id it claims, or no longer verifies.
var ErrIdentity = errors.New("transport: peer refused this node's identity")

// identityMarker starts the message of a refusal for identity.
const identityMarker = "node identity refused"

// serverCreds returns the credentials of the gRPC server.
func (t *Transport) serverCreds() grpc.ServerOption {
	if t.cfg.Security == nil {
		return grpc.Creds(insecure.NewCredentials())
	}
	return grpc.Creds(credentials.NewTLS(t.cfg.Security.ServerConfig()))
}

// dialOptions returns the options of a connection to peer id.
func (t *Transport) dialOptions(id uint64) []grpc.DialOption {
	if t.cfg.Security == nil {
		return append(t.dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	return append(t.dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(t.cfg.Security.ClientConfig(id))))
}

// certifiedID checks, under Security, that the sender claiming to be
// node claimed holds a certificate naming that node, valid against the
// bundle in use now. Without Security it accepts the claim.
func (s *service) certifiedID(ctx context.Context, claimed string) error {
	sec := s.t.cfg.Security
	if sec == nil {
		return nil
	}
	p, ok := grpcpeer.FromContext(ctx)
	var info credentials.TLSInfo
	if ok {
		info, ok = p.AuthInfo.(credentials.TLSInfo)
	}
	if !ok {
		return status.Errorf(codes.Unauthenticated, "%s: no TLS connection state", identityMarker)
	}
	id, err := sec.PeerID(info.State)
	if err != nil {
		s.warnIdentity(ctx, claimed, err)
		return status.Errorf(codes.Unauthenticated, "%s: %v", identityMarker, err)
	}
	if strconv.FormatUint(id, 10) != claimed {
		err := fmt.Errorf("the request claims to come from node %s, its certificate names node %d", claimed, id)
		s.warnIdentity(ctx, claimed, err)
		return status.Errorf(codes.Unauthenticated, "%s: %v", identityMarker, err)
	}
	return nil
}

func (s *service) warnIdentity(ctx context.Context, claimed string, err error) {
	addr := "unknown"
	if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	if s.t.refused.warn("identity\x00"+addr, time.Now()) {
		s.t.log.Warn("refusing a request whose certificate does not back its sender", "claimed_peer", claimed,
			"remote_addr", addr, "err", err)
	}
}

// stillCertified returns a check a long-lived stream runs before each
// frame: nothing to do while the certificates are the same as when the
// stream was admitted, certifiedID again when they changed.
func (s *service) stillCertified(ctx context.Context, claimed string) func() error {
	sec := s.t.cfg.Security
	if sec == nil {
		return func() error { return nil }
	}
	gen := sec.Generation()
	return func() error {
		if g := sec.Generation(); g != gen {
			if err := s.certifiedID(ctx, claimed); err != nil {
				return err
			}
			gen = g
		}
		return nil
	}
}

// watchSecurity drops every peer's connection whenever the certificates
// change, so that the next request dials again with the new ones.
func (t *Transport) watchSecurity() {
	sec := t.cfg.Security
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-sec.Changed():
		}
		t.mu.RLock()
		peers := make([]*peer, 0, len(t.peers))
		for _, p := range t.peers {
			peers = append(peers, p)
		}
		t.mu.RUnlock()
		for _, p := range peers {
			p.mu.Lock()
			conn := p.resetConnLocked()
			p.mu.Unlock()
			if conn != nil {
				conn.Close()
			}
		}
		t.log.Info("certificates changed: connections to peers dropped, to be made again with them", "peers", len(peers))
	}
}
