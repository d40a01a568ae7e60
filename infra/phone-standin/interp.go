package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The stand-in's shell is a small interpreter, not a POSIX shell: words
// with '…', "…" and \ quoting; commands joined by ;, &&, || and | (each
// stage of a pipe runs to completion, its output buffered for the next);
// redirections >, >>, 2>, 2>&1 and <; and the built-in commands of
// commands.go. An unknown command fails with 127, as sh does.

// token is a word or an operator.
type token struct {
	s  string
	op bool
}

var errSyntax = errors.New("syntax error")

func tokenize(line string) ([]token, error) {
	var out []token
	var word strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			out = append(out, token{s: word.String()})
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush()
		case c == '#' && !inWord:
			flush()
			return out, nil
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("%w: unterminated '", errSyntax)
			}
			word.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				word.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("%w: unterminated \"", errSyntax)
			}
			inWord = true
		case c == '\\':
			if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
				inWord = true
			}
		case c == '>' && inWord && word.String() == "2":
			word.Reset()
			inWord = false
			if strings.HasPrefix(line[i:], ">&1") {
				out = append(out, token{s: "2>&1", op: true})
				i += 2
			} else {
				out = append(out, token{s: "2>", op: true})
			}
		case c == '>' && strings.HasPrefix(line[i:], ">&2"):
			if inWord && word.String() == "1" {
				word.Reset()
				inWord = false
			}
			flush()
			out = append(out, token{s: ">&2", op: true})
			i += 2
		case strings.IndexByte(";&|<>", c) >= 0:
			flush()
			op := string(c)
			if i+1 < len(line) && line[i+1] == c && c != ';' && c != '<' {
				op += string(c)
				i++
			}
			out = append(out, token{s: op, op: true})
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return out, nil
}

// stdio is where a command reads and writes, and its working directory.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	cwd      string
}

// run runs a command line and returns its exit status.
func (p *phone) run(ctx context.Context, line string, sio stdio) int {
	toks, err := tokenize(line)
	if err != nil {
		fmt.Fprintf(sio.err, "/system/bin/sh: %v\n", err)
		return 2
	}
	status := 0
	skip := false
	var pipeline [][]token
	var cur []token
	runPipeline := func() {
		if len(cur) > 0 || len(pipeline) > 0 {
			pipeline = append(pipeline, cur)
		}
		if !skip && len(pipeline) > 0 {
			status = p.runPipeline(ctx, pipeline, sio)
		}
		pipeline, cur = nil, nil
	}
	for _, t := range toks {
		if ctx.Err() != nil {
			return 130
		}
		if !t.op || (t.s != ";" && t.s != "&" && t.s != "&&" && t.s != "||" && t.s != "|") {
			cur = append(cur, t)
			continue
		}
		if t.s == "|" {
			pipeline = append(pipeline, cur)
			cur = nil
			continue
		}
		runPipeline()
		switch t.s {
		case "&&":
			skip = status != 0
		case "||":
			skip = status == 0
		default:
			skip = false
		}
	}
	runPipeline()
	return status
}

// runPipeline runs a | b | c, each stage fed the previous one's output.
func (p *phone) runPipeline(ctx context.Context, stages [][]token, sio stdio) int {
	in := sio.in
	status := 0
	for i, st := range stages {
		s := sio
		s.in = in
		var buf bytes.Buffer
		if i < len(stages)-1 {
			s.out = &buf
		}
		status = p.runSimple(ctx, st, s)
		in = &buf
	}
	return status
}

// runSimple applies redirections and runs one command.
func (p *phone) runSimple(ctx context.Context, toks []token, sio stdio) int {
	var args []string
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if !t.op {
			args = append(args, t.s)
			continue
		}
		if t.s == "2>&1" {
			sio.err = sio.out
			continue
		}
		if t.s == ">&2" {
			sio.out = sio.err
			continue
		}
		if i+1 >= len(toks) || toks[i+1].op {
			fmt.Fprintf(sio.err, "/system/bin/sh: syntax error: %q unexpected\n", t.s)
			return 2
		}
		target := abs(sio.cwd, toks[i+1].s)
		i++
		switch t.s {
		case ">", ">>", "2>":
			flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
			if t.s == ">>" {
				flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
			}
			f, err := os.OpenFile(p.fs.host(target), flag, 0o644)
			if err != nil {
				fmt.Fprintf(sio.err, "/system/bin/sh: can't create %s: %v\n", target, deviceErr(target, err))
				return 1
			}
			closers = append(closers, f)
			if t.s == "2>" {
				sio.err = f
			} else {
				sio.out = f
			}
		case "<":
			f, err := os.Open(p.fs.host(target))
			if err != nil {
				fmt.Fprintf(sio.err, "/system/bin/sh: %v\n", deviceErr(target, err))
				return 1
			}
			closers = append(closers, f)
			sio.in = f
		default:
			fmt.Fprintf(sio.err, "/system/bin/sh: syntax error: %q unexpected\n", t.s)
			return 2
		}
	}
	if len(args) == 0 {
		return 0
	}
	return p.command(ctx, args, sio)
}
