package testutil

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module ai-proxy\n") {
		t.Fatalf("RepoRoot() = %s: go.mod %q (%v), want module ai-proxy", root, b, err)
	}
}

func TestArtifact(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "build"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "build", "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "build", "full"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		rel     string
		missing bool
	}{
		{"build/full", false},
		{"build/empty", true},
		{"build/none", true},
		{"build", true}, // a directory
	}
	for _, tc := range cases {
		path, err := Artifact(root, tc.rel)
		if want := filepath.Join(root, filepath.FromSlash(tc.rel)); path != want {
			t.Errorf("Artifact(%q) path %s, want %s", tc.rel, path, want)
		}
		if got := errors.Is(err, ErrNotBuilt); got != tc.missing {
			t.Errorf("Artifact(%q) error %v, want missing=%v", tc.rel, err, tc.missing)
		}
		if tc.missing && err.Error() != tc.rel+" is missing: run make build first" {
			t.Errorf("Artifact(%q) error %q", tc.rel, err)
		}
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("FreeAddr() = %q (%v), want 127.0.0.1:port", addr, err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on FreeAddr() %s", addr)
	}
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort() = %d", p)
	}
}

// shell runs script under /bin/sh as a Proc.
func shell(t *testing.T, script string) *Proc {
	t.Helper()
	p, err := StartProc(exec.Command("/bin/sh", "-c", script))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestProcReadyAndAddrs(t *testing.T) {
	// The lines come in pieces, from stdout and stderr; lines after the
	// ready line are not address lines.
	p := shell(t, `trap 'echo "gateway: stopped" >&2; exit 0' TERM
printf 'gateway: listener main on 127.0.0.1:1\ngateway: ad' >&2; sleep 0.1
printf 'min on 127.0.0.1:2\n'; echo 'gateway: ready' >&2
echo 'gateway: late on 127.0.0.1:3' >&2
while :; do sleep 0.05; done`)
	if err := p.WaitReady(10 * time.Second); err != nil {
		t.Fatalf("WaitReady: %v; output:\n%s", err, p.Output())
	}
	for name, want := range map[string]string{"listener main": "127.0.0.1:1", "admin": "127.0.0.1:2"} {
		if got, ok := p.Addr(name); !ok || got != want {
			t.Errorf("Addr(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if !p.Running() || p.ExitCode() != -1 {
		t.Errorf("Running() = %v, ExitCode() = %d while it runs", p.Running(), p.ExitCode())
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() || p.ExitCode() != 0 || !strings.HasSuffix(p.Output(), "gateway: stopped\n") {
		t.Errorf("after Stop: running %v, exit code %d, output:\n%s", p.Running(), p.ExitCode(), p.Output())
	}
	if got, ok := p.Addr("late"); ok {
		t.Errorf("Addr(late) = %q: a line after the ready line", got)
	}
}

func TestProcWaitReadyErrors(t *testing.T) {
	p := shell(t, `echo 'gateway: bad config' >&2; exit 1`)
	if err := p.WaitReady(10 * time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("exiting process: WaitReady = %v, want ErrExited", err)
	}
	if p.ExitCode() != 1 || p.Output() != "gateway: bad config\n" {
		t.Errorf("exit code %d, output %q", p.ExitCode(), p.Output())
	}

	p = shell(t, `trap '' TERM; while :; do sleep 0.05; done`)
	if err := p.WaitReady(100 * time.Millisecond); !errors.Is(err, ErrNotReady) {
		t.Errorf("silent process: WaitReady = %v, want ErrNotReady", err)
	}
	if err := p.Stop(200 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
		t.Errorf("process ignoring SIGTERM: Stop = %v, want ErrStillRunning", err)
	}
	if p.Running() {
		t.Error("still running after Stop killed it")
	}
}

func TestFindCheckout(t *testing.T) {
	c := MustFindCheckout()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want := Checkout{Root: root, Wasm: filepath.Join(root, "build", "ai-proxy.wasm"), Gateway: filepath.Join(root, "build", "gateway")}
	if c.Root != want.Root || c.Wasm != want.Wasm || c.Gateway != want.Gateway {
		t.Errorf("MustFindCheckout() = %+v, want %+v", *c, want)
	}
	c.wasmErr, c.gatewayErr = nil, nil
	c.NeedBuild(t) // must not fail with both artifacts present
	c.NeedWasm(t)
}

func TestByteChunks(t *testing.T) {
	b := []byte("abc")
	got := ByteChunks(b)
	if len(got) != 3 || string(got[0]) != "a" || string(got[1]) != "b" || string(got[2]) != "c" {
		t.Fatalf("ByteChunks(abc) = %q", got)
	}
	if len(ByteChunks(nil)) != 0 {
		t.Error("ByteChunks(nil) is not empty")
	}
}
