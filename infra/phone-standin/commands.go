package main

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"image"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// builtin is one of the stand-in's commands.
type builtin func(p *phone, ctx context.Context, args []string, sio stdio) int

var builtins map[string]builtin

func init() {
	builtins = map[string]builtin{
		"true":      func(*phone, context.Context, []string, stdio) int { return 0 },
		"false":     func(*phone, context.Context, []string, stdio) int { return 1 },
		"echo":      cmdEcho,
		"cat":       cmdCat,
		"ls":        cmdLs,
		"rm":        cmdRm,
		"mkdir":     cmdMkdir,
		"md5sum":    digestCmd(md5.New),
		"sha1sum":   digestCmd(sha1.New),
		"sha256sum": digestCmd(sha256.New),
		"getprop":   cmdGetprop,
		"pm":        cmdPm,
		"cmd":       cmdCmd,
		"screencap": cmdScreencap,
		"logcat":    cmdLogcat,
		"input":     cmdInput,
		"wm":        cmdWm,
		"sleep":     cmdSleep,
		"id": func(_ *phone, _ context.Context, _ []string, sio stdio) int {
			fmt.Fprintln(sio.out, "uid=2000(shell) gid=2000(shell) groups=2000(shell) context=u:r:shell:s0")
			return 0
		},
		"uname": func(_ *phone, _ context.Context, _ []string, sio stdio) int {
			fmt.Fprintln(sio.out, "Linux")
			return 0
		},
		"sh": cmdSh,
		// `adb logcat` runs `export ANDROID_LOG_TAGS=""; exec logcat …`.
		"export": func(*phone, context.Context, []string, stdio) int { return 0 },
	}
}

// command runs one built-in, or answers like sh for an unknown name.
func (p *phone) command(ctx context.Context, args []string, sio stdio) int {
	if args[0] == "exit" {
		code := 0
		if len(args) > 1 {
			code, _ = strconv.Atoi(args[1])
		}
		return code & 0xff
	}
	if args[0] == "exec" {
		if len(args) == 1 {
			return 0
		}
		args = args[1:]
	}
	name := path.Base(args[0])
	b, ok := builtins[name]
	if !ok {
		fmt.Fprintf(sio.err, "/system/bin/sh: %s: inaccessible or not found\n", args[0])
		return 127
	}
	return b(p, ctx, args, sio)
}

func cmdSh(p *phone, ctx context.Context, args []string, sio stdio) int {
	if len(args) >= 3 && args[1] == "-c" {
		return p.run(ctx, args[2], sio)
	}
	fmt.Fprintln(sio.err, "sh: the stand-in's shell runs only `sh -c COMMAND`")
	return 2
}

func cmdEcho(_ *phone, _ context.Context, args []string, sio stdio) int {
	args = args[1:]
	nl := true
	if len(args) > 0 && args[0] == "-n" {
		nl, args = false, args[1:]
	}
	s := strings.Join(args, " ")
	if nl {
		s += "\n"
	}
	_, _ = io.WriteString(sio.out, s)
	return 0
}

func cmdCat(p *phone, ctx context.Context, args []string, sio stdio) int {
	if len(args) == 1 {
		_, _ = io.Copy(sio.out, sio.in)
		return 0
	}
	status := 0
	for _, a := range args[1:] {
		f, err := p.fs.Open(abs(sio.cwd, a))
		if err != nil {
			fmt.Fprintf(sio.err, "cat: %v\n", err)
			status = 1
			continue
		}
		_, err = io.Copy(sio.out, f)
		f.Close()
		if err != nil {
			return 1
		}
	}
	return status
}

