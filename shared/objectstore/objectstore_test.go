package objectstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/cloudphone/cloudphone/shared/objectstore"
	"github.com/cloudphone/cloudphone/shared/objectstore/objectstoretest"
)

func newStore(t *testing.T) *objectstore.Store {
	t.Helper()
	s, err := objectstore.New(objectstoretest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutStreamsAMultipartObjectThatReadsBackByRange(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	data := make([]byte, 2*objectstore.PartSize+12345) // three parts, the last short
	_, _ = rand.Read(data)
	n, err := s.Put(ctx, "big", bytes.NewReader(data), int64(len(data)))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put = %d, %v", n, err)
	}
	if size, err := s.Head(ctx, "big"); err != nil || size != n {
		t.Fatalf("Head = %d, %v", size, err)
	}
	r := s.ReaderAt(ctx, "big", n)
	for _, at := range []int64{0, objectstore.PartSize - 3, n - 10} {
		got := make([]byte, 10)
		if _, err := r.ReadAt(got, at); err != nil || !bytes.Equal(got, data[at:at+10]) {
			t.Fatalf("ReadAt %d = %x, %v; want %x", at, got, err, data[at:at+10])
		}
	}
	if _, err := r.ReadAt(make([]byte, 20), n-10); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadAt past the end = %v, want EOF", err)
	}
}

func TestPutOverTheLimitStoresNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	for name, size := range map[string]int{"one part": 1000, "multipart": objectstore.PartSize + 1000} {
		_, err := s.Put(ctx, name, bytes.NewReader(make([]byte, size)), int64(size-1))
		if !errors.Is(err, objectstore.ErrTooLarge) {
			t.Fatalf("%s: Put over the limit = %v", name, err)
		}
		if _, err := s.Head(ctx, name); !errors.Is(err, objectstore.ErrNotFound) {
			t.Fatalf("%s: after a refused Put, Head = %v", name, err)
		}
	}
}

type failingReader struct{ left int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, errors.New("client went away")
	}
	n := min(len(p), f.left)
	f.left -= n
	return n, nil
}

func TestPutOfAStreamThatFailsIsAReadErrorAndStoresNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	_, err := s.Put(ctx, "broken", &failingReader{left: objectstore.PartSize + 5}, 1<<30)
	var re *objectstore.ReadError
	if !errors.As(err, &re) {
		t.Fatalf("Put = %v, want a ReadError", err)
	}
	if _, err := s.Head(ctx, "broken"); !errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("after a failed Put, Head = %v", err)
	}
}
