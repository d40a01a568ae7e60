// Package objectstore keeps blobs in an S3-compatible bucket through
// aws-sdk-go-v2 with path-style addressing: streaming writes of unknown length
// (multipart, a few parts in memory at a time), server-side copies, ranged
// reads as an io.ReaderAt, and presigned download URLs.
package objectstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Config names the S3-compatible endpoint, its credentials and the bucket.
type Config struct {
	// Endpoint is the server's base URL, e.g. http://127.0.0.1:7070.
	Endpoint string `env:"S3_ENDPOINT" secret:"s3-endpoint"`
	// AccessKeyID and SecretAccessKey sign every request (SigV4).
	AccessKeyID     string `env:"S3_ACCESS_KEY_ID" secret:"s3-access-key-id"`
	SecretAccessKey string `env:"S3_SECRET_ACCESS_KEY" secret:"s3-secret-access-key"`
	// Bucket holds every object of the store.
	Bucket string `env:"S3_BUCKET" default:"cloudphone"`
	// Region is the signing region.
	Region string `env:"S3_REGION" default:"us-east-1"`
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("objectstore: S3_ENDPOINT is not set")
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return errors.New("objectstore: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set")
	case c.Bucket == "":
		return errors.New("objectstore: S3_BUCKET is not set")
	case c.Region == "":
		return errors.New("objectstore: S3_REGION is not set")
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("objectstore: S3_ENDPOINT %q is not an http(s) URL", c.Endpoint)
	}
	return nil
}

// Store is one bucket of an S3-compatible server. It is safe for concurrent
// use.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	// partSize is the size of each part of a streamed write.
	partSize int
}

// PartSize is the size of each part of a streamed write.
const PartSize = 8 << 20

// New returns a Store on cfg. It does not touch the network; EnsureBucket
// does.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	// Bodies of megabytes go out and come in through these buffers: at the
	// default 4 KiB a streamed write costs a system call per 4 KiB.
	transport.WriteBufferSize = 256 << 10
	transport.ReadBufferSize = 256 << 10
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint),
		Region:       cfg.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		HTTPClient:   &http.Client{Transport: transport},
		// Checksums only where S3 requires them: S3-compatible servers differ
		// in their support of the newer trailing checksums, and the caller
		// hashes what it stores itself.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RetryMaxAttempts:           3,
		// No "Expect: 100-continue" round trip before each part.
		ContinueHeaderThresholdBytes: -1,
	})
	return &Store{
		client:   client,
		presign:  s3.NewPresignClient(client),
		bucket:   cfg.Bucket,
		partSize: PartSize,
	}, nil
}

// Bucket is the name of the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Client is the underlying S3 client (benchmarks compare against it).
func (s *Store) Client() *s3.Client { return s.client }

// EnsureBucket creates the bucket when it does not exist.
func (s *Store) EnsureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("head bucket %s: %w", s.bucket, classify(err))
	}
	_, err = s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", s.bucket, classify(err))
	}
	return nil
}

// ErrNotFound says the object does not exist.
var ErrNotFound = errors.New("object not found")

// ErrUnavailable wraps every failure to reach the server or a server error
// (5xx): the same call may succeed later.
var ErrUnavailable = errors.New("object store unavailable")

// Head returns the size of the object at key, or ErrNotFound.
func (s *Store) Head(ctx context.Context, key string) (int64, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return 0, fmt.Errorf("head %s: %w", key, ErrNotFound)
		}
		return 0, fmt.Errorf("head %s: %w", key, classify(err))
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Copy copies the object at src to dst on the server, replacing dst.
func (s *Store) Copy(ctx context.Context, src, dst string) error {
	source := s.bucket + "/" + url.PathEscape(src)
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &s.bucket, Key: &dst, CopySource: &source})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("copy %s to %s: %w", src, dst, ErrNotFound)
		}
		return fmt.Errorf("copy %s to %s: %w", src, dst, classify(err))
	}
	return nil
}

// Delete removes the object at key; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, classify(err))
	}
	return nil
}

// PresignGet returns a URL that downloads the object at key without
// credentials until ttl has passed.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, err)
	}
	return req.URL, nil
}

// isNotFound reports a 404 answer (NoSuchKey, NoSuchBucket, NotFound).
func isNotFound(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return true
	}
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf)
}

// classify marks err ErrUnavailable when the server could not be reached or
// answered 5xx, and leaves it as it is otherwise.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 && re.HTTPStatusCode() < 500 {
		return err
	}
	var api smithy.APIError
	var netErr net.Error
	if errors.As(err, &re) || errors.As(err, &netErr) || !errors.As(err, &api) || errors.Is(err, context.DeadlineExceeded) {
		return errors.Join(ErrUnavailable, err)
	}
	return err
}

// List returns the keys under prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, classify(err))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}