func cmdLs(p *phone, _ context.Context, args []string, sio stdio) int {
	long, all := false, false
	var paths []string
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			long = long || strings.Contains(a, "l")
			all = all || strings.Contains(a, "a")
			continue
		}
		paths = append(paths, a)
	}
	if len(paths) == 0 {
		paths = []string{sio.cwd}
	}
	status := 0
	line := func(name string, fi os.FileInfo) {
		if !long {
			fmt.Fprintln(sio.out, name)
			return
		}
		fmt.Fprintf(sio.out, "%s 1 shell shell %d %s %s\n", fi.Mode().String(), fi.Size(), fi.ModTime().UTC().Format("2006-01-02 15:04"), name)
	}
	for _, a := range paths {
		dp := abs(sio.cwd, a)
		fi, err := p.fs.Stat(dp)
		if err != nil {
			fmt.Fprintf(sio.err, "ls: %v\n", deviceErr(a, err))
			status = 1
			continue
		}
		if !fi.IsDir() {
			line(a, fi)
			continue
		}
		entries, err := p.fs.ReadDir(dp)
		if err != nil {
			fmt.Fprintf(sio.err, "ls: %v\n", deviceErr(a, err))
			status = 1
			continue
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") && !all {
				continue
			}
			line(e.Name(), e)
		}
	}
	return status
}

func cmdRm(p *phone, _ context.Context, args []string, sio stdio) int {
	force, recursive := false, false
	status := 0
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			force = force || strings.Contains(a, "f")
			recursive = recursive || strings.ContainsAny(a, "rR")
			continue
		}
		dp := abs(sio.cwd, a)
		fi, err := p.fs.Stat(dp)
		if err != nil {
			if !force {
				fmt.Fprintf(sio.err, "rm: %v\n", deviceErr(a, err))
				status = 1
			}
			continue
		}
		if fi.IsDir() && !recursive {
			fmt.Fprintf(sio.err, "rm: %s: is a directory\n", a)
			status = 1
			continue
		}
		if dp == "/" {
			fmt.Fprintln(sio.err, "rm: refusing to remove /")
			status = 1
			continue
		}
		if err := os.RemoveAll(p.fs.host(dp)); err != nil {
			fmt.Fprintf(sio.err, "rm: %v\n", deviceErr(a, err))
			status = 1
		}
	}
	return status
}

func cmdMkdir(p *phone, _ context.Context, args []string, sio stdio) int {
	parents := false
	status := 0
	for _, a := range args[1:] {
		if a == "-p" {
			parents = true
			continue
		}
		host := p.fs.host(abs(sio.cwd, a))
		var err error
		if parents {
			err = os.MkdirAll(host, 0o777)
		} else {
			err = os.Mkdir(host, 0o777)
		}
		if err != nil {
			fmt.Fprintf(sio.err, "mkdir: %v\n", deviceErr(a, err))
			status = 1
		}
	}
	return status
}

// digestCmd is md5sum, sha1sum or sha256sum: "<hex>  <path>" per file.
func digestCmd(newHash func() hash.Hash) builtin {
	return func(p *phone, _ context.Context, args []string, sio stdio) int {
		if args[0] == "exec" {
			if len(args) == 1 {
				return 0
			}
			args = args[1:]
		}
		name := path.Base(args[0])
		if len(args) == 1 {
			h := newHash()
			_, _ = io.Copy(h, sio.in)
			fmt.Fprintf(sio.out, "%s  -\n", hex.EncodeToString(h.Sum(nil)))
			return 0
		}
		status := 0
		for _, a := range args[1:] {
			f, err := p.fs.Open(abs(sio.cwd, a))
			if err != nil {
				fmt.Fprintf(sio.err, "%s: %v\n", name, err)
				status = 1
				continue
			}
			h := newHash()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				fmt.Fprintf(sio.err, "%s: %s: %v\n", name, a, err)
				status = 1
				continue
			}
			fmt.Fprintf(sio.out, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), a)
		}
		return status
	}
}

func cmdGetprop(p *phone, _ context.Context, args []string, sio stdio) int {
	if len(args) >= 2 {
		v, ok := p.props[args[1]]
		if !ok && len(args) >= 3 {
			v = args[2]
		}
		fmt.Fprintln(sio.out, v)
		return 0
	}
	keys := make([]string, 0, len(p.props))
	for k := range p.props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(sio.out, "[%s]: [%s]\n", k, p.props[k])
	}
	return 0
}

// cmdCmd serves `cmd package …` (what adb install streams to) as pm.
func cmdCmd(p *phone, ctx context.Context, args []string, sio stdio) int {
	if len(args) >= 2 && args[1] == "package" {
		return cmdPm(p, ctx, append([]string{"pm"}, args[2:]...), sio)
	}
	if len(args) == 2 && args[1] == "-l" {
		fmt.Fprintln(sio.out, "List of services:\npackage")
		return 0
	}
	name := ""
	if len(args) >= 2 {
		name = args[1]
	}
	fmt.Fprintf(sio.err, "cmd: Can't find service: %s\n", name)
	return 20
}

