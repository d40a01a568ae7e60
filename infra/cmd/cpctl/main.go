// Command cpctl is the cloudphone command line: sign in, buy a plan, rent
// phones and use them — a shell, screenshots, logs, and the real `adb`
// through the platform's ADB gateway.
//
//	cpctl login --url https://cloud.example --username alice --password-stdin
//	cpctl phones create --name p1 --wait
//	cpctl adb-connect p1          # first line: adb connect 127.0.0.1:PORT
//
// Every command takes --json (machine-readable output on stdout) and
// --config (the file holding the URL and tokens, by default
// $XDG_CONFIG_HOME/cpctl/config.json, mode 0600). Exit codes: 0 success,
// 1 failure, 2 bad usage or input, 3 not signed in or not allowed, 4 not
// found, 5 conflict with the phone's state, 6 refused for funds, quota or
// rate, 7 an order or phone ended failed, 8 timed out waiting; `shell`
// exits with the command's own exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitAuth      = 3
	exitNotFound  = 4
	exitConflict  = 5
	exitRefused   = 6
	exitFailed    = 7
	exitTimedOut  = 8
	exitInterrupt = 130
)

// exitError carries an exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// app is one run of cpctl.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	env            func(string) string
}

type command struct {
	name, args, help string
	run              func(a *app, ctx context.Context, args []string) error
}

func (a *app) commands() []command {
	return []command{
		{"login", "[--url URL] [--username U] [--password-stdin]", "sign in and keep the tokens in the config file", (*app).login},
		{"logout", "", "revoke the tokens and forget them", (*app).logout},
		{"plans", "", "list the plans on sale", (*app).plans},
		{"buy", "PLAN [--no-wait] [--timeout D]", "buy a plan and wait until the order is active or failed", (*app).buy},
		{"balance", "", "show the balance", (*app).balance},
		{"phones", "list|create|get|start|stop|restart|delete|wait …", "manage phones (cpctl phones help)", (*app).phones},
		{"adb-connect", "PHONE [--port N]", "tunnel a local port to the phone's ADB over the gateway until Ctrl-C", (*app).adbConnect},
		{"shell", "PHONE [--timeout S] -- CMD…", "run a command on the phone and exit with its code", (*app).shell},
		{"screenshot", "PHONE -o FILE.png", "save a screenshot of the phone (-o - for stdout)", (*app).screenshot},
		{"logs", "PHONE [-f]", "print the phone's log (-f: follow)", (*app).logs},
	}
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cpctl COMMAND [ARGS] [--json] [--config FILE]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range a.commands() {
		fmt.Fprintf(w, "  %-12s %-52s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nexit codes: 0 ok, 1 failure, 2 usage, 3 not signed in/not allowed, 4 not found, 5 conflict,")
	fmt.Fprintln(w, "            6 funds/quota/rate refused, 7 ended failed, 8 timed out; shell: the command's code")
}

// run runs cpctl with args (without the program name) and returns the exit
// code.
func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		a.usage(a.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range a.commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(a, ctx, args[1:])
		if err == nil {
			return exitOK
		}
		var ee *exitError
		if errors.As(err, &ee) && ee.err == nil {
			return ee.code
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return exitInterrupt
		}
		fmt.Fprintln(a.stderr, "cpctl:", err)
		return exitCode(err)
	}
	fmt.Fprintf(a.stderr, "cpctl: unknown command %q\n", args[0])
	a.usage(a.stderr)
	return exitUsage
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, env: os.Getenv}
	os.Exit(a.run(ctx, os.Args[1:]))
}
