package services

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/cloudphone/cloudphone/shared/objectstore"
)

// S3Options tunes a private S3-compatible server. Zero fields take the
// defaults written beside them.
type S3Options struct {
	Bucket string // "cloudphone": created when missing
	Region string // "us-east-1"
}

// S3 is a private S3-compatible server: the versitygw gateway with its posix
// backend, run as a child process of this very binary (see RunS3Gateway), on
// a free port of 127.0.0.1, keeping buckets as directories and objects as
// files under its data directory. Its methods are safe for concurrent use.
type S3 struct {
	cfg  objectstore.Config
	dir  string
	proc *process
	log  *slog.Logger
}

// Environment of the gateway child process (see RunS3Gateway).
const (
	envS3GatewayDir  = "CLOUDPHONE_S3_GATEWAY_DIR"
	envS3GatewayAddr = "CLOUDPHONE_S3_GATEWAY_ADDR"
	envS3GatewayKey  = "CLOUDPHONE_S3_GATEWAY_ACCESS_KEY"
	envS3GatewaySec  = "CLOUDPHONE_S3_GATEWAY_SECRET_KEY"
	envS3GatewayReg  = "CLOUDPHONE_S3_GATEWAY_REGION"
)

// StartS3 starts a private S3-compatible server with its data under dir
// (objects in dir/data, the generated credentials in dir/credentials, the log
// in dir/s3.log), so objects and credentials survive a Stop and a new start
// on the same dir, and returns once the bucket exists (created when missing).
// The server is this program re-executed: its main must call RunS3Gateway
// first thing. The server keeps running after ctx is done, until Stop.
func StartS3(ctx context.Context, dir string, opts S3Options, log *slog.Logger) (*S3, error) {
	if !gatewayHooked.Load() {
		return nil, errors.New("start s3: this program's main does not call services.RunS3Gateway; set S3_ENDPOINT instead")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Bucket == "" {
		opts.Bucket = "cloudphone"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("s3 data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("create s3 data dir: %w", err)
	}
	key, secret, err := s3Credentials(filepath.Join(dir, "credentials"))
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("s3 gateway: find this program: %w", err)
	}
	s := &S3{dir: dir, log: log, cfg: objectstore.Config{
		AccessKeyID: key, SecretAccessKey: secret, Bucket: opts.Bucket, Region: opts.Region,
	}}
	for attempt := 1; ; attempt++ {
		err := s.start(ctx, self)
		if err == nil {
			log.Info("s3 started", "dir", dir, "endpoint", s.cfg.Endpoint, "pid", s.proc.cmd.Process.Pid)
			return s, nil
		}
		var exited errExited
		if attempt < startAttempts && errors.As(err, &exited) && strings.Contains(err.Error(), "address already in use") {
			log.Warn("s3 port taken, retrying with another", "endpoint", s.cfg.Endpoint)
			continue
		}
		return nil, err
	}
}

func (s *S3) start(ctx context.Context, self string) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.cfg.Endpoint = "http://" + addr
	store, err := objectstore.New(s.cfg)
	if err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, "s3.log")
	offset := fileSize(logPath)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open s3 log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(),
		envS3GatewayDir+"="+filepath.Join(s.dir, "data"),
		envS3GatewayAddr+"="+addr,
		envS3GatewayKey+"="+s.cfg.AccessKeyID,
		envS3GatewaySec+"="+s.cfg.SecretAccessKey,
		envS3GatewayReg+"="+s.cfg.Region,
	)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr(nil, syscall.SIGTERM)
	s.proc, err = startProcess("s3 gateway", cmd)
	if err != nil {
		return err
	}
	if err := s.proc.waitReady(ctx, store.EnsureBucket); err != nil {
		s.proc.kill()
		return fmt.Errorf("s3 gateway on %s: %w\n%s", addr, err, tail(logPath, offset, 2048))
	}
	return nil
}

// Config is how to reach the server: endpoint, credentials, bucket, region.
func (s *S3) Config() objectstore.Config { return s.cfg }

// Env is Config as the S3_* environment variables.
func (s *S3) Env() []string {
	return []string{
		"S3_ENDPOINT=" + s.cfg.Endpoint,
		"S3_ACCESS_KEY_ID=" + s.cfg.AccessKeyID,
		"S3_SECRET_ACCESS_KEY=" + s.cfg.SecretAccessKey,
		"S3_BUCKET=" + s.cfg.Bucket,
		"S3_REGION=" + s.cfg.Region,
	}
}

// Stop shuts the server down (SIGTERM), waits for it until ctx is done or
// 30 s passed, and kills it after that. It returns an error when the server
// had to be killed or had exited by itself before. Calling it again returns
// the same result.
func (s *S3) Stop(ctx context.Context) error {
	err := s.proc.stop(ctx, syscall.SIGTERM)
	if err == nil {
		s.log.Info("s3 stopped", "dir", s.dir)
	}
	return err
}

// Kill ends the server at once, as a crash would (tests of an unreachable
// store).
func (s *S3) Kill() { s.proc.kill() }

// s3Credentials returns the key pair stored at path, generating and storing
// one on first use.
func s3Credentials(path string) (key, secret string, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if k, sec, ok := strings.Cut(strings.TrimSpace(string(b)), ":"); ok && k != "" && sec != "" {
			return k, sec, nil
		}
		return "", "", fmt.Errorf("s3 credentials %s: not KEY:SECRET", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("read s3 credentials: %w", err)
	}
	k, sec := make([]byte, 10), make([]byte, 20)
	_, _ = rand.Read(k)
	_, _ = rand.Read(sec)
	key, secret = "CP"+strings.ToUpper(hex.EncodeToString(k)), hex.EncodeToString(sec)
	if err := os.WriteFile(path, []byte(key+":"+secret+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("store s3 credentials: %w", err)
	}
	return key, secret, nil
}