func cmdPm(p *phone, _ context.Context, args []string, sio stdio) int {
	if len(args) < 2 {
		fmt.Fprintln(sio.err, "usage (phone stand-in): pm install [-r] [-S SIZE] <apk> | pm uninstall <package> | pm list packages | pm path <package>")
		return 1
	}
	switch args[1] {
	case "install":
		size := int64(-1)
		var apk string
		for i := 2; i < len(args); i++ {
			switch a := args[i]; {
			case a == "-S" && i+1 < len(args):
				n, err := strconv.ParseInt(args[i+1], 10, 64)
				if err != nil || n < 0 {
					fmt.Fprintf(sio.err, "Error: invalid size %q\n", args[i+1])
					return 1
				}
				size = n
				i++
			case a == "-i" || a == "--user" || a == "--install-location" || a == "-p":
				i++ // options with a value the stand-in ignores
			case strings.HasPrefix(a, "-"):
				// -r, -t, -g, -d, --streaming …: accepted
			default:
				apk = a
			}
		}
		var pkg string
		var err error
		switch {
		case apk != "":
			pkg, err = p.pm.install(abs(sio.cwd, apk))
		case size >= 0:
			pkg, err = p.pm.installStream(sio.in, size)
		default:
			fmt.Fprintln(sio.err, "Error: APK content must be streamed (-S SIZE) or a path given")
			return 1
		}
		if err != nil {
			var ie *installError
			if !errors.As(err, &ie) {
				ie = &installError{"INSTALL_FAILED_INTERNAL_ERROR", err.Error()}
			}
			fmt.Fprintf(sio.err, "Failure [%s]\n", ie.Error())
			p.log.add('W', "PackageManager", "install refused: %s", ie.Error())
			return 1
		}
		p.log.add('I', "PackageManager", "installed %s", pkg)
		fmt.Fprintln(sio.out, "Success")
		return 0
	case "uninstall":
		if len(args) < 3 {
			fmt.Fprintln(sio.err, "Error: package name not specified")
			return 1
		}
		pkg := args[len(args)-1]
		if err := p.pm.uninstall(pkg); err != nil {
			fmt.Fprintf(sio.out, "Failure [%v]\n", err)
			return 1
		}
		p.log.add('I', "PackageManager", "uninstalled %s", pkg)
		fmt.Fprintln(sio.out, "Success")
		return 0
	case "list":
		if len(args) < 3 || args[2] != "packages" {
			fmt.Fprintln(sio.err, "Error: the stand-in lists only packages")
			return 1
		}
		withPath := false
		filter := ""
		for _, a := range args[3:] {
			switch {
			case a == "-f":
				withPath = true
			case strings.HasPrefix(a, "-"):
			default:
				filter = a
			}
		}
		pkgs, err := p.pm.list()
		if err != nil {
			fmt.Fprintln(sio.err, err)
			return 1
		}
		for _, pkg := range pkgs {
			if !strings.Contains(pkg, filter) {
				continue
			}
			if withPath {
				fmt.Fprintf(sio.out, "package:%s/%s-1/base.apk=%s\n", appDir, pkg, pkg)
			} else {
				fmt.Fprintf(sio.out, "package:%s\n", pkg)
			}
		}
		return 0
	case "path":
		if len(args) < 3 {
			fmt.Fprintln(sio.err, "Error: package name not specified")
			return 1
		}
		pkgs, err := p.pm.list()
		if err != nil {
			fmt.Fprintln(sio.err, err)
			return 1
		}
		for _, pkg := range pkgs {
			if pkg == args[2] {
				fmt.Fprintf(sio.out, "package:%s/%s-1/base.apk\n", appDir, pkg)
				return 0
			}
		}
		return 1
	}
	fmt.Fprintf(sio.err, "Error: unknown command '%s' (phone stand-in)\n", args[1])
	return 1
}

