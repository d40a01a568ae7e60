package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
)

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) table() *tabwriter.Writer { return tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0) }

func (a *app) login(ctx context.Context, args []string) error {
	f := newFlags("login")
	username := f.String("username", "", "login name or e-mail")
	passwordStdin := f.Bool("password-stdin", false, "read the password from stdin (first line)")
	if _, err := f.parse(args, 0, 0, "[--url URL] [--username U] [--password-stdin]"); err != nil {
		return err
	}
	path, err := a.configPath(f.configPath)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if f.url != "" {
		cfg.URL = f.url
	}
	if cfg.URL == "" {
		return exitf(exitUsage, "no platform URL: cpctl login --url URL")
	}
	if cfg.URL, err = normalizeURL(cfg.URL); err != nil {
		return err
	}
	in := bufio.NewReader(a.stdin)
	if *username == "" {
		if *passwordStdin {
			return exitf(exitUsage, "--password-stdin needs --username")
		}
		fmt.Fprint(a.stderr, "Username: ")
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			return exitf(exitUsage, "no username given")
		}
		*username = strings.TrimSpace(line)
	}
	var password string
	if *passwordStdin {
		line, err := in.ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("read the password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		file, ok := a.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(file.Fd())) {
			return exitf(exitUsage, "stdin is not a terminal: use --password-stdin")
		}
		fmt.Fprint(a.stderr, "Password: ")
		b, err := term.ReadPassword(int(file.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return fmt.Errorf("read the password: %w", err)
		}
		password = string(b)
	}
	if *username == "" || password == "" {
		return exitf(exitUsage, "username and password are required")
	}
	c := &client{http: httpClient(), path: path, cfg: cfg, userAgent: "cpctl"}
	c.cfg.AccessToken, c.cfg.RefreshToken = "", ""
	var t tokens
	if err := c.do(ctx, "POST", "/api/v1/auth/login", map[string]string{"login": *username, "password": password}, &t); err != nil {
		return err
	}
	cfg.Username, cfg.AccessToken, cfg.RefreshToken = *username, t.AccessToken, t.RefreshToken
	if err := cfg.save(path); err != nil {
		return err
	}
	if f.json {
		return a.printJSON(map[string]string{"url": cfg.URL, "username": cfg.Username, "config": path})
	}
	fmt.Fprintf(a.stdout, "Signed in to %s as %s (tokens in %s)\n", cfg.URL, cfg.Username, path)
	return nil
}

func (a *app) logout(ctx context.Context, args []string) error {
	f := newFlags("logout")
	if _, err := f.parse(args, 0, 0, ""); err != nil {
		return err
	}
	c, err := a.newClient(f, true)
	if err != nil {
		return err
	}
	cfg := c.config()
	var revokeErr error
	if cfg.AccessToken != "" {
		revokeErr = c.do(ctx, "POST", "/api/v1/auth/logout", map[string]string{"refresh_token": cfg.RefreshToken}, nil)
	}
	cfg = c.config()
	cfg.AccessToken, cfg.RefreshToken = "", ""
	if err := cfg.save(c.path); err != nil {
		return err
	}
	if revokeErr != nil && exitCode(revokeErr) != exitAuth {
		return fmt.Errorf("the tokens were forgotten here, but the platform did not revoke them: %w", revokeErr)
	}
	if !f.json {
		fmt.Fprintln(a.stdout, "Signed out")
	}
	return nil
}

// quota is a plan's quota.
type quota struct {
	MaxDevices        int `json:"max_devices"`
	MaxRunningDevices int `json:"max_running_devices"`
	MaxCPUCores       int `json:"max_cpu_cores"`
	MaxMemoryMB       int `json:"max_memory_mb"`
	MaxStorageGB      int `json:"max_storage_gb"`
}

type plan struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Price      int64  `json:"price"`
	Currency   string `json:"currency"`
	PeriodDays int    `json:"period_days"`
	Quota      quota  `json:"quota"`
}

