package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
)

// flags are a command's flags plus the global ones; flags may come before
// or after the positional arguments, and everything after "--" is
// positional.
type flags struct {
	*flag.FlagSet
	json       bool
	configPath string
	url        string
	rest       []string // after "--"
}

func newFlags(name string) *flags {
	f := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.SetOutput(io.Discard)
	f.BoolVar(&f.json, "json", false, "print JSON")
	f.StringVar(&f.configPath, "config", "", "config file (default $XDG_CONFIG_HOME/cpctl/config.json)")
	f.StringVar(&f.url, "url", "", "platform URL (overrides the config file)")
	return f
}

// parse parses args and returns the positional arguments, wanting between
// min and max of them (max < 0: any).
func (f *flags) parse(args []string, min, max int, names string) ([]string, error) {
	if i := indexOf(args, "--"); i >= 0 {
		f.rest = args[i+1:]
		args = args[:i]
	}
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			return nil, exitf(exitUsage, "%s: %v (usage: cpctl %s %s)", f.Name(), err, f.Name(), names)
		}
		if f.NArg() == 0 {
			break
		}
		pos = append(pos, f.Arg(0))
		args = f.Args()[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, exitf(exitUsage, "usage: cpctl %s %s", f.Name(), names)
	}
	return pos, nil
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}

// shellJoin joins a command's words the way `adb shell` does: with spaces,
// as the phone's shell will split them again.
func shellJoin(words []string) string { return strings.Join(words, " ") }

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func jsonString(s string) ([]byte, error) { return json.Marshal(s) }
