package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ai-proxy/e2e/mockllm"
)

// The official OpenAI Node SDK against the gateway (issue 3): e2e/sdk/chat.mjs
// runs chat.completions.create without and with stream: true through a
// route-mode listener. The SDK (the version pinned in e2e/sdk/package.json)
// is installed with npm into a cache folder once and reused; without node or
// npm, or when the install fails, the test fails (.ci/run installs them).

// sdkInstallTimeout bounds `npm install` (a cold npm cache downloads the package).
const sdkInstallTimeout = 3 * time.Minute

// sdkTool returns the path of a command the SDK test needs, failing the test
// with what to do when it is missing.
func sdkTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("the OpenAI SDK test needs %s (Node.js 20 or later with npm): not found in PATH (%v); "+
			"install it, e.g. apt-get install -y nodejs npm (.ci/run does)", name, err)
	}
	return p
}

// sdkPackage reads e2e/sdk/package.json and returns it with the pinned
// version of the openai package.
func sdkPackage(t *testing.T) ([]byte, string) {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join(checkout.Root, "e2e", "sdk", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(manifest, &pkg); err != nil {
		t.Fatalf("e2e/sdk/package.json: %v", err)
	}
	version := pkg.Dependencies["openai"]
	if version == "" || strings.ContainsAny(version, "^~<>=* ") {
		t.Fatalf("e2e/sdk/package.json: openai must be pinned to one version, got %q", version)
	}
	return manifest, version
}

// sdkCacheRoot is where installed SDKs are kept: $AI_PROXY_E2E_CACHE, else
// the user's cache folder ($XDG_CACHE_HOME or ~/.cache), else the temp folder.
func sdkCacheRoot() string {
	if d := os.Getenv("AI_PROXY_E2E_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ai-proxy-e2e")
	}
	return filepath.Join(os.TempDir(), "ai-proxy-e2e")
}