func money(minor int64, currency string) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, currency)
}

func (a *app) plans(ctx context.Context, args []string) error {
	f := newFlags("plans")
	if _, err := f.parse(args, 0, 0, ""); err != nil {
		return err
	}
	c, err := a.newClient(f, true)
	if err != nil {
		return err
	}
	var out struct {
		Plans []json.RawMessage `json:"plans"`
	}
	if err := c.do(ctx, "GET", "/api/v1/plans", nil, &out); err != nil {
		return err
	}
	if f.json {
		return a.printJSON(out)
	}
	tw := a.table()
	fmt.Fprintln(tw, "ID\tNAME\tPRICE\tDAYS\tPHONES\tRUNNING\tCPU\tMEMORY")
	for _, raw := range out.Plans {
		var p plan
		_ = json.Unmarshal(raw, &p)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d MB\n", p.ID, p.Name, money(p.Price, p.Currency), p.PeriodDays,
			p.Quota.MaxDevices, p.Quota.MaxRunningDevices, p.Quota.MaxCPUCores, p.Quota.MaxMemoryMB)
	}
	return tw.Flush()
}

type order struct {
	ID            string `json:"id"`
	PlanID        string `json:"plan_id"`
	Status        string `json:"status"`
	Price         int64  `json:"price"`
	Currency      string `json:"currency"`
	FailureCode   string `json:"failure_code"`
	FailureReason string `json:"failure_reason"`
}

func (a *app) buy(ctx context.Context, args []string) error {
	f := newFlags("buy")
	noWait := f.Bool("no-wait", false, "do not wait for the order to complete")
	timeout := f.Duration("timeout", 5*time.Minute, "how long to wait")
	key := f.String("idempotency-key", "", "the order's Idempotency-Key (default: a new one; repeat it to retry safely)")
	pos, err := f.parse(args, 1, 1, "PLAN [--no-wait] [--timeout D] [--idempotency-key K]")
	if err != nil {
		return err
	}
	c, err := a.newClient(f, false)
	if err != nil {
		return err
	}
	if *key == "" {
		*key = randomKey()
	}
	var o order
	if err := c.do(ctx, "POST", "/api/v1/orders", map[string]string{"plan_id": pos[0]}, &o, "Idempotency-Key", *key); err != nil {
		return err
	}
	if !*noWait {
		p := a.newProgress()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		for o.Status != "active" && o.Status != "failed" && o.Status != "cancelled" {
			p.update(fmt.Sprintf("order %s: %s", o.ID, o.Status))
			select {
			case <-ctx.Done():
				p.done()
				if ctx.Err() == context.DeadlineExceeded {
					return exitf(exitTimedOut, "order %s is still %s after %s", o.ID, o.Status, *timeout)
				}
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			if err := c.do(ctx, "GET", "/api/v1/orders/"+o.ID, nil, &o); err != nil {
				p.done()
				return err
			}
		}
		p.done()
	}
	if f.json {
		if err := a.printJSON(o); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "order %s for plan %s (%s): %s\n", o.ID, o.PlanID, money(o.Price, o.Currency), o.Status)
	}
	if o.Status == "failed" || o.Status == "cancelled" {
		return exitf(exitFailed, "order %s %s: %s %s", o.ID, o.Status, o.FailureCode, o.FailureReason)
	}
	return nil
}

func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (a *app) balance(ctx context.Context, args []string) error {
	f := newFlags("balance")
	if _, err := f.parse(args, 0, 0, ""); err != nil {
		return err
	}
	c, err := a.newClient(f, false)
	if err != nil {
		return err
	}
	var b struct {
		Balance  int64  `json:"balance"`
		Currency string `json:"currency"`
	}
	if err := c.do(ctx, "GET", "/api/v1/balance", nil, &b); err != nil {
		return err
	}
	if f.json {
		return a.printJSON(b)
	}
	fmt.Fprintln(a.stdout, money(b.Balance, b.Currency))
	return nil
}
