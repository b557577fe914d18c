package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReadyLine is the line harness/cmd/gateway prints on stderr once every
// listener accepts connections, after its address lines.
const ReadyLine = "gateway: ready"

// Errors of Proc's waits.
var (
	ErrExited       = errors.New("exited before it was ready")
	ErrNotReady     = errors.New("not ready in time")
	ErrStillRunning = errors.New("still running after SIGTERM")
)

// Proc is a started gateway process: build/gateway, or a test build of
// harness/cmd/gateway. It collects the process's stderr, and its stdout
// unless the caller set Cmd.Stdout, and watches them for what the gateway
// prints before it serves: the address lines "gateway: NAME on ADDR" (NAME is
// "listener L", "admin" or "mock LLM") and then ReadyLine.
type Proc struct {
	Cmd    *exec.Cmd
	out    *lineLog
	exited chan struct{}
}

// StartProc starts cmd (its Stderr, and its Stdout when nil, become the
// Proc's) and waits for it in the background. The caller stops it: Stop or
// Kill.
func StartProc(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, out: &lineLog{addrs: map[string]string{}, ready: make(chan struct{})}, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait() // returns once all output is written: Output is complete after Exited
		close(p.exited)
	}()
	return p, nil
}

// Ready is closed when the process has printed ReadyLine.
func (p *Proc) Ready() <-chan struct{} { return p.out.ready }

// Exited is closed when the process has exited and all its output is
// collected; Cmd.ProcessState is set then.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitCode is the exit code of an exited process (-1 when a signal killed
// it) and -1 while it runs.
func (p *Proc) ExitCode() int {
	if p.Running() {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Output is what the process has printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Addr returns the ADDR of the line "gateway: NAME on ADDR" printed before
// ReadyLine.
func (p *Proc) Addr(name string) (string, bool) { return p.out.addr(name) }

// WaitReady waits until the process has printed ReadyLine. It returns
// ErrExited when the process exits first, and ErrNotReady after timeout
// (the process is left running).
func (p *Proc) WaitReady(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.Ready():
		return nil
	case <-p.exited:
		select {
		case <-p.Ready(): // printed it, then exited
			return nil
		default:
			return fmt.Errorf("gateway %w (exit code %d)", ErrExited, p.ExitCode())
		}
	case <-t.C:
		return fmt.Errorf("gateway %w: %v", ErrNotReady, timeout)
	}
}

// Stop sends SIGTERM and waits up to timeout for the process to exit. After
// that it kills the process and returns ErrStillRunning. A process that has
// exited already is not an error.
func (p *Proc) Stop(timeout time.Duration) error {
	var errSignal error
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errSignal = fmt.Errorf("SIGTERM: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return errSignal
	case <-t.C:
		p.Kill()
		return errors.Join(errSignal, fmt.Errorf("gateway %w for %v", ErrStillRunning, timeout))
	}
}

// Kill kills the process, if it still runs, and waits until it has exited.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.exited
}

// lineLog is the process's output: all of it, and its whole lines watched
// for the address lines and ReadyLine.
type lineLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte // the last line, until its newline comes
	addrs   map[string]string
	ready   chan struct{}
	isReady bool
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	if l.isReady {
		return len(b), nil // nothing more to watch for
	}
	l.partial = append(l.partial, b...)
	for !l.isReady {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

// line notes one whole line; l.mu is held.
func (l *lineLog) line(s string) {
	if s == ReadyLine {
		l.isReady = true
		close(l.ready)
		return
	}
	if rest, ok := strings.CutPrefix(s, "gateway: "); ok {
		if name, addr, ok := strings.Cut(rest, " on "); ok {
			l.addrs[name] = addr
		}
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func (l *lineLog) addr(name string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.addrs[name]
	return a, ok
}
