package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Target stores objects in an S3 bucket under a prefix, through
// minio-go (any S3-compatible server). An S3 object appears whole when
// its upload completes, so Put is atomic by nature; backups write their
// manifest last.
type s3Target struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
	desc   string
}

func newS3Target(bucket, prefix string, o Options) (*s3Target, error) {
	o = o.WithEnv()
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	var creds *credentials.Credentials
	if o.AccessKey != "" || o.SecretKey != "" {
		creds = credentials.NewStaticV4(o.AccessKey, o.SecretKey, "")
	} else {
		creds = credentials.New(&credentials.Static{}) // anonymous
	}
	client, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: !o.Insecure, Region: o.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, fmt.Errorf("%w: s3 endpoint %q: %w", ErrTarget, endpoint, err)
	}
	if prefix != "" {
		prefix += "/"
	}
	return &s3Target{client: client, bucket: bucket, prefix: prefix, desc: "s3://" + bucket + "/" + strings.TrimSuffix(prefix, "/") + " at " + endpoint}, nil
}

func (t *s3Target) String() string { return t.desc }

// s3Err turns minio's errors into this package's, without anything from
// the request that could carry a secret.
func s3Err(op, name string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		if resp.Code == "NoSuchKey" || resp.StatusCode == 404 {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return fmt.Errorf("backup: s3 %s %s: %s (%s, HTTP %d)", op, name, resp.Message, resp.Code, resp.StatusCode)
	}
	return fmt.Errorf("backup: s3 %s %s: %w", op, name, err)
}

func (t *s3Target) Put(ctx context.Context, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, err := t.client.PutObject(ctx, t.bucket, t.prefix+name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: len(data) < 64<<20})
	if err != nil {
		return s3Err("put", name, err)
	}
	return nil
}

func (t *s3Target) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	obj, err := t.client.GetObject(ctx, t.bucket, t.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Err("get", name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, s3Err("get", name, err)
	}
	return b, nil
}

func (t *s3Target) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	for o := range t.client.ListObjects(ctx, t.bucket, minio.ListObjectsOptions{Prefix: t.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, s3Err("list", prefix, o.Err)
		}
		out = append(out, ObjectInfo{Name: strings.TrimPrefix(o.Key, t.prefix), Size: o.Size, ModTime: o.LastModified})
	}
	return out, nil
}

func (t *s3Target) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := t.client.RemoveObject(ctx, t.bucket, t.prefix+name, minio.RemoveObjectOptions{}); err != nil {
		return s3Err("delete", name, err)
	}
	return nil
}

// EnsureBucket creates the bucket of an s3:// target if it does not
// exist (tests and first use against a fresh server); other targets have
// nothing to create.
func EnsureBucket(ctx context.Context, t Target) error {
	s, ok := t.(*s3Target)
	if !ok {
		return nil
	}
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s3Err("bucket", s.bucket, err)
	}
	if exists {
		return nil
	}
	if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{}); err != nil {
		return s3Err("make bucket", s.bucket, err)
	}
	return nil
}
