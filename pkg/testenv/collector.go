package testenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// CollectorOptions says how StartCollector runs a collector binary. The
// zero value runs it in the test's working directory with its output kept
// in memory only.
type CollectorOptions struct {
	// Args are the command-line arguments (--config, --set=…).
	Args []string
	// WorkDir is the process's working directory; "" is the test's, where
	// a relative --config path is then looked up.
	WorkDir string
	// LogPath, when set, also receives the process's stdout and stderr, for
	// a reader outside the test.
	LogPath string
	// Prepare adjusts the command before it starts: credentials,
	// capabilities, environment.
	Prepare func(*exec.Cmd)
	// Poll is how often WaitUntil evaluates its condition; 0 is 250ms.
	// Suites whose condition has a side effect (sending a packet, running
	// a program) choose it to pace that effect.
	Poll time.Duration
	// TailLines is how many lines of the log a failed test prints; 0 is 60.
	TailLines int
}

// Collector is a collector binary running as a child of the test. It is
// killed at the end of the test if it still runs, and the tail of its log is
// printed when the test failed.
type Collector struct {
	cmd     *exec.Cmd
	log     *lockedBuffer
	poll    time.Duration
	exited  chan struct{}
	waitErr error // of Wait, once exited is closed
}

// StartCollector starts bin with opts and fails the test if it cannot.
func StartCollector(t testing.TB, bin string, opts CollectorOptions) *Collector {
	t.Helper()
	c := &Collector{log: &lockedBuffer{}, poll: opts.Poll, exited: make(chan struct{})}
	if c.poll <= 0 {
		c.poll = 250 * time.Millisecond
	}
	tailLines := opts.TailLines
	if tailLines <= 0 {
		tailLines = 60
	}
	var out io.Writer = c.log
	var logFile *os.File
	if opts.LogPath != "" {
		var err error
		if logFile, err = os.Create(opts.LogPath); err != nil {
			t.Fatal(err)
		}
		out = io.MultiWriter(logFile, c.log)
	}
	c.cmd = exec.Command(bin, opts.Args...)
	c.cmd.Dir = opts.WorkDir
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if opts.Prepare != nil {
		opts.Prepare(c.cmd)
	}
	if err := c.cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		t.Fatal(err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(c.exited)
	}()
	t.Cleanup(func() {
		if c.Running() {
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("collector log (%s %s), last %d lines:\n%s", filepath.Base(bin), strings.Join(opts.Args, " "), tailLines, Tail(c.Log(), tailLines))
		}
	})
	return c
}

// Pid is the process's id.
func (c *Collector) Pid() int { return c.cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (c *Collector) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Log is everything the process wrote to stdout and stderr so far.
func (c *Collector) Log() string { return c.log.String() }

// Stop sends sig and waits up to limit for the process to exit. It returns
// how long the exit took and the exit status (-1 when killed by a signal or
// still running); err says why it could not be stopped in time: it had
// already exited, the signal could not be sent, or limit passed.
func (c *Collector) Stop(sig os.Signal, limit time.Duration) (took time.Duration, code int, err error) {
	if !c.Running() {
		return 0, c.cmd.ProcessState.ExitCode(), fmt.Errorf("the collector had already exited: %v", c.waitErr)
	}
	start := time.Now()
	if err := c.cmd.Process.Signal(sig); err != nil {
		return 0, -1, err
	}
	select {
	case <-c.exited:
		return time.Since(start), c.cmd.ProcessState.ExitCode(), nil
	case <-time.After(limit):
		return limit, -1, fmt.Errorf("the collector still runs %s after %v", limit, sig)
	}
}

// WaitUntil evaluates cond every Poll until it holds, failing the test with
// cond's last detail once timeout passes, or as soon as the collector is
// found to have exited (even if cond would hold: it waits on a running
// collector).
func (c *Collector) WaitUntil(t testing.TB, what string, timeout time.Duration, cond func() (ok bool, detail string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if !c.Running() {
			t.Fatalf("the collector exited (%v) while waiting until %s", c.waitErr, what)
		}
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s; last: %s", timeout, what, detail)
		}
		time.Sleep(c.poll)
	}
}

// Tail is the last n lines of s, each cut to 400 bytes: exporters log
// whole stack traces and payloads on one line.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

// lockedBuffer is a bytes.Buffer the process's output goroutine writes
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
