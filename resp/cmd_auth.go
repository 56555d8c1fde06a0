package resp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/meridian-db/meridian/auth"
)

// AUTH, HELLO's AUTH and ACL (package auth). On a node that does not
// require authentication, AUTH behaves as Redis without a password: the
// default user with any password, nothing else.

var errHelloNoAuth = replyError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")

// userName is the connection's user as CLIENT INFO and ACL WHOAMI show
// it ("default" when authentication is off or not done).
func (c *client) userName() string {
	if c.principal.Kind == auth.UserPrincipal || c.principal.Kind == auth.NodePrincipal {
		return c.principal.Name()
	}
	return "default"
}

// login authenticates the connection as user with password. A failure
// leaves the connection as it was.
func (c *client) login(user, password []byte) error {
	g := c.node().Guard()
	if !g.Required() {
		if string(user) != "default" {
			return errWrongPass
		}
		return nil
	}
	p, err := g.Login(c.ctx(), string(user), string(password))
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			c.s.log.Info("authentication failed", "client", c.addr, "user", printable(user, 64))
			return errWrongPass
		}
		return err
	}
	c.mu.Lock()
	c.setPrincipal(p)
	c.mu.Unlock()
	return nil
}

// cmdAuth: AUTH password (the default user) | AUTH user password.
func cmdAuth(c *client, args [][]byte) error {
	var err error
	switch len(args) {
	case 2:
		if !c.node().Guard().Required() {
			return replyError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		}
		err = c.login([]byte("default"), args[1])
	case 3:
		err = c.login(args[1], args[2])
	default:
		return errSyntax
	}
	if err != nil {
		return err
	}
	c.w.simple("OK")
	return nil
}

// cmdACL: ACL WHOAMI | USERS | LIST | GETUSER name | SETUSER name rule... |
// DELUSER name... | CAT [category] | GENPASS [bits] | HELP.
func cmdACL(c *client, args [][]byte) error {
	sub := commandName(args[1])
	n := c.node()
	switch sub {
	case "whoami":
		c.w.bulkString(c.userName())
	case "users":
		users := n.Users()
		c.w.array(len(users) + 1)
		c.w.bulkString(auth.RootUser)
		for _, u := range users {
			c.w.bulkString(u.Name)
		}
	case "list":
		users := n.Users()
		c.w.array(len(users) + 1)
		c.w.bulkString("user " + auth.RootUser + " on ~* +@all (client certificate only)")
		for _, u := range users {
			c.w.bulkString(u.Describe())
		}
	case "getuser":
		if len(args) != 3 {
			return errArity("acl|getuser")
		}
		u, ok := n.User(string(args[2]))
		if !ok {
			c.w.null()
			return nil
		}
		c.writeUser(u)
	case "setuser":
		if len(args) < 3 {
			return errArity("acl|setuser")
		}
		rules := make([]string, 0, len(args)-3)
		for _, a := range args[3:] {
			rules = append(rules, string(a))
		}
		if _, err := n.SetUser(c.ctx(), string(args[2]), rules); err != nil {
			return aclError(err)
		}
		c.w.simple("OK")
	case "deluser":
		if len(args) < 3 {
			return errArity("acl|deluser")
		}
		deleted := 0
		for _, a := range args[2:] {
			ok, err := n.DeleteUser(c.ctx(), string(a))
			if err != nil {
				return aclError(err)
			}
			if ok {
				deleted++
			}
		}
		c.w.integer(int64(deleted))
	case "cat":
		switch len(args) {
		case 2:
			c.w.array(len(auth.Categories))
			for _, cat := range auth.Categories {
				c.w.bulkString(cat)
			}
		case 3:
			return c.writeCategory(strings.ToLower(string(args[2])))
		default:
			return errArity("acl|cat")
		}
	case "genpass":
		bits := int64(256)
		if len(args) == 3 {
			v, err := parseInt(args[2])
			if err != nil || v <= 0 || v > 4096 {
				return replyError("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096")
			}
			bits = v
		}
		b := make([]byte, (bits+7)/8)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		c.w.bulkString(hex.EncodeToString(b)[:(bits+3)/4])
	case "help":
		lines := []string{
			"ACL <subcommand> [<arg> ...]. Subcommands are:",
			"WHOAMI, USERS, LIST, GETUSER <name>, SETUSER <name> [<rule> ...], DELUSER <name> [...], CAT [<class>], GENPASS [<bits>].",
			"Rules: on|off, >password, <password, nopass, resetpass, ~keyspace-pattern, allkeys, resetkeys,",
			"+@read|+@write|+@admin|+@all (and -@...), allcommands, nocommands, (~pattern +@class) selectors, clearselectors, reset.",
		}
		c.w.array(len(lines))
		for _, l := range lines {
			c.w.simple(l)
		}
	default:
		return replyError(fmt.Sprintf("ERR unknown subcommand '%s'. Try ACL HELP.", printable(args[1], 64)))
	}
	return nil
}

