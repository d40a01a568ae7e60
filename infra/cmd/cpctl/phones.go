package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

type phone struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	NodeName  string `json:"node_name"`
	Image     string `json:"image"`
	CPUCores  int    `json:"cpu_cores"`
	MemoryMB  int    `json:"memory_mb"`
	StorageGB int    `json:"storage_gb"`
	LastError string `json:"last_error"`
	CreatedAt string `json:"created_at"`
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// phoneClient makes the client f asks for and resolves ref, a phone's id
// or name, to its id.
func (a *app) phoneClient(ctx context.Context, f *flags, ref string) (*client, string, error) {
	c, err := a.newClient(f, false)
	if err != nil {
		return nil, "", err
	}
	id, err := c.resolve(ctx, ref)
	return c, id, err
}

// resolve turns a phone's id or name into its id: a name must name exactly
// one of the user's phones.
func (c *client) resolve(ctx context.Context, ref string) (string, error) {
	if uuidPattern.MatchString(ref) {
		return ref, nil
	}
	list, err := c.phones(ctx)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, p := range list {
		if p.Name == ref {
			ids = append(ids, p.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", exitf(exitNotFound, "no phone named %q", ref)
	case 1:
		return ids[0], nil
	}
	return "", exitf(exitUsage, "%d phones are named %q: give the id (%s)", len(ids), ref, strings.Join(ids, ", "))
}

// phoneList is the answer of GET /api/v1/devices.
type phoneList struct {
	Devices []phone `json:"devices"`
}

func (c *client) phones(ctx context.Context) ([]phone, error) {
	var out phoneList
	err := c.do(ctx, "GET", "/api/v1/devices", nil, &out)
	return out.Devices, err
}

const phonesUsage = `usage: cpctl phones list
       cpctl phones create [--name N] [--cpu C] [--memory-mb M] [--storage-gb S] [--image I] [--wait]
       cpctl phones get|start|stop|restart PHONE [--wait]
       cpctl phones delete PHONE [--wait]
       cpctl phones wait PHONE [--state running] [--timeout 5m]
PHONE is a phone's id or its name.`

func (a *app) phones(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprintln(a.stderr, phonesUsage)
		if len(args) == 0 {
			return exitf(exitUsage, "phones: a subcommand is required")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list", "ls":
		return a.phonesList(ctx, args)
	case "create":
		return a.phonesCreate(ctx, args)
	case "get":
		return a.phonesAct(ctx, "get", args)
	case "start", "stop", "restart", "delete":
		return a.phonesAct(ctx, sub, args)
	case "wait":
		return a.phonesWait(ctx, args)
	}
	fmt.Fprintln(a.stderr, phonesUsage)
	return exitf(exitUsage, "phones: unknown subcommand %q", sub)
}

func (a *app) printPhones(list []phone, asJSON bool) error {
	if asJSON {
		return a.printJSON(phoneList{Devices: list})
	}
	tw := a.table()
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tCPU\tMEMORY\tNODE")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d MB\t%s\n", p.ID, p.Name, p.State, p.CPUCores, p.MemoryMB, p.NodeName)
	}
	return tw.Flush()
}

func (a *app) printPhone(p phone, raw json.RawMessage, asJSON bool) error {
	if asJSON {
		_, err := a.stdout.Write(append(raw, '\n'))
		return err
	}
	fmt.Fprintf(a.stdout, "id:       %s\nname:     %s\nstate:    %s\nimage:    %s\ncpu:      %d\nmemory:   %d MB\nstorage:  %d GB\nnode:     %s\n",
		p.ID, p.Name, p.State, p.Image, p.CPUCores, p.MemoryMB, p.StorageGB, p.NodeName)
	if p.LastError != "" {
		fmt.Fprintf(a.stdout, "error:    %s\n", p.LastError)
	}
	return nil
}

func (a *app) phonesList(ctx context.Context, args []string) error {
	f := newFlags("phones list")
	if _, err := f.parse(args, 0, 0, ""); err != nil {
		return err
	}
	c, err := a.newClient(f, false)
	if err != nil {
		return err
	}
	list, err := c.phones(ctx)
	if err != nil {
		return err
	}
	return a.printPhones(list, f.json)
}

