package objectstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ErrTooLarge says the stream given to Put had more bytes than its limit.
var ErrTooLarge = errors.New("object larger than the limit")

// ReadError wraps a failure to read the stream given to Put (a client that
// went away, a body over the HTTP limit), as opposed to a failure of the
// store.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read the stream: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// unsignedPayload signs part uploads without hashing their bodies: the caller
// hashes the whole stream itself, and hashing every part again for the
// signature would double the CPU cost of a write.
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// bufs recycles part buffers between writes.
var bufs = sync.Pool{New: func() any { b := make([]byte, PartSize); return &b }}

// PutConcurrency is how many parts of one Put are sent at once.
const PutConcurrency = 2

// Put stores everything r yields at key and returns the number of bytes. It
// never holds more than PutConcurrency+1 parts of PartSize of the stream in
// memory: a stream shorter than one part is one PutObject, a longer one a
// multipart upload whose next part is read while earlier ones are sent. When r
// yields more than limit bytes, Put stops reading, stores nothing and returns
// ErrTooLarge. A failure to read r is a *ReadError; a failure of the server
// wraps ErrUnavailable. On any error nothing is left at key (an unfinished
// multipart upload is aborted).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, limit int64) (int64, error) {
	lr := &limitedReader{r: r, left: limit}
	first := bufs.Get().(*[]byte)
	defer bufs.Put(first)
	n, err := readPart(lr, (*first)[:s.partSize])
	if err != nil {
		return 0, err
	}
	if n < s.partSize {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader((*first)[:n]), ContentLength: aws.Int64(int64(n)),
		}, unsignedPayload)
		if err != nil {
			return 0, fmt.Errorf("put %s: %w", key, classify(err))
		}
		return int64(n), nil
	}
	return s.putMultipart(ctx, key, lr, (*first)[:n])
}

func (s *Store) putMultipart(ctx context.Context, key string, lr *limitedReader, first []byte) (total int64, err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, fmt.Errorf("start multipart upload of %s: %w", key, classify(err))
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			// A fresh context: the caller's may be what failed.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: &s.bucket, Key: &key, UploadId: uploadID,
			})
		}
	}()

	// Senders upload parts while this goroutine reads the next one: at most
	// PutConcurrency parts in flight plus the one being read.
	type part struct {
		num  int32
		data []byte
		buf  *[]byte
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make(chan part)
	var (
		mu        sync.Mutex
		completed []s3types.CompletedPart
		sendErr   error
		senders   sync.WaitGroup
	)
	for range PutConcurrency {
		senders.Go(func() {
			for p := range parts {
				out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
					Bucket: &s.bucket, Key: &key, UploadId: uploadID, PartNumber: aws.Int32(p.num),
					Body: bytes.NewReader(p.data), ContentLength: aws.Int64(int64(len(p.data))),
				}, unsignedPayload)
				mu.Lock()
				if err != nil {
					if sendErr == nil {
						sendErr = fmt.Errorf("upload part %d of %s: %w", p.num, key, classify(err))
					}
					cancel()
				} else {
					completed = append(completed, s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(p.num)})
				}
				mu.Unlock()
				if p.buf != nil {
					bufs.Put(p.buf)
				}
			}
		})
	}

	var readErr error
	// The first part's buffer belongs to Put, which recycles it.
	next := part{num: 1, data: first}
	total = int64(len(first))
	for {
		parts <- next // the senders drain parts until it is closed
		if len(next.data) < s.partSize || ctx.Err() != nil {
			break
		}
		buf := bufs.Get().(*[]byte)
		n, err := readPart(lr, (*buf)[:s.partSize])
		if err != nil {
			bufs.Put(buf)
			readErr = err
			break
		}
		if n == 0 {
			bufs.Put(buf)
			break
		}
		total += int64(n)
		next = part{num: next.num + 1, data: (*buf)[:n], buf: buf}
	}
	close(parts)
	senders.Wait()
	slices.SortFunc(completed, func(a, b s3types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	switch {
	case readErr != nil:
		return 0, readErr
	case sendErr != nil:
		return 0, sendErr
	case ctx.Err() != nil:
		return 0, fmt.Errorf("put %s: %w", key, ctx.Err())
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: uploadID,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: completed},
	})
	if err != nil {
		return 0, fmt.Errorf("complete multipart upload of %s: %w", key, classify(err))
	}
	return total, nil
}

// abortTimeout bounds the clean-up of a failed multipart upload.
const abortTimeout = 30 * time.Second

// readPart fills buf from r as far as r goes and returns how much it read.
func readPart(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return n, nil
	case errors.Is(err, ErrTooLarge):
		return 0, err
	default:
		return 0, &ReadError{Err: err}
	}
}

// limitedReader returns ErrTooLarge once more than left bytes were asked of
// it and r still had some.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	return n, err
}

