package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions tunes a private Postgres server. The zero value is a
// durable server found on the machine, run as "postgres" when this process is
// root.
type PostgresOptions struct {
	// Fsync makes commits durable against an operating-system crash. Turn it
	// off only for throwaway data such as test databases: commits are much
	// cheaper without it and a crash of the server alone loses nothing.
	Fsync bool
	// BinDir holds initdb and postgres. Empty means: the directory of
	// `postgres` on PATH, else the newest /usr/lib/postgresql/<version>/bin.
	BinDir string
	// User is the OS user the server runs as when this process is root
	// (Postgres refuses to run as root). Empty means "postgres".
	User string
	// Restart restarts the server, on the same port and data, when it dies
	// by itself (bounded, logged); see keeper.
	Restart bool
	// Port is the TCP port to listen on; 0 picks a free one (retrying on a
	// clash). A fixed port lets a restarted server keep its URL.
	Port int
}

// Postgres is a private Postgres server running as a child process. Its
// methods are safe for concurrent use.
type Postgres struct {
	dir       string
	port      int
	socketDir string
	tmpSocket bool // socketDir is a short /tmp directory removed on Stop
	proc      *process
	keep      *keeper // set with PostgresOptions.Restart
	log       *slog.Logger
}

// maxSocketPath is the longest unix socket path the kernel accepts (sun_path
// is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// StartPostgres starts a private server with its data in dir, listening on
// 127.0.0.1 on a free port, and returns once it accepts connections (at most
// about 30 s). dir is initialised with initdb (trust authentication, superuser
// postgres, UTF8, C locale) when it holds no PG_VERSION, and reused as it is
// otherwise, so data survives a Stop and a new start. A postmaster.pid left by
// a crashed run is removed when its process is gone; a server still running on
// dir is an error. The server keeps running after ctx is done, until Stop.
func StartPostgres(ctx context.Context, dir string, opts PostgresOptions, log *slog.Logger) (*Postgres, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("postgres data dir %s: %w", dir, err)
	}
	bin, err := postgresBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential(opts.User)
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(dir, cred); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := initdb(ctx, bin, dir, cred); err != nil {
			return nil, err
		}
		log.Info("postgres data directory initialised", "dir", dir)
	}
	if err := removeStalePID(dir); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	if err := touch(logPath, cred); err != nil {
		return nil, err
	}

	pg := &Postgres{dir: dir, socketDir: dir, log: log}
	if len(dir)+len("/.s.PGSQL.65535") > maxSocketPath {
		pg.socketDir, err = os.MkdirTemp("/tmp", "pg")
		if err != nil {
			return nil, fmt.Errorf("postgres socket dir: %w", err)
		}
		pg.tmpSocket = true
		if err := chown(pg.socketDir, cred); err != nil {
			pg.removeSocketDir()
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		err := pg.start(ctx, bin, logPath, opts, cred)
		if err == nil {
			log.Info("postgres started", "dir", dir, "port", pg.port, "pid", pg.proc.cmd.Process.Pid)
			if opts.Restart {
				again := opts
				again.Port = pg.port
				pg.keep = keep("postgres", pg.proc, func(ctx context.Context) (*process, error) {
					if err := removeStalePID(dir); err != nil {
						return nil, err
					}
					if err := pg.start(ctx, bin, logPath, again, cred); err != nil {
						return nil, err
					}
					return pg.proc, nil
				}, log)
			}
			return pg, nil
		}
		var exited errExited
		if opts.Port == 0 && attempt < startAttempts && errors.As(err, &exited) && strings.Contains(err.Error(), "in use") {
			log.Warn("postgres port taken, retrying with another", "port", pg.port)
			continue
		}
		pg.removeSocketDir()
		return nil, err
	}
}

func (pg *Postgres) start(ctx context.Context, bin, logPath string, opts PostgresOptions, cred *syscall.Credential) error {
	port := opts.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return err
		}
	}
	pg.port = port
	fsync := "off"
	if opts.Fsync {
		fsync = "on"
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	offset := fileSize(logPath)
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", pg.dir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+pg.socketDir,
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
		"-c", "fsync="+fsync,
		"-c", "logging_collector=off",
	)
	cmd.Dir = pg.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = childAttr(cred, syscall.SIGINT)
	pg.proc, err = startProcess("postgres", cmd)
	if err != nil {
		return err
	}
	url := pg.URL()
	err = pg.proc.waitReady(ctx, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return conn.Ping(ctx)
	})
	if err != nil {
		pg.proc.kill()
		return fmt.Errorf("postgres on port %d: %w\n%s", port, err, tail(logPath, offset, 2048))
	}
	return nil
}

