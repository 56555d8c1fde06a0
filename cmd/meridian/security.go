package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/meridian-db/meridian/config"
	"github.com/meridian-db/meridian/pki"
)

// openSecurity opens the node's certificates and keeps them fresh
// (reloaded on SIGHUP and when their files change, until ctx ends), or,
// without certificates, checks that the node may run in plaintext: only
// on loopback addresses, or anywhere with security.insecure, which it
// warns about loudly.
func openSecurity(ctx context.Context, f config.File, log *slog.Logger) (*pki.Store, error) {
	if f.Security.CertsDir == "" {
		exposed := exposedAddrs(f)
		switch {
		case len(exposed) > 0 && !f.Security.Insecure:
			return nil, fmt.Errorf("refusing to listen on %s without TLS: give the node its certificates (--certs-dir; see meridian cert), or --insecure to serve plaintext without authentication on a network you trust",
				strings.Join(exposed, ", "))
		case f.Security.Insecure:
			fmt.Fprintln(os.Stderr, strings.Repeat("*", 78))
			fmt.Fprintln(os.Stderr, "** INSECURE MODE: no TLS, no authentication. Anyone who can reach this node's")
			fmt.Fprintln(os.Stderr, "** ports can read and write every keyspace, change the cluster, and pose as")
			fmt.Fprintln(os.Stderr, "** another node. Use it on a network you trust only; see SECURITY.md.")
			fmt.Fprintln(os.Stderr, strings.Repeat("*", 78))
			log.Warn("insecure mode: plaintext and no authentication", "listen", f.Addresses.Listen, "resp", f.Addresses.RESP, "http", f.Addresses.HTTP)
		default:
			log.Warn("no certificates: plaintext and no authentication, on loopback addresses only (see --certs-dir)")
		}
		return nil, nil
	}
	certs, err := pki.OpenNode(f.Security.CertsDir, log)
	if err != nil {
		return nil, fmt.Errorf("certificates in %s: %w", f.Security.CertsDir, err)
	}
	go certs.Run(ctx, f.Security.ReloadInterval)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the certificates")
				_ = certs.Reload() // logged
			}
		}
	}()
	id := certs.Identity()
	log.Info("secure mode: mutual TLS between nodes, TLS and authentication for clients", "identity", id.String(),
		"expires", certs.NotAfter().UTC().Format("2006-01-02"))
	return certs, nil
}

// exposedAddrs lists the listen addresses that are not loopback ones.
func exposedAddrs(f config.File) []string {
	var out []string
	for _, a := range []string{f.Addresses.Listen, f.Addresses.RESP, f.Addresses.HTTP} {
		if !loopback(a) {
			out = append(out, a)
		}
	}
	return out
}

// loopback reports whether a listen address is a loopback one: an IP of
// the loopback range, or "localhost". An empty host listens everywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
