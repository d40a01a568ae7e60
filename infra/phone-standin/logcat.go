package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// logBuffer is the phone's log: a ring of lines in logcat's threadtime
// format, and the readers following it.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
	max   int
	subs  map[chan string]struct{}
	pid   int
}

func newLogBuffer(max int) *logBuffer {
	return &logBuffer{max: max, subs: map[chan string]struct{}{}, pid: os.Getpid()}
}

// add records one line with priority (V, D, I, W, E) and tag.
func (l *logBuffer) add(priority byte, tag, format string, args ...any) {
	line := fmt.Sprintf("%s %5d %5d %c %-8s: %s", time.Now().UTC().Format("01-02 15:04:05.000"),
		l.pid, l.pid, priority, tag, fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > l.max {
		l.lines = append(l.lines[:0], l.lines[len(l.lines)-l.max:]...)
	}
	for ch := range l.subs {
		select {
		case ch <- line:
		default: // a reader that does not keep up loses lines, as logcat's do
		}
	}
}

// snapshot returns the lines held now and, when follow is set, a channel
// of the lines added afterwards (stop with unsubscribe).
func (l *logBuffer) snapshot(follow bool) ([]string, chan string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.lines...)
	if !follow {
		return out, nil
	}
	ch := make(chan string, 256)
	l.subs[ch] = struct{}{}
	return out, ch
}

func (l *logBuffer) unsubscribe(ch chan string) {
	l.mu.Lock()
	delete(l.subs, ch)
	l.mu.Unlock()
}

func (l *logBuffer) clear() {
	l.mu.Lock()
	l.lines = nil
	l.mu.Unlock()
}
