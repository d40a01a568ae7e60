package objectstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/cloudphone/cloudphone/shared/objectstore"
)

// readBack returns the whole object at key.
func readBack(t *testing.T, s *objectstore.Store, key string) []byte {
	t.Helper()
	size, err := s.Head(context.Background(), key)
	if err != nil {
		t.Fatalf("Head %s: %v", key, err)
	}
	got := make([]byte, size)
	if size > 0 {
		if _, err := s.ReaderAt(context.Background(), key, size).ReadAt(got, 0); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	return got
}

// Whatever the announced size, PutSized stores exactly what the stream
// yields: the announced size itself, fewer bytes and more (small objects,
// and objects over S3's smallest part, fixed up on the server).
func TestPutSizedStoresWhatTheStreamYieldsWhateverWasAnnounced(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	big := objectstore.MinPartSize + 4321
	for _, c := range []struct {
		actual, announced int
	}{
		{1000, 1000}, {big, big}, // as announced
		{998, 1000}, {big - 2, big}, {0, 10}, // short
		{1002, 1000}, {big + 2, big}, {big + 1000, big}, // longer
	} {
		name := fmt.Sprintf("%d-of-%d", c.actual, c.announced)
		data := make([]byte, c.actual)
		_, _ = rand.Read(data)
		n, err := s.PutSized(ctx, name, bytes.NewReader(data), int64(c.announced), 1<<30)
		if err != nil || n != int64(c.actual) {
			t.Fatalf("%s: PutSized = %d, %v", name, n, err)
		}
		if got := readBack(t, s, name); !bytes.Equal(got, data) {
			t.Fatalf("%s: stored %d bytes that differ from the %d written", name, len(got), len(data))
		}
	}
	if _, err := s.Head(ctx, fmt.Sprintf("%d-of-%d.fixup", big-2, big)); !errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("the fix-up's copy is left: %v", err)
	}
}

func TestPutSizedOverTheLimitFailingOrRunningFarPastItsSizeStoresNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	_, err := s.PutSized(ctx, "over", bytes.NewReader(make([]byte, 2000)), 1000, 1500)
	if !errors.Is(err, objectstore.ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	_, err = s.PutSized(ctx, "broken", &failingReader{left: 700}, 1000, 1<<30)
	var re *objectstore.ReadError
	if !errors.As(err, &re) {
		t.Fatalf("failing stream: %v, want a ReadError", err)
	}
	_, err = s.PutSized(ctx, "overrun", bytes.NewReader(make([]byte, 1000+objectstore.MaxOverrun+1)), 1000, 1<<30)
	if !errors.As(err, &re) {
		t.Fatalf("a stream far past its size: %v, want a ReadError", err)
	}
	for _, key := range []string{"over", "broken", "overrun"} {
		if _, err := s.Head(ctx, key); !errors.Is(err, objectstore.ErrNotFound) {
			t.Fatalf("%s: Head after a refused PutSized = %v", key, err)
		}
	}
}
