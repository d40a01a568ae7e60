// Package objectstoretest gives tests a bucket of their own on the S3-compatible
// store of $S3_ENDPOINT (make test starts one).
package objectstoretest

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/objectstore"
)

// Config returns the S3-compatible store of $S3_ENDPOINT (make test
// starts one) with a fresh bucket of the test's own, so that what a test
// finds in it is what that test stored.
func Config(t testing.TB) objectstore.Config {
	t.Helper()
	cfg := objectstore.Config{
		Endpoint:        os.Getenv("S3_ENDPOINT"),
		AccessKeyID:     os.Getenv("S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("S3_SECRET_ACCESS_KEY"),
		Region:          os.Getenv("S3_REGION"),
		Bucket:          "test-" + events.NewID()[:18],
	}
	if cfg.Endpoint == "" {
		t.Fatal("S3_ENDPOINT is not set: run the tests with `make test`, which starts an S3-compatible store")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	s, err := objectstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("create bucket %s: %v", cfg.Bucket, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := s.List(ctx, "")
		for _, k := range keys {
			_ = s.Delete(ctx, k)
		}
		_, _ = s.Client().DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &cfg.Bucket})
	})
	return cfg
}

// Keys lists the keys under prefix in s, failing t on an error.
func Keys(t testing.TB, s *objectstore.Store, prefix string) []string {
	t.Helper()
	keys, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	return keys
}