// installedVersion is the version of the openai package installed in dir, or "".
func installedVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "openai", "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// installSDK returns a folder holding node_modules/openai at the pinned
// version, installing it on first use. The folder is named after the
// manifest's hash, so that a new pin installs afresh; an install goes to a
// temporary folder renamed into place, so that an interrupted one is never
// mistaken for a finished one.
func installSDK(t *testing.T) string {
	t.Helper()
	manifest, version := sdkPackage(t)
	sum := sha256.Sum256(manifest)
	dir := filepath.Join(sdkCacheRoot(), "node-openai-"+version+"-"+hex.EncodeToString(sum[:6]))
	if installedVersion(dir) == version {
		return dir
	}
	npm := sdkTool(t, "npm")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatalf("SDK cache folder: %v", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		t.Fatalf("SDK cache folder: %v", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sdkInstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error")
	cmd.Dir = tmp
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("installing the OpenAI SDK (npm install openai@%s into %s) failed: %v\n%s", version, tmp, err, out)
	}
	if got := installedVersion(tmp); got != version {
		t.Fatalf("npm install left openai %q in %s, want %s\n%s", got, tmp, version, out)
	}
	t.Logf("installed openai@%s with npm in %v into %s", version, time.Since(t0).Round(time.Millisecond), dir)
	if err := os.Rename(tmp, dir); err != nil {
		if installedVersion(dir) == version {
			return dir // another run installed it meanwhile
		}
		if errors.Is(err, os.ErrExist) || dirExists(dir) {
			// A broken leftover: replace it.
			if rmErr := os.RemoveAll(dir); rmErr == nil {
				err = os.Rename(tmp, dir)
			}
		}
		if err != nil {
			t.Fatalf("SDK cache folder: %v", err)
		}
	}
	return dir
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// sdkResult is what e2e/sdk/chat.mjs prints.
type sdkResult struct {
	SDKVersion string `json:"sdk_version"`
	Plain      struct {
		ID           string         `json:"id"`
		Model        string         `json:"model"`
		Content      string         `json:"content"`
		FinishReason string         `json:"finish_reason"`
		Usage        *mockllm.Usage `json:"usage"`
	} `json:"plain"`
	Stream struct {
		Model        string         `json:"model"`
		Content      string         `json:"content"`
		Chunks       int            `json:"chunks"`
		FinishReason string         `json:"finish_reason"`
		Usage        *mockllm.Usage `json:"usage"`
	} `json:"stream"`
}

func TestOpenAINodeSDK(t *testing.T) {
	checkout.NeedBuild(t)
	node := sdkTool(t, "node")
	nodeVersion, _ := exec.Command(node, "--version").Output()
	sdkDir := installSDK(t)
	_, version := sdkPackage(t)

	mock, _, port := startProbedMock(t)
	g := StartGateway(t, Bootstrap{
		Listeners: []Listener{{Name: "sdk", Plugin: routeConfig("gpt-4"), Cluster: llmCluster, Prefix: "/v1"}},
		Clusters:  []Cluster{{Name: llmCluster, Port: port}},
	}, "-access-log", "off")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(checkout.Root, "e2e", "sdk", "chat.mjs"))
	cmd.Env = append(os.Environ(), "OPENAI_SDK_DIR="+sdkDir, "GATEWAY_BASE_URL="+g.URL("sdk")+"/v1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node e2e/sdk/chat.mjs (node %s, openai %s): %v\nstdout:\n%s\nstderr:\n%s",
			strings.TrimSpace(string(nodeVersion)), version, err, stdout.String(), stderr.String())
	}
	t.Logf("node %s, openai %s: both calls in %v", strings.TrimSpace(string(nodeVersion)), version, time.Since(t0).Round(time.Millisecond))
	var res sdkResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("chat.mjs output is not JSON: %v\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if res.SDKVersion != version {
		t.Errorf("the script ran openai %s, want %s", res.SDKVersion, version)
	}

	want := mockllm.Complete([]mockllm.Message{
		{Role: "system", Content: json.RawMessage(`"You are a mathematician"`)},
		{Role: "user", Content: json.RawMessage(`"What is 1+1?"`)},
	}, "gpt-4")
	if want.Content != "1+1 equals 2." {
		t.Fatalf("test setup: the mock answers %q", want.Content)
	}
	p := res.Plain
	if p.Content != want.Content || p.Model != "gpt-4" || p.FinishReason != "stop" || p.ID == "" {
		t.Errorf("chat.completions.create: content %q, model %q, finish_reason %q, id %q; want %q, gpt-4, stop",
			p.Content, p.Model, p.FinishReason, p.ID, want.Content)
	}
	if p.Usage == nil || *p.Usage != want.Usage {
		t.Errorf("chat.completions.create usage %+v, want %+v", p.Usage, want.Usage)
	}
	s := res.Stream
	if s.Content != want.Content || s.Model != "gpt-4" || s.FinishReason != "stop" || s.Chunks < 3 {
		t.Errorf("stream: content %q, model %q, finish_reason %q, %d chunks; want %q, gpt-4, stop, >= 3 chunks",
			s.Content, s.Model, s.FinishReason, s.Chunks, want.Content)
	}
	if s.Usage == nil || *s.Usage != want.Usage {
		t.Errorf("stream usage %+v, want %+v (the gateway sets stream_options.include_usage, so the last chunk carries it)", s.Usage, want.Usage)
	}

	reqs := mock.Requests()
	if len(reqs) != 2 {
		t.Fatalf("the mock got %d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		t.Run(fmt.Sprintf("llm_request_%d", i), func(t *testing.T) {
			checkRouteRequest(t, r, "gpt-4", i == 1)
			if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "OpenAI/JS") {
				t.Errorf("User-Agent %q: the SDK's headers should pass", ua)
			}
		})
	}
	if bytes.Contains(reqs[0].Body, []byte("stream_options")) {
		t.Errorf("non-streamed request got stream_options: %s", reqs[0].Body)
	}
}
