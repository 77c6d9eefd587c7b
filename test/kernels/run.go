package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run is one test binary run on one kernel: in a guest or on this machine.
type run struct {
	Column   string // the matrix column: "6.1", "6.12", "this machine (6.18)"
	Package  string // as given: ./collectors/events/oom
	Name     string // oom
	Guest    bool
	Passed   bool
	Why      []string // why it failed
	Duration time.Duration
	Log      string
	Out      output
}

// lineSink takes a process's combined output, and for each line: prints
// it with a prefix, writes it to the log, and parses it. markerSeen is
// closed when the guest's result line arrives.
type lineSink struct {
	mu         sync.Mutex
	buf        []byte
	prefix     string
	term       io.Writer
	log        io.Writer
	parser     *outputParser
	markerSeen chan struct{}
	closed     bool
}

func newLineSink(prefix string, term, log io.Writer, p *outputParser) *lineSink {
	return &lineSink{prefix: prefix, term: term, log: log, parser: p, markerSeen: make(chan struct{})}
}

func (s *lineSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, b...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		s.line(string(s.buf[:i]))
		s.buf = s.buf[i+1:]
	}
	return len(b), nil
}

// Flush passes on a last line that has no line ending.
func (s *lineSink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) > 0 {
		s.line(string(s.buf))
		s.buf = nil
	}
}

func (s *lineSink) line(l string) {
	l = strings.TrimRight(l, "\r")
	fmt.Fprintf(s.term, "%s%s\n", s.prefix, l)
	fmt.Fprintln(s.log, l)
	s.parser.Line(l)
	if !s.closed && s.parser.out.Marker {
		s.closed = true
		close(s.markerSeen)
	}
}

// execute runs argv in its own process group with its output going to
// sink, and kills the group when timeout passes or ctx ends. With grace > 0
// it also kills the process once grace has passed after the marker line
// (a guest that printed its result but does not power off). It reports
// whether the timeout hit.
func execute(ctx context.Context, argv []string, dir string, env []string, timeout, grace time.Duration, sink *lineSink) (timedOut bool, err error) {
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil // never the terminal: QEMU would switch it to raw mode
	cmd.Stdout, cmd.Stderr = sink, sink
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return false, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var marker <-chan struct{}
	if grace > 0 {
		marker = sink.markerSeen
	}
	select {
	case err = <-done:
	case <-marker:
		select {
		case err = <-done:
		case <-time.After(grace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			err = nil // the result is in; only the power-off hung
		}
	}
	sink.Flush()
	timedOut = errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	return timedOut, err
}

// judgeGuest decides a guest run from its output.
func judgeGuest(o output, timedOut bool, timeout time.Duration) []string {
	var why []string
	if timedOut {
		why = append(why, fmt.Sprintf("timed out after %s (QEMU killed)", timeout))
	}
	if !o.Marker {
		why = append(why, "no "+resultMarker+" line: the guest did not finish the test binary")
	} else if o.RC != 0 {
		why = append(why, fmt.Sprintf("test binary exited %d", o.RC))
	}
	for _, p := range o.Problems {
		why = append(why, "kernel: "+p)
	}
	return why
}

// judgeHost decides a run on this machine from its exit.
func judgeHost(err error, timedOut bool, timeout time.Duration) []string {
	switch {
	case timedOut:
		return []string{fmt.Sprintf("timed out after %s (killed)", timeout)}
	case err != nil:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return []string{fmt.Sprintf("test binary exited %d", exit.ExitCode())}
		}
		return []string{err.Error()}
	}
	return nil
}
