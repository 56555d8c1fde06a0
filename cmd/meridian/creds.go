package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/pki"
)

// Credentials of the admin commands (every command that talks to a
// node's HTTP API). Each comes from a flag or, when the flag is not
// given, an environment variable:
//
//	--certs-dir      MERIDIAN_CERTS_DIR      the CA bundle (ca.crt) to verify the node over HTTPS, and the user's client certificate (client.USER.crt) if there is one
//	--user           MERIDIAN_USER           the user
//	--password-file  MERIDIAN_PASSWORD_FILE  a file holding the user's password
//	--password       MERIDIAN_PASSWORD       the password itself (visible to other local users in the process list: prefer a file or the variable)
//	--token          MERIDIAN_TOKEN          a bearer token (meridian token create)
//
// With a certificates directory the CLI speaks HTTPS; a client
// certificate of the user authenticates without a password.
type credFlags struct {
	certsDir, user, password, passwordFile, token string
}

type credsKey struct{}

// credentialFlags adds the credential flags to an admin command and
// hands them to the command's context (adminClient reads them there).
func credentialFlags(cmd *cobra.Command) {
	cr := &credFlags{}
	fl := cmd.Flags()
	fl.StringVar(&cr.certsDir, "certs-dir", "", "certificates directory: ca.crt to verify the node over HTTPS, client.USER.crt/.key to authenticate (env MERIDIAN_CERTS_DIR)")
	fl.StringVar(&cr.user, "user", "", "user to authenticate as (env MERIDIAN_USER)")
	fl.StringVar(&cr.passwordFile, "password-file", "", "file holding the user's password (env MERIDIAN_PASSWORD_FILE)")
	fl.StringVar(&cr.password, "password", "", "the user's password; other local users can see it in the process list, prefer --password-file (env MERIDIAN_PASSWORD)")
	fl.StringVar(&cr.token, "token", "", "bearer token instead of a password (env MERIDIAN_TOKEN)")
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		c.SetContext(context.WithValue(c.Context(), credsKey{}, cr))
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}

// resolved are the credentials a command uses.
type resolved struct {
	tls    bool
	client *http.Client // with the TLS configuration, if any
	header string       // Authorization
}

// resolve applies the environment to what the flags left empty, reads
// the password file and loads the certificates.
func (cr *credFlags) resolve(base *http.Client) (resolved, error) {
	env := func(v *string, name string) {
		if *v == "" {
			*v = os.Getenv(name)
		}
	}
	c := *cr
	env(&c.certsDir, "MERIDIAN_CERTS_DIR")
	env(&c.user, "MERIDIAN_USER")
	env(&c.passwordFile, "MERIDIAN_PASSWORD_FILE")
	env(&c.password, "MERIDIAN_PASSWORD")
	env(&c.token, "MERIDIAN_TOKEN")
	out := resolved{client: base}
	hasCert := false
	if c.certsDir != "" {
		cfg, has, err := pki.ClientConfig(c.certsDir, c.user)
		if err != nil {
			return out, fmt.Errorf("--certs-dir: %w", err)
		}
		hasCert = has
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		cl := *base
		cl.Transport = tr
		out.client, out.tls = &cl, true
	}
	if c.passwordFile != "" {
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return out, fmt.Errorf("--password-file: %w", err)
		}
		c.password = strings.TrimRight(string(b), "\r\n")
	}
	switch {
	case c.token != "":
		out.header = "Bearer " + c.token
	case c.user != "" && c.password != "":
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(c.user, c.password)
		out.header = r.Header.Get("Authorization")
	case c.user != "" && !hasCert:
		return out, errors.New("--user needs a password (--password-file, MERIDIAN_PASSWORD) or a client certificate in --certs-dir")
	}
	return out, nil
}

// prepare applies the command's credentials to the client, once.
func (c *adminClient) prepare(ctx context.Context) error {
	if c.prepared {
		return c.prepErr
	}
	c.prepared = true
	cr, _ := ctx.Value(credsKey{}).(*credFlags)
	if cr == nil {
		cr = &credFlags{}
	}
	res, err := cr.resolve(c.http)
	if err != nil {
		c.prepErr = err
		return err
	}
	c.http, c.header = res.client, res.header
	if res.tls {
		c.base = strings.Replace(c.base, "http://", "https://", 1)
	}
	return nil
}

// authorize adds the credentials to a request.
func (c *adminClient) authorize(req *http.Request) {
	if c.header != "" {
		req.Header.Set("Authorization", c.header)
	}
}
