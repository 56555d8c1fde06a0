package backup

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

// Errors of package backup. Every error about one object names it.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("backup: object not found")
	// ErrCorrupt: an object's bytes are not what was written (truncated,
	// altered, a checksum that does not match, a record that does not
	// decode), or a chain of objects has a hole.
	ErrCorrupt = errors.New("backup: corrupt backup")
	// ErrKey: the backup is encrypted and no key, or another key, was
	// given; or a key was given for a backup that is not encrypted.
	ErrKey = errors.New("backup: encryption key")
	// ErrTarget: the target URL or its options are unusable.
	ErrTarget = errors.New("backup: bad target")
	// ErrFormat: the target holds a format of backups this binary does
	// not know (a newer one), or something that is not a Meridian backup.
	ErrFormat = errors.New("backup: unknown backup format")
	// ErrWindow: the time asked for is outside what the backups can
	// restore.
	ErrWindow = errors.New("backup: time outside the restorable window")
	// ErrNoBackup: the target holds no backup that fits the request.
	ErrNoBackup = errors.New("backup: no backup fits")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// Target is where backups are stored: a directory or an S3 bucket prefix.
// Names are slash-separated paths relative to the target's root.
//
// Put is atomic: an object is either absent or whole, never half-written
// under its name (a file is written beside it and renamed into place; an
// S3 object appears whole when its upload completes). Put replaces an
// object of the same name. Get of a missing object wraps ErrNotFound.
type Target interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	// List returns the objects whose names start with prefix, by name.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	Delete(ctx context.Context, name string) error
	// String names the target without credentials.
	String() string
}

// Options are how to reach a target and read or write its objects.
// Credentials never appear in String, errors or logs.
type Options struct {
	// Endpoint is the S3 endpoint (host:port). Default: the environment's
	// MERIDIAN_S3_ENDPOINT, else s3.amazonaws.com.
	Endpoint string `json:"endpoint,omitempty"`
	// AccessKey and SecretKey are the S3 credentials. Default: the
	// environment's MERIDIAN_S3_ACCESS_KEY / MERIDIAN_S3_SECRET_KEY, else
	// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; none: anonymous.
	AccessKey string `json:"access_key,omitempty"`
	SecretKey string `json:"secret_key,omitempty"`
	// Region is the S3 region (optional).
	Region string `json:"region,omitempty"`
	// Insecure talks plain HTTP to the endpoint (test servers).
	Insecure bool `json:"insecure,omitempty"`
	// Key, if set, encrypts what is written and decrypts what is read
	// (AES-256-GCM; 32 bytes). KeyFromFile and KeyFromEnv read one.
	Key []byte `json:"key,omitempty"`
}

// String describes the options without secrets.
func (o Options) String() string {
	var parts []string
	if o.Endpoint != "" {
		parts = append(parts, "endpoint="+o.Endpoint)
	}
	if o.AccessKey != "" {
		parts = append(parts, "credentials=set")
	}
	if len(o.Key) > 0 {
		parts = append(parts, "encrypted")
	}
	return strings.Join(parts, " ")
}

// GoString keeps %#v from printing secrets.
func (o Options) GoString() string { return "backup.Options{" + o.String() + "}" }

// WithEnv returns o with what it leaves empty taken from the environment
// (see Options).
func (o Options) WithEnv() Options {
	env := func(names ...string) string {
		for _, n := range names {
			if v := os.Getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	if o.Endpoint == "" {
		o.Endpoint = env("MERIDIAN_S3_ENDPOINT")
	}
	if o.AccessKey == "" && o.SecretKey == "" {
		o.AccessKey = env("MERIDIAN_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
		o.SecretKey = env("MERIDIAN_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
	}
	if o.Region == "" {
		o.Region = env("MERIDIAN_S3_REGION", "AWS_REGION")
	}
	return o
}

// Open returns the target a URL names: file:///absolute/path (or a plain
// absolute path) or s3://bucket/prefix.
func Open(rawURL string, o Options) (Target, error) {
	if strings.HasPrefix(rawURL, "/") {
		rawURL = "file://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrTarget, Redact(rawURL), err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in the URL %q: pass them as options or in the environment", ErrTarget, Redact(rawURL))
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%w: %q: a file URL names a local path (file:///path)", ErrTarget, rawURL)
		}
		if !path.IsAbs(u.Path) {
			return nil, fmt.Errorf("%w: %q: the path must be absolute", ErrTarget, rawURL)
		}
		return newFileTarget(u.Path)
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("%w: %q: no bucket (s3://bucket/prefix)", ErrTarget, rawURL)
		}
		return newS3Target(u.Host, strings.Trim(u.Path, "/"), o)
	}
	return nil, fmt.Errorf("%w: %q: unknown scheme %q (want file or s3)", ErrTarget, Redact(rawURL), u.Scheme)
}

// Redact returns a URL with any user information removed, for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		if i := strings.Index(rawURL, "@"); i >= 0 {
			if j := strings.Index(rawURL, "://"); j >= 0 && j < i {
				return rawURL[:j+3] + "REDACTED@" + rawURL[i+1:]
			}
		}
		return rawURL
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// checkName refuses names that could leave the target's root.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("%w: object name %q", ErrTarget, name)
	}
	for _, p := range strings.Split(name, "/") {
		if p == "" || p == "." || p == ".." {
			return fmt.Errorf("%w: object name %q", ErrTarget, name)
		}
	}
	return nil
}
