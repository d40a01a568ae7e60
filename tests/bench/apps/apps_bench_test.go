// Package apps_test measures APK uploads (and, in install_bench_test.go, the
// time from an upload to the app installed on a phone): through the app-apps function over
// HTTP (multipart in, streamed to S3 while hashed, manifest read by ranged
// GETs, copied to its digest key) against a straight PutObject of the same
// bytes to the same S3 server, and the memory the upload path holds.
package apps_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudphone/cloudphone/functions/app"
	"github.com/cloudphone/cloudphone/functions/app/appapps"
	"github.com/cloudphone/cloudphone/functions/app/apptest"
	"github.com/cloudphone/cloudphone/shared/auth"
	"github.com/cloudphone/cloudphone/shared/db/dbtest"
	"github.com/cloudphone/cloudphone/shared/events"
	"github.com/cloudphone/cloudphone/shared/inbox"
	"github.com/cloudphone/cloudphone/shared/logging"
	"github.com/cloudphone/cloudphone/shared/objectstore"
	"github.com/cloudphone/cloudphone/shared/objectstore/objectstoretest"
	"github.com/cloudphone/cloudphone/shared/outbox"
)

// apkMiB is the size of the benchmark's APK.
const apkMiB = 100

// BenchmarkUpload100MiBAPK uploads a 100 MiB APK through app-apps and
// PutObjects the same file to the same S3 server, alternately, b.N times
// each; it reports both throughputs, their ratio (upload / PutObject) and the
// peak growth of this process's RSS during the uploads. The S3 server runs in
// another process (make bench starts it), so the RSS is the platform's own.
func BenchmarkUpload100MiBAPK(b *testing.B) {
	apptest.Need(b)
	dir := b.TempDir()
	path, err := apptest.BuildIn(dir, apptest.Spec{Package: "org.example.big", AssetBytes: apkMiB << 20})
	if err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	size := st.Size()

	storeCfg := objectstoretest.Config(b)
	pool := dbtest.Database(b, outbox.Migrations, inbox.Migrations, app.Migrations)
	privS, pubS, err := auth.GenerateKeyStrings()
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := auth.ParsePrivateKey(privS)
	issuer := auth.NewIssuer(priv, time.Hour)
	store, err := objectstore.New(storeCfg)
	if err != nil {
		b.Fatal(err)
	}
	cfg := app.Config{TokenPublicKey: pubS, MaxAPKBytes: 200 << 20, DownloadTTL: 15 * time.Minute, Store: storeCfg}
	svc, err := app.Open(pool, store, dbtest.Redis(b), cfg, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(appapps.New(svc, cfg.MaxAPKBytes, logging.Discard()).Handle))
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{}}

	upload := func() time.Duration {
		userID := events.NewID()
		tok, _, err := issuer.Issue(auth.Principal{UserID: userID, Permissions: []string{app.PermUpload, app.PermDelete}})
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		head, tail, ct := multipartFrame(b)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/apps", io.MultiReader(bytes.NewReader(head), f, bytes.NewReader(tail)))
		req.ContentLength = int64(len(head)) + size + int64(len(tail))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("upload = %d %s", resp.StatusCode, body)
		}
		// Delete it (not timed), so that the next upload stores the bytes
		// again rather than finding them stored.
		id := strings.SplitN(strings.SplitN(string(body), `"id":"`, 2)[1], `"`, 2)[0]
		del, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/v1/apps/"+id, nil)
		del.Header.Set("Authorization", "Bearer "+tok)
		dresp, err := client.Do(del)
		if err != nil || dresp.StatusCode != http.StatusNoContent {
			b.Fatalf("delete = %v %v", dresp, err)
		}
		dresp.Body.Close()
		return took
	}
	put := func() time.Duration {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		key := "bench/" + events.NewID()
		start := time.Now()
		_, err = store.Client().PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String(store.Bucket()), Key: &key, Body: f, ContentLength: aws.Int64(size),
		}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		_ = store.Delete(context.Background(), key)
		return took
	}

	// Warm up both paths (connections, buffers) before measuring.
	upload()
	put()
	runtime.GC()
	base := rssBytes(b)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if r := rssBytes(b); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	var upTotal, putTotal time.Duration
	b.ResetTimer()
	for range b.N {
		upTotal += upload()
		putTotal += put()
	}
	b.StopTimer()
	close(stop)
	<-sampled
	mib := float64(size) / (1 << 20)
	upRate := mib * float64(b.N) / upTotal.Seconds()
	putRate := mib * float64(b.N) / putTotal.Seconds()
	growth := float64(max(peak.Load()-base, 0)) / (1 << 20)
	b.ReportMetric(upRate, "upload-MiB/s")
	b.ReportMetric(putRate, "putobject-MiB/s")
	b.ReportMetric(upRate/putRate, "ratio")
	b.ReportMetric(growth, "rss-growth-MiB")
	fmt.Printf("APK of %.1f MiB, %d runs: upload through app-apps %.1f MiB/s, straight PutObject %.1f MiB/s, ratio %.2f (target ≥ 0.7); RSS growth during the uploads %.1f MiB (target ≤ 32)\n",
		mib, b.N, upRate, putRate, upRate/putRate, growth)
}

// multipartFrame returns what goes before and after the APK's bytes in a
// multipart body with one "file" part, and the body's content type.
func multipartFrame(b *testing.B) (head, tail []byte, contentType string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="big.apk"`)
	h.Set("Content-Type", "application/vnd.android.package-archive")
	if _, err := mw.CreatePart(h); err != nil {
		b.Fatal(err)
	}
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		b.Fatal(err)
	}
	return head, bytes.Clone(buf.Bytes()), mw.FormDataContentType()
}

// rssBytes reads this process's resident set size.
func rssBytes(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
