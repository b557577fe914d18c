package deploy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ai-proxy/e2e/echo"
	"ai-proxy/e2e/mockllm"
	"ai-proxy/harness/testutil"
)

// Timeouts of the gateway process.
const (
	readyTimeout = 45 * time.Second // compile the module, start the VM, listen
	stopTimeout  = 20 * time.Second
)

// runGateway starts build/gateway with the bootstrap yaml and extra flags and
// waits until it is ready. When it exits before that, ready is false and the
// process's output tells why; the test is not failed. It is stopped at the end
// of the test.
func runGateway(t *testing.T, bootstrapYAML []byte, flags ...string) (g *testutil.Proc, ready bool) {
	t.Helper()
	checkout.NeedBuild(t)
	path := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(path, bootstrapYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(checkout.Gateway, append([]string{"-config", path, "-workers", "1"}, flags...)...)
	cmd.Dir = checkout.Root
	g, err := testutil.StartProc(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Stop(stopTimeout); err != nil {
			t.Errorf("the gateway: %v", err)
		}
	})
	switch err := g.WaitReady(readyTimeout); {
	case err == nil:
		return g, true
	case errors.Is(err, testutil.ErrExited):
		return g, false
	default:
		t.Fatalf("%v:\n%s", err, g.Output())
		return g, false
	}
}

// startMocks starts a mock LLM and an echo upstream on 127.0.0.1 (plain
// HTTP), stopped at the end of the test.
func startMocks(t *testing.T) (*mockllm.Server, *echo.Server) {
	t.Helper()
	llm, up := mockllm.New(), echo.New()
	llm.Start(false)
	t.Cleanup(llm.Close)
	up.Start()
	t.Cleanup(up.Close)
	return llm, up
}

// gatewayURL is the base URL of g's address line NAME ("listener L" or
// "admin").
func gatewayURL(t *testing.T, g *testutil.Proc, name string) string {
	t.Helper()
	addr, ok := g.Addr(name)
	if !ok {
		t.Fatalf("the gateway printed no address for %s:\n%s", name, g.Output())
	}
	return "http://" + addr
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
