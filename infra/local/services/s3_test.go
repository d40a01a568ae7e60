package services

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudphone/cloudphone/shared/objectstore"
)

func TestMain(m *testing.M) {
	RunS3Gateway()
	os.Exit(m.Run())
}

func TestS3KeepsAnObjectAcrossStopAndStartAndSignsPresignedURLs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()

	s3, err := StartS3(ctx, dir, S3Options{Bucket: "kept"}, nil)
	if err != nil {
		t.Fatalf("StartS3: %v", err)
	}
	t.Cleanup(func() { _ = s3.Stop(context.Background()) })
	store, err := objectstore.New(s3.Config())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("cloudphone "), 1000)
	if _, err := store.Put(ctx, "a/b", bytes.NewReader(body), 1<<20); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s3.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := store.Head(ctx, "a/b"); !errors.Is(err, objectstore.ErrUnavailable) {
		t.Fatalf("Head after Stop = %v, want ErrUnavailable", err)
	}

	again, err := StartS3(ctx, dir, S3Options{Bucket: "kept"}, nil)
	if err != nil {
		t.Fatalf("StartS3 again: %v", err)
	}
	t.Cleanup(func() { _ = again.Stop(context.Background()) })
	if again.Config().AccessKeyID != s3.Config().AccessKeyID {
		t.Fatal("the credentials changed across a restart")
	}
	store, err = objectstore.New(again.Config())
	if err != nil {
		t.Fatal(err)
	}
	url, err := store.PresignGet(ctx, "a/b", time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if got := get(t, url); !bytes.Equal(got, body) {
		t.Fatalf("presigned GET after restart returned %d bytes, want the %d stored", len(got), len(body))
	}
	// The gateway checks signatures: a presigned URL for another key fails.
	// The last character of the signature is changed, whatever it was.
	last := "0"
	if strings.HasSuffix(url, "0") {
		last = "1"
	}
	resp, err := http.Get(url[:len(url)-1] + last)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered presigned URL answered %d, want 403", resp.StatusCode)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET = %d, %v", resp.StatusCode, err)
	}
	return b
}
