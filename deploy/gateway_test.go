package deploy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the gateway process.
const (
	readyTimeout = 45 * time.Second // compile the module, start the VM, listen
	stopTimeout  = 20 * time.Second
)

// gatewayProc is a running build/gateway.
type gatewayProc struct {
	cmd       *exec.Cmd
	listeners map[string]string // name → host:port, from its "listener NAME on ADDR" lines
	admin     string            // host:port, from its "admin on ADDR" line
	mu        sync.Mutex
	stderr    bytes.Buffer
	done      chan struct{}
}

func (g *gatewayProc) output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

// runGateway starts build/gateway with the bootstrap yaml and extra flags and
// waits until it is ready. When it exits before that, ready is false and the
// process's stderr is returned; the test is not failed.
func runGateway(t *testing.T, bootstrapYAML []byte, flags ...string) (g *gatewayProc, ready bool) {
	t.Helper()
	needBuild(t)
	path := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(path, bootstrapYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	g = &gatewayProc{listeners: map[string]string{}, done: make(chan struct{})}
	g.cmd = exec.Command(gatewayBin, append([]string{"-config", path, "-workers", "1"}, flags...)...)
	g.cmd.Dir = repoRoot
	pr, pw := io.Pipe()
	g.cmd.Stderr = pw
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyc := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.stderr.WriteString(line + "\n")
			if addr, ok := strings.CutPrefix(line, "gateway: admin on "); ok {
				g.admin = addr
			}
			if rest, ok := strings.CutPrefix(line, "gateway: listener "); ok {
				if name, addr, ok := strings.Cut(rest, " on "); ok {
					g.listeners[name] = addr
				}
			}
			g.mu.Unlock()
			if line == "gateway: ready" {
				close(readyc)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		g.cmd.Wait()
		pw.Close()
		close(g.done)
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
			return
		default:
		}
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(stopTimeout):
			g.cmd.Process.Kill()
			<-g.done
			t.Errorf("the gateway did not stop on SIGTERM within %v", stopTimeout)
		}
	})
	select {
	case <-readyc:
		return g, true
	case <-g.done:
		return g, false
	case <-time.After(readyTimeout):
		t.Fatalf("the gateway was not ready within %v:\n%s", readyTimeout, g.output())
	}
	return g, false
}

// url is the base URL of the named listener.
func (g *gatewayProc) url(t *testing.T, listener string) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	addr, ok := g.listeners[listener]
	if !ok {
		t.Fatalf("the gateway printed no address for listener %q:\n%s", listener, g.stderr.String())
	}
	return "http://" + addr
}

// adminURL is the base URL of the admin server.
func (g *gatewayProc) adminURL(t *testing.T) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.admin == "" {
		t.Fatalf("the gateway printed no admin address:\n%s", g.stderr.String())
	}
	return "http://" + g.admin
}

// closedAddr is a 127.0.0.1 address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// curlPost sends what the documentation's curl sends: POST with a JSON body,
// curl's User-Agent and Accept, and host as the Host when not "".
func curlPost(t *testing.T, url, host, body string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "curl/8.6.0")
	req.Header.Set("Accept", "*/*")
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