// aclError turns a user management error into a reply that, like
// Redis's, names the problem (never a password: auth's errors hide them).
func aclError(err error) error {
	switch {
	case errors.Is(err, auth.ErrBadRule):
		return replyError("ERR Error in ACL SETUSER modifier: " + oneLine(strings.TrimPrefix(err.Error(), auth.ErrBadRule.Error()+": ")))
	case errors.Is(err, auth.ErrRootUser):
		return replyError("ERR the root user is built in: it cannot be changed or removed")
	}
	return err
}

// writeUser writes a user as ACL GETUSER does.
func (c *client) writeUser(u *auth.User) {
	c.w.mapHeader(6)
	c.w.bulkString("flags")
	flags := u.Flags()
	c.w.array(len(flags))
	for _, f := range flags {
		c.w.bulkString(f)
	}
	c.w.bulkString("passwords")
	fps := u.PasswordFingerprints()
	c.w.array(len(fps))
	for _, f := range fps {
		c.w.bulkString(f)
	}
	root := u.Grants[0]
	c.w.bulkString("commands")
	c.w.bulkString(root.CommandsString())
	c.w.bulkString("keys")
	c.w.bulkString(root.KeysString())
	c.w.bulkString("channels")
	c.w.bulkString("")
	c.w.bulkString("selectors")
	c.w.array(len(u.Grants) - 1)
	for _, g := range u.Grants[1:] {
		c.w.mapHeader(3)
		c.w.bulkString("commands")
		c.w.bulkString(g.CommandsString())
		c.w.bulkString("keys")
		c.w.bulkString(g.KeysString())
		c.w.bulkString("channels")
		c.w.bulkString("")
	}
}

// writeCategory lists the commands of a class (ACL CAT class).
func (c *client) writeCategory(cat string) error {
	var want auth.Class
	switch cat {
	case "read":
		want = auth.Read
	case "write":
		want = auth.Write
	case "admin":
		want = auth.Admin
	default:
		return replyError("ERR Unknown category '" + printable([]byte(cat), 32) + "'")
	}
	var names []string
	for _, cmd := range sortedCommands() {
		if p := commandPermissions[cmd.name]; p.Class == want {
			names = append(names, cmd.name)
		}
	}
	for sub, p := range subcommandPermissions {
		if p.Class == want {
			names = append(names, sub)
		}
	}
	c.w.array(len(names))
	for _, n := range names {
		c.w.bulkString(n)
	}
	return nil
}

// helloArgs are HELLO's arguments.
type helloArgs struct {
	proto      int // 0: unchanged
	auth       bool
	user, pass []byte
	setName    bool
	name       []byte
}

// parseHello parses "[protover [AUTH user pass] [SETNAME name]]" (the
// arguments after HELLO). It is pure, so that it can be fuzzed.
func parseHello(args [][]byte) (helloArgs, error) {
	var h helloArgs
	if len(args) == 0 {
		return h, nil
	}
	v, err := parseInt(args[0])
	if err != nil {
		return h, replyError("ERR Protocol version is not an integer or out of range")
	}
	if v != 2 && v != 3 {
		return h, replyError("NOPROTO sorry, this protocol version is not supported")
	}
	h.proto = int(v)
	for i := 1; i < len(args); i++ {
		switch opt := strings.ToUpper(string(args[i])); {
		case opt == "AUTH" && i+2 < len(args):
			h.auth, h.user, h.pass = true, args[i+1], args[i+2]
			i += 2
		case opt == "SETNAME" && i+1 < len(args):
			if !validName(args[i+1]) {
				return h, replyError("ERR Client names cannot contain spaces, newlines or special characters.")
			}
			h.name, h.setName = args[i+1], true
			i++
		default:
			return h, replyError(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", printable(args[i], 64)))
		}
	}
	return h, nil
}