// PutSized is Put for a stream announced to hold size bytes (the length of
// a request body less its framing, say). When r yields exactly size bytes,
// as it nearly always does, they are streamed straight into one PutObject:
// no part buffers here, no multipart assembly on the server, which on
// S3-compatible stores costs a second pass over the bytes. When r yields
// fewer bytes the PutObject is completed with zeros and the object then cut
// to what r yielded; when it yields up to MaxOverrun more, they are
// appended; either fix-up is done on the server (ranged part copies), or
// here for objects under MinPartSize. So the outcome is Put's: everything r
// yields is at key, or, on error, nothing. size ≤ 0 or over limit is Put.
// A stream that runs more than MaxOverrun past size is a *ReadError.
func (s *Store) PutSized(ctx context.Context, key string, r io.Reader, size, limit int64) (int64, error) {
	if size <= 0 || size > limit {
		return s.Put(ctx, key, r, limit)
	}
	lr := &limitedReader{r: r, left: limit}
	body := &paddedReader{r: lr, left: size}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: body, ContentLength: aws.Int64(size),
	}, unsignedPayload)
	if body.err == nil && err == nil && body.n == size {
		// Anything left beyond the announced size?
		var extra []byte
		extra, body.err = io.ReadAll(io.LimitReader(lr, MaxOverrun+1))
		switch {
		case body.err != nil:
		case len(extra) > MaxOverrun:
			body.err = fmt.Errorf("the stream runs more than %d bytes past its announced size %d", MaxOverrun, size)
		case len(extra) == 0:
			return size, nil
		default:
			return s.fixUp(ctx, key, size, extra)
		}
	}
	if body.err != nil {
		s.discard(ctx, key)
		if errors.Is(body.err, ErrTooLarge) {
			return 0, ErrTooLarge
		}
		return 0, &ReadError{Err: body.err}
	}
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, classify(err))
	}
	return s.fixUp(ctx, key, body.n, nil)
}

// MaxOverrun is how far a stream given to PutSized may run past its
// announced size (kept in memory to be appended).
const MaxOverrun = 64 << 10

// MinPartSize is S3's smallest part but the last.
const MinPartSize = 5 << 20

// fixUp rewrites the object at key as its first keep bytes followed by
// extra, and returns its new size. On error nothing is left at key.
func (s *Store) fixUp(ctx context.Context, key string, keep int64, extra []byte) (n int64, err error) {
	defer func() {
		if err != nil {
			s.discard(ctx, key)
		}
	}()
	total := keep + int64(len(extra))
	if keep < MinPartSize {
		data := make([]byte, 0, total)
		if keep > 0 {
			out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key,
				Range: aws.String(fmt.Sprintf("bytes=0-%d", keep-1))})
			if err != nil {
				return 0, fmt.Errorf("read back %s: %w", key, classify(err))
			}
			data, err = io.ReadAll(io.LimitReader(out.Body, keep))
			out.Body.Close()
			if err != nil || int64(len(data)) != keep {
				return 0, fmt.Errorf("read back %s: %d of %d bytes: %w", key, len(data), keep, classify(err))
			}
		}
		data = append(data, extra...)
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key,
			Body: bytes.NewReader(data), ContentLength: aws.Int64(total)}, unsignedPayload)
		if err != nil {
			return 0, fmt.Errorf("put %s: %w", key, classify(err))
		}
		return total, nil
	}
	// Parts copy from a copy of the object, so that completing the upload
	// at key never races its own source.
	src := key + ".fixup"
	if err := s.Copy(ctx, key, src); err != nil {
		return 0, err
	}
	defer s.discard(ctx, src)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, fmt.Errorf("start multipart upload of %s: %w", key, classify(err))
	}
	completed, err := func() ([]s3types.CompletedPart, error) {
		cp, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &s.bucket, Key: &key,
			UploadId: created.UploadId, PartNumber: aws.Int32(1), CopySource: aws.String(s.bucket + "/" + url.PathEscape(src)),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=0-%d", keep-1))})
		if err != nil {
			return nil, fmt.Errorf("copy part of %s: %w", key, classify(err))
		}
		parts := []s3types.CompletedPart{{ETag: cp.CopyPartResult.ETag, PartNumber: aws.Int32(1)}}
		if len(extra) > 0 {
			up, err := s.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &s.bucket, Key: &key, UploadId: created.UploadId,
				PartNumber: aws.Int32(2), Body: bytes.NewReader(extra), ContentLength: aws.Int64(int64(len(extra)))}, unsignedPayload)
			if err != nil {
				return nil, fmt.Errorf("upload part of %s: %w", key, classify(err))
			}
			parts = append(parts, s3types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(2)})
		}
		return parts, nil
	}()
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &s.bucket, Key: &key,
			UploadId: created.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: completed}})
		if err != nil {
			err = fmt.Errorf("complete multipart upload of %s: %w", key, classify(err))
		}
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: created.UploadId})
		return 0, err
	}
	return total, nil
}

// discard removes key after a failed write, with a fresh context (the
// caller's may be what failed).
func (s *Store) discard(ctx context.Context, key string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, _ = s.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
}

// paddedReader yields exactly left bytes: r's, then zeros once r ends. n
// counts r's bytes; err keeps r's first failure (other than io.EOF), after
// which it fails too.
type paddedReader struct {
	r    io.Reader
	left int64
	n    int64
	eof  bool
	err  error
}

func (p *paddedReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	if p.eof {
		clear(b)
		p.left -= int64(len(b))
		return len(b), nil
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF):
		p.eof = true
	case err != nil:
		p.err = err
		return n, err
	}
	return n, nil
}
