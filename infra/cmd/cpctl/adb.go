package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

type connection struct {
	URL    string `json:"url"`
	Ticket string `json:"ticket"`
}

// adbConnect listens on a local port and, for every TCP connection the adb
// server (or anything else) makes to it, asks the platform for a fresh
// ticket and tunnels the connection's bytes over a WebSocket to the phone.
// The first line on stdout is the adb command to run; it runs until ctx
// ends (Ctrl-C).
func (a *app) adbConnect(ctx context.Context, args []string) error {
	f := newFlags("adb-connect")
	port := f.Int("port", 0, "local port (0: a free one)")
	pos, err := f.parse(args, 1, 1, "PHONE [--port N]")
	if err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return exitf(exitUsage, "--port %d is not a port", *port)
	}
	c, id, err := a.phoneClient(ctx, f, pos[0])
	if err != nil {
		return err
	}
	// Check now that the phone can be reached, so that a mistake shows
	// before adb is pointed at the port.
	if _, err := c.connection(ctx, id); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return exitf(exitFailure, "listen on 127.0.0.1:%d: %v", *port, err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	fmt.Fprintf(a.stdout, "adb connect %s\n", addr)
	if f, ok := a.stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	fmt.Fprintf(a.stderr, "Tunnelling %s to phone %s; Ctrl-C to stop.\n", addr, id)
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", addr, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.tunnel(ctx, c, id, conn); err != nil {
				fmt.Fprintf(a.stderr, "cpctl: connection from %s: %v\n", conn.RemoteAddr(), err)
			}
		}()
	}
}

// connection asks for a fresh ticket and the gateway URL of phone id.
func (c *client) connection(ctx context.Context, id string) (connection, error) {
	var conn connection
	err := c.do(ctx, "GET", "/api/v1/devices/"+url.PathEscape(id)+"/connection", nil, &conn)
	if err == nil && conn.URL == "" {
		err = errors.New("the platform answered no gateway URL")
	}
	return conn, err
}

// tunnel pipes local, one accepted TCP connection, through a new gateway
// session until either side ends.
func (a *app) tunnel(ctx context.Context, c *client, id string, local net.Conn) error {
	defer local.Close()
	conn, err := c.connection(ctx, id)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ws, resp, err := websocket.Dial(dctx, conn.URL, &websocket.DialOptions{
		HTTPClient: c.http,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.config().AccessToken}, "User-Agent": {c.userAgent}},
	})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode/100 != 1 {
			return readError(resp)
		}
		return fmt.Errorf("open the gateway session: %w", err)
	}
	remote := websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary)
	defer remote.Close()
	stop := context.AfterFunc(ctx, func() { _ = remote.Close(); _ = local.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	go func() {
		buf := make([]byte, 64<<10)
		_, _ = io.CopyBuffer(remote, onlyReader{local}, buf)
		done <- struct{}{}
	}()
	go func() {
		buf := make([]byte, 64<<10)
		_, _ = io.CopyBuffer(onlyWriter{local}, remote, buf)
		done <- struct{}{}
	}()
	<-done
	_ = remote.Close()
	_ = local.Close()
	<-done
	return nil
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo so io.CopyBuffer uses the
// buffer given: one WebSocket message per read of up to 64 KiB.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

func (a *app) shell(ctx context.Context, args []string) error {
	f := newFlags("shell")
	timeout := f.Int("timeout", 0, "seconds the command may run (0: the platform's default, 30)")
	pos, err := f.parse(args, 1, -1, "PHONE [--timeout S] -- CMD…")
	if err != nil {
		return err
	}
	words := append(pos[1:], f.rest...)
	if len(words) == 0 {
		return exitf(exitUsage, "usage: cpctl shell PHONE -- CMD…")
	}
	c, id, err := a.phoneClient(ctx, f, pos[0])
	if err != nil {
		return err
	}
	var res struct {
		Stdout    string `json:"stdout"`
		Stderr    string `json:"stderr"`
		ExitCode  int    `json:"exit_code"`
		TimedOut  bool   `json:"timed_out"`
		Truncated bool   `json:"truncated"`
	}
	body := map[string]any{"command": shellJoin(words)}
	if *timeout > 0 {
		body["timeout_s"] = *timeout
	}
	if err := c.do(ctx, "POST", "/api/v1/devices/"+url.PathEscape(id)+"/shell", body, &res); err != nil {
		return err
	}
	if f.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		_, _ = io.WriteString(a.stdout, res.Stdout)
		_, _ = io.WriteString(a.stderr, res.Stderr)
	}
	switch {
	case res.TimedOut:
		return exitf(exitTimedOut, "the command did not end within its timeout")
	case res.ExitCode != 0:
		return &exitError{code: res.ExitCode & 0xff}
	}
	return nil
}

func (a *app) screenshot(ctx context.Context, args []string) error {
	f := newFlags("screenshot")
	out := f.String("o", "", "file to write the PNG to (- for stdout)")
	pos, err := f.parse(args, 1, 1, "PHONE -o FILE.png")
	if err != nil {
		return err
	}
	if *out == "" {
		return exitf(exitUsage, "usage: cpctl screenshot PHONE -o FILE.png")
	}
	c, id, err := a.phoneClient(ctx, f, pos[0])
	if err != nil {
		return err
	}
	resp, err := c.send(ctx, "GET", "/api/v1/devices/"+url.PathEscape(id)+"/screenshot", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if *out == "-" {
		_, err := io.Copy(a.stdout, resp.Body)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".screenshot-*.png")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	if f.json {
		return a.printJSON(map[string]any{"file": *out, "bytes": n})
	}
	fmt.Fprintf(a.stderr, "Saved %s (%d bytes)\n", *out, n)
	return nil
}

func (a *app) logs(ctx context.Context, args []string) error {
	f := newFlags("logs")
	var follow bool
	f.BoolVar(&follow, "f", false, "follow new lines")
	f.BoolVar(&follow, "follow", false, "follow new lines")
	pos, err := f.parse(args, 1, 1, "PHONE [-f]")
	if err != nil {
		return err
	}
	c, id, err := a.phoneClient(ctx, f, pos[0])
	if err != nil {
		return err
	}
	path := "/api/v1/devices/" + url.PathEscape(id) + "/logs?follow=" + strconv.FormatBool(follow)
	for {
		ended, err := a.readEvents(ctx, c, path, f.json)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		// The platform ends a followed stream after a while; pick it up
		// again. Lines printed in between may repeat.
		if !follow || !ended {
			return nil
		}
		path = "/api/v1/devices/" + url.PathEscape(id) + "/logs?follow=true"
	}
}

// readEvents prints the data lines of one Server-Sent Events stream and
// reports whether it ended with "event: end".
func (a *app) readEvents(ctx context.Context, c *client, path string, asJSON bool) (bool, error) {
	resp, err := c.send(ctx, "GET", path, nil, "Accept", "text/event-stream")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	w := bufio.NewWriter(a.stdout)
	defer w.Flush()
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "":
			data := strings.TrimPrefix(line, "data: ")
			if asJSON {
				b, _ := jsonString(data)
				fmt.Fprintf(w, "{\"line\":%s}\n", b)
			} else {
				fmt.Fprintln(w, data)
			}
		case line == "":
			if event == "end" {
				return true, nil
			}
			event = ""
			if err := w.Flush(); err != nil {
				return false, err
			}
		}
	}
	return false, sc.Err()
}
