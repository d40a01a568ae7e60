package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ReadAheadBytes is the least a ranged read fetches: archive readers ask for
// a few bytes at a time, and one GET per few bytes would be slow.
const ReadAheadBytes = 64 << 10

// ReaderAt reads one object through ranged GETs, so that a caller can look
// at parts of a large object (a zip's central directory and a few entries)
// without downloading all of it. It keeps the last block it fetched. It is
// safe for concurrent use.
type ReaderAt struct {
	s    *Store
	ctx  context.Context
	key  string
	size int64

	mu        sync.Mutex
	block     []byte
	blockOff  int64
	requests  int
	bytesRead int64
}

// ReaderAt returns a reader of the object at key, whose size the caller knows
// (from Put or Head). Reads use ctx.
func (s *Store) ReaderAt(ctx context.Context, key string, size int64) *ReaderAt {
	return &ReaderAt{s: s, ctx: ctx, key: key, size: size}
}

// Size is the object's size.
func (r *ReaderAt) Size() int64 { return r.size }

// Fetched returns how many GET requests were made and how many bytes they
// returned.
func (r *ReaderAt) Fetched() (requests int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.bytesRead
}

// ReadAt implements io.ReaderAt. A failure of the server wraps
// ErrUnavailable.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("objectstore: negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off+int64(n) < r.size {
		at := off + int64(n)
		if at >= r.blockOff && at < r.blockOff+int64(len(r.block)) {
			n += copy(p[n:], r.block[at-r.blockOff:])
			continue
		}
		if err := r.fetch(at, len(p)-n); err != nil {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fetch replaces the block with at least want bytes (ReadAheadBytes at
// least) from at on.
func (r *ReaderAt) fetch(at int64, want int) error {
	length := max(int64(want), ReadAheadBytes)
	end := min(at+length, r.size) - 1
	rng := fmt.Sprintf("bytes=%d-%d", at, end)
	out, err := r.s.client.GetObject(r.ctx, &s3.GetObjectInput{Bucket: &r.s.bucket, Key: &r.key, Range: &rng})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("read %s at %d: %w", r.key, at, ErrNotFound)
		}
		return fmt.Errorf("read %s at %d: %w", r.key, at, classify(err))
	}
	defer out.Body.Close()
	if cap(r.block) < int(end-at+1) {
		r.block = make([]byte, end-at+1)
	}
	r.block = r.block[:end-at+1]
	got, err := io.ReadFull(out.Body, r.block)
	r.requests++
	r.bytesRead += int64(got)
	if err != nil {
		r.block = r.block[:0]
		return fmt.Errorf("read %s at %d: %w", r.key, at, errors.Join(ErrUnavailable, err))
	}
	r.blockOff = at
	return nil
}