func (a *app) phonesCreate(ctx context.Context, args []string) error {
	f := newFlags("phones create")
	name := f.String("name", "phone", "the phone's name")
	cpu := f.Int("cpu", 2, "CPU cores")
	mem := f.Int("memory-mb", 2048, "memory in MB")
	storage := f.Int("storage-gb", 0, "storage in GB (0: the platform's default)")
	image := f.String("image", "", "image (empty: the platform's default)")
	wait := f.Bool("wait", false, "wait until the phone runs")
	timeout := f.Duration("timeout", 5*time.Minute, "how long to wait")
	if _, err := f.parse(args, 0, 0, "[--name N] [--cpu C] [--memory-mb M] [--storage-gb S] [--image I] [--wait]"); err != nil {
		return err
	}
	c, err := a.newClient(f, false)
	if err != nil {
		return err
	}
	body := map[string]any{"name": *name, "cpu_cores": *cpu, "memory_mb": *mem}
	if *storage > 0 {
		body["storage_gb"] = *storage
	}
	if *image != "" {
		body["image"] = *image
	}
	var raw json.RawMessage
	if err := c.do(ctx, "POST", "/api/v1/devices", body, &raw); err != nil {
		return err
	}
	var p phone
	_ = json.Unmarshal(raw, &p)
	if *wait {
		return a.waitFor(ctx, c, p.ID, "running", *timeout, f.json)
	}
	return a.printPhone(p, raw, f.json)
}

// phonesAct gets a phone or asks for an operation on it, and with --wait
// waits for the state the operation leads to.
func (a *app) phonesAct(ctx context.Context, op string, args []string) error {
	f := newFlags("phones " + op)
	wait := f.Bool("wait", false, "wait until the operation completes")
	timeout := f.Duration("timeout", 5*time.Minute, "how long to wait")
	pos, err := f.parse(args, 1, 1, "PHONE [--wait] [--timeout D]")
	if err != nil {
		return err
	}
	c, id, err := a.phoneClient(ctx, f, pos[0])
	if err != nil {
		return err
	}
	method, path, target := "POST", "/api/v1/devices/"+url.PathEscape(id)+"/"+op, ""
	switch op {
	case "get":
		method, path = "GET", "/api/v1/devices/"+url.PathEscape(id)
	case "delete":
		method, path, target = "DELETE", "/api/v1/devices/"+url.PathEscape(id), "deleted"
	case "start", "restart":
		target = "running"
	case "stop":
		target = "stopped"
	}
	var raw json.RawMessage
	if err := c.do(ctx, method, path, nil, &raw); err != nil {
		return err
	}
	if *wait && target != "" {
		return a.waitFor(ctx, c, id, target, *timeout, f.json)
	}
	var p phone
	_ = json.Unmarshal(raw, &p)
	return a.printPhone(p, raw, f.json)
}

func (a *app) phonesWait(ctx context.Context, args []string) error {
	f := newFlags("phones wait")
	state := f.String("state", "running", "the state to wait for (running, stopped, deleted)")
	timeout := f.Duration("timeout", 5*time.Minute, "how long to wait")
	pos, err := f.parse(args, 1, 1, "PHONE [--state S] [--timeout D]")
	if err != nil {
		return err
	}
	c, id, err := a.phoneClient(ctx, f, pos[0])
	if err != nil {
		return err
	}
	return a.waitFor(ctx, c, id, *state, *timeout, f.json)
}

// waitFor polls phone id until it is in state want, showing progress; a
// phone that ends in error (or deleted, when waiting for another state)
// fails.
func (a *app) waitFor(ctx context.Context, c *client, id, want string, timeout time.Duration, asJSON bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := a.newProgress()
	for {
		var raw json.RawMessage
		err := c.do(ctx, "GET", "/api/v1/devices/"+url.PathEscape(id), nil, &raw)
		if err != nil && ctx.Err() != nil {
			p.done()
			if ctx.Err() == context.DeadlineExceeded {
				return exitf(exitTimedOut, "phone %s did not become %s in %s", id, want, timeout)
			}
			return ctx.Err()
		}
		if err != nil {
			p.done()
			return err
		}
		var ph phone
		_ = json.Unmarshal(raw, &ph)
		switch {
		case ph.State == want:
			p.done()
			return a.printPhone(ph, raw, asJSON)
		case ph.State == "error" || (ph.State == "deleted" && want != "deleted"):
			p.done()
			_ = a.printPhone(ph, raw, asJSON)
			return exitf(exitFailed, "phone %s is %s, not %s: %s", id, ph.State, want, ph.LastError)
		}
		p.update(fmt.Sprintf("phone %s (%s): %s, waiting for %s", ph.Name, id, ph.State, want))
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
