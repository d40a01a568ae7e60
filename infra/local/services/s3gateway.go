package services

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// RunS3Gateway serves the S3 gateway and exits when this process was started
// by StartS3 to be one, and returns at once otherwise. A program that calls
// StartS3 calls it first thing in main (and a test binary in TestMain).
//
// The gateway runs in a process of its own because its posix backend changes
// the working directory of its process and allows one instance per process.
func RunS3Gateway() {
	gatewayHooked.Store(true)
	dir := os.Getenv(envS3GatewayDir)
	if dir == "" {
		return
	}
	if err := runS3Gateway(dir); err != nil {
		fmt.Fprintf(os.Stderr, "s3 gateway: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// gatewayHooked says this program calls RunS3Gateway, so StartS3 may
// re-execute it: without the hook, the child would run the program's main
// (a test binary, its tests) again.
var gatewayHooked atomic.Bool

func runS3Gateway(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The copy limit has no default in the library: S3's own is 5 GiB.
	be, err := posix.New(dir, meta.XattrMeta{}, posix.PosixOpts{CopyObjectThreshold: 5 << 30})
	if err != nil {
		return fmt.Errorf("posix backend on %s: %w", dir, err)
	}
	defer be.Shutdown()
	return embedgw.RunVersityGW(ctx, be, &embedgw.Config{
		RootUserAccess:    os.Getenv(envS3GatewayKey),
		RootUserSecret:    os.Getenv(envS3GatewaySec),
		Region:            os.Getenv(envS3GatewayReg),
		Ports:             []string{os.Getenv(envS3GatewayAddr)},
		MaxConnections:    250,
		MaxRequests:       100,
		MultipartMaxParts: 10000,
		Quiet:             true,
		KeepAlive:         true,
	})
}