// URL is the server's connection URL:
// postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
func (pg *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// Port is the TCP port the server listens on.
func (pg *Postgres) Port() int { return pg.port }

// Dir is the server's data directory.
func (pg *Postgres) Dir() string { return pg.dir }

// Stop shuts the server down fast (SIGINT: open transactions are rolled back,
// committed data is kept), waits for it until ctx is done or 30 s passed, and
// kills it after that. It returns an error when the server had to be killed
// or had exited by itself before. Calling it again returns the same result.
func (pg *Postgres) Stop(ctx context.Context) error {
	var err error
	if pg.keep != nil {
		err = pg.keep.stop(ctx, syscall.SIGINT)
	} else {
		err = pg.proc.stop(ctx, syscall.SIGINT)
	}
	pg.removeSocketDir()
	if err == nil {
		pg.log.Info("postgres stopped", "dir", pg.dir)
	}
	return err
}

func (pg *Postgres) removeSocketDir() {
	if pg.tmpSocket {
		_ = os.RemoveAll(pg.socketDir)
	}
}

// postgresBinDir finds the directory holding initdb and postgres.
func postgresBinDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	slices.SortFunc(candidates, func(a, b string) int { return versionOf(b) - versionOf(a) })
	if len(candidates) == 0 {
		return "", errors.New("postgres binaries not found: install Postgres or set DATABASE_URL")
	}
	return filepath.Dir(candidates[0]), nil
}

func versionOf(binPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(binPath))))
	return v
}

// postgresCredential returns the identity the server runs as: nil (this
// process's) unless this process is root.
func postgresCredential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("postgres refuses to run as root and user %q is unusable: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s gid %q: %w", name, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// prepareDataDir creates dir with the 0700 mode Postgres demands and, when
// the server runs as another user, hands the whole tree to that user after
// checking that the user can reach it.
func prepareDataDir(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create postgres data dir: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create postgres data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("postgres data dir %s: %w", dir, err)
	}
	if cred == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if !traversable(p, cred) {
			return fmt.Errorf("postgres data dir %s: uid %d cannot enter %s (make it world-executable, chmod o+x)", dir, cred.Uid, p)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return chown(path, cred)
	})
}

func traversable(dir string, cred *syscall.Credential) bool {
	st, err := os.Stat(dir)
	if err != nil {
		return false
	}
	mode := st.Mode().Perm()
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case mode&0o001 != 0 || !ok:
		return true
	case sys.Uid == cred.Uid:
		return mode&0o100 != 0
	case sys.Gid == cred.Gid:
		return mode&0o010 != 0
	}
	return false
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Lchown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("hand %s to uid %d: %w", path, cred.Uid, err)
	}
	return nil
}

func touch(path string, cred *syscall.Credential) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return chown(path, cred)
}

func initdb(ctx context.Context, bin, dir string, cred *syscall.Credential) error {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", dir, "-A", "trust", "-U", "postgres", "--encoding", "UTF8", "--locale", "C")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", dir, err, out)
	}
	return nil
}

// removeStalePID removes dir/postmaster.pid when the process it names is not
// a running Postgres (a crashed run, or a pid since reused by another
// program); Postgres itself would refuse to start over a live pid.
func removeStalePID(dir string) error {
	path := filepath.Join(dir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 && isPostgres(pid) {
		return fmt.Errorf("a postgres server (pid %d) is already running on %s", pid, dir)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	return nil
}

// isPostgres reports whether pid is a live Postgres process. Without /proc
// (macOS) a live pid is taken to be one.
func isPostgres(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist) || !procMounted()
	}
	name := filepath.Base(string(bytes.SplitN(cmdline, []byte{0}, 2)[0]))
	return strings.HasPrefix(name, "postgres") || strings.HasPrefix(name, "postmaster")
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/cmdline")
	return err == nil
}