func cmdScreencap(p *phone, _ context.Context, args []string, sio stdio) int {
	var file string
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			file = a
		}
	}
	b, err := render(p.screen())
	if err != nil {
		fmt.Fprintf(sio.err, "screencap: %v\n", err)
		return 1
	}
	if file != "" {
		if err := os.WriteFile(p.fs.host(abs(sio.cwd, file)), b, 0o644); err != nil {
			fmt.Fprintf(sio.err, "screencap: %v\n", deviceErr(file, err))
			return 1
		}
		return 0
	}
	if _, err := sio.out.Write(b); err != nil {
		return 1
	}
	return 0
}

// cmdLogcat prints the log and follows it until the reader goes away; -d
// dumps and exits, -t N prints the last N lines and exits, -c clears.
func cmdLogcat(p *phone, ctx context.Context, args []string, sio stdio) int {
	follow, tail := true, -1
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "-c":
			p.log.clear()
			return 0
		case "-d":
			follow = false
		case "-t", "-T":
			if i+1 < len(args) {
				n, err := strconv.Atoi(args[i+1])
				if err != nil || n < 0 {
					fmt.Fprintf(sio.err, "logcat: invalid count %q\n", args[i+1])
					return 1
				}
				tail = n
				follow = args[i] == "-T"
				i++
			}
		case "-v", "-b", "-s", "-e", "-f", "--pid":
			i++ // options with a value the stand-in ignores
		}
	}
	lines, ch := p.log.snapshot(follow)
	if ch != nil {
		defer p.log.unsubscribe(ch)
	}
	if tail >= 0 && tail < len(lines) {
		lines = lines[len(lines)-tail:]
	}
	for _, l := range lines {
		if _, err := io.WriteString(sio.out, l+"\n"); err != nil {
			return 1
		}
	}
	for ch != nil {
		select {
		case <-ctx.Done():
			return 0
		case l := <-ch:
			if _, err := io.WriteString(sio.out, l+"\n"); err != nil {
				return 0
			}
		}
	}
	return 0
}

func cmdInput(p *phone, _ context.Context, args []string, sio stdio) int {
	usage := func() int {
		fmt.Fprintln(sio.err, "usage (phone stand-in): input tap X Y | input swipe X1 Y1 X2 Y2 [MS] | input text TEXT | input keyevent KEY…")
		return 1
	}
	if len(args) < 3 {
		return usage()
	}
	num := func(s string) (int, bool) {
		f, err := strconv.ParseFloat(s, 64)
		return int(f), err == nil
	}
	switch args[1] {
	case "tap":
		if len(args) != 4 {
			return usage()
		}
		x, ok1 := num(args[2])
		y, ok2 := num(args[3])
		if !ok1 || !ok2 {
			return usage()
		}
		p.tap(image.Pt(x, y))
	case "swipe":
		if len(args) < 6 {
			return usage()
		}
		x, ok1 := num(args[4])
		y, ok2 := num(args[5])
		if !ok1 || !ok2 {
			return usage()
		}
		p.tap(image.Pt(x, y))
	case "text":
		p.typeText(strings.ReplaceAll(strings.Join(args[2:], " "), "%s", " "))
	case "keyevent":
		for _, k := range args[2:] {
			p.key(k)
		}
	default:
		return usage()
	}
	return 0
}

func cmdWm(p *phone, _ context.Context, args []string, sio stdio) int {
	if len(args) >= 2 && args[1] == "size" {
		fmt.Fprintf(sio.out, "Physical size: %dx%d\n", p.width, p.height)
		return 0
	}
	if len(args) >= 2 && args[1] == "density" {
		fmt.Fprintf(sio.out, "Physical density: %d\n", p.density)
		return 0
	}
	fmt.Fprintln(sio.err, "usage (phone stand-in): wm size | wm density")
	return 1
}

func cmdSleep(_ *phone, ctx context.Context, args []string, sio stdio) int {
	if len(args) != 2 {
		fmt.Fprintln(sio.err, "usage: sleep SECONDS")
		return 1
	}
	s, err := strconv.ParseFloat(args[1], 64)
	if err != nil || s < 0 {
		fmt.Fprintf(sio.err, "sleep: invalid number %q\n", args[1])
		return 1
	}
	select {
	case <-time.After(time.Duration(s * float64(time.Second))):
		return 0
	case <-ctx.Done():
		return 130
	}
}
