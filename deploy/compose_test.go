package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"ai-proxy/harness/bootstrap"
	"ai-proxy/harness/testutil"
)

// composeFile is the part of the Compose specification e2e/docker-compose.yaml
// uses; decoding refuses anything else, so that a typo fails here.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Build   *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	} `json:"build"`
	Volumes   []string `json:"volumes"`
	Ports     []string `json:"ports"`
	Expose    []string `json:"expose"`
	DependsOn []string `json:"depends_on"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	js, err := yaml.YAMLToJSON(repoFile(t, "e2e/docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := strictJSON(js, &c); err != nil {
		t.Fatalf("e2e/docker-compose.yaml: %v", err)
	}
	return c
}

// composeDir is where the compose file's relative paths start.
func composeDir() string { return filepath.Join(checkout.Root, "e2e") }

// envoyImage matches envoyproxy/envoy:vMAJOR.MINOR[.PATCH|-latest], with the
// ${ENVOY_IMAGE:-...} default form.
var envoyImage = regexp.MustCompile(`^(?:\$\{ENVOY_IMAGE:-)?envoyproxy/envoy:v(\d+)\.(\d+)(?:\.\d+|-latest)\}?$`)

// TestComposeFile checks e2e/docker-compose.yaml without Docker: the Envoy
// image is 1.33 or later, every file it mounts or builds from exists, Envoy
// runs the mounted configuration with the module where it is mounted, and
// every cluster of that configuration is a compose service's exposed port.
func TestComposeFile(t *testing.T) {
	checkout.NeedBuild(t) // ../build/ai-proxy.wasm is mounted
	c := loadCompose(t)
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "echo,envoy,mockllm" {
		t.Fatalf("services %v, want envoy, mockllm and echo", names)
	}

	envoy := c.Services["envoy"]
	m := envoyImage.FindStringSubmatch(envoy.Image)
	if m == nil {
		t.Fatalf("envoy image %q is not envoyproxy/envoy:vX.Y(.Z|-latest)", envoy.Image)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < 1 || (major == 1 && minor < 33) {
		t.Errorf("envoy image %q: want Envoy 1.33 or later", envoy.Image)
	}
	if slices.Sort(envoy.DependsOn); !slices.Equal(envoy.DependsOn, []string{"echo", "mockllm"}) {
		t.Errorf("envoy depends_on %v", envoy.DependsOn)
	}
	for _, p := range []string{"9080", "9081", "9082", "9901"} {
		if !slices.Contains(envoy.Ports, "127.0.0.1:"+p+":"+p) {
			t.Errorf("envoy does not publish %s on 127.0.0.1 (ports %v)", p, envoy.Ports)
		}
	}

	// Mounts: every source exists; remember where they land.
	mounted := map[string]string{} // container path → repository file
	for _, v := range envoy.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) != 3 || parts[2] != "ro" {
			t.Errorf("volume %q: want SRC:DST:ro", v)
			continue
		}
		src := filepath.Join(composeDir(), filepath.FromSlash(parts[0]))
		if st, err := os.Stat(src); err != nil || !st.Mode().IsRegular() {
			t.Errorf("volume %q: %s is not a file (%v)", v, src, err)
		}
		mounted[parts[1]] = src
	}
	ci := slices.Index(envoy.Command, "-c")
	if ci < 0 || ci+1 >= len(envoy.Command) || envoy.Command[0] != "envoy" {
		t.Fatalf("envoy command %v, want envoy -c CONFIG ...", envoy.Command)
	}
	cfgSrc, ok := mounted[envoy.Command[ci+1]]
	if !ok {
		t.Fatalf("envoy runs %s, which is not mounted (%v)", envoy.Command[ci+1], mounted)
	}
	if rel, _ := filepath.Rel(checkout.Root, cfgSrc); filepath.ToSlash(rel) != "e2e/compose/envoy.yaml" {
		t.Errorf("envoy runs %s, want e2e/compose/envoy.yaml", rel)
	}
	cfg, err := bootstrap.Load(cfgSrc)
	if err != nil {
		t.Fatalf("the compose Envoy configuration: %v", err)
	}
	for _, l := range cfg.Listeners {
		for _, f := range l.Filters {
			src, ok := mounted[f.CodePath]
			if !ok || src != checkout.Wasm {
				t.Errorf("listener %s loads %s, which is not build/ai-proxy.wasm mounted", l.Name, f.CodePath)
			}
		}
	}
	for _, cl := range cfg.Clusters {
		for _, ep := range cl.Endpoints {
			svc, ok := c.Services[ep.Host]
			if !ok || ep.Host == "envoy" || !slices.Contains(svc.Expose, strconv.Itoa(ep.Port)) {
				t.Errorf("cluster %s goes to %s, which is not an exposed port of a compose service", cl.Name, ep.Addr())
			}
		}
	}

	// Built services: the Dockerfile and its .dockerignore exist.
	for _, n := range []string{"mockllm", "echo"} {
		s := c.Services[n]
		if s.Build == nil {
			t.Errorf("service %s is not built from this repository", n)
			continue
		}
		ctx := filepath.Join(composeDir(), filepath.FromSlash(s.Build.Context))
		if ctx != checkout.Root {
			t.Errorf("service %s: build context %s, want the repository root", n, ctx)
		}
		if rel := filepath.ToSlash(s.Build.Dockerfile); rel != "e2e/docker/"+n+".Dockerfile" {
			t.Errorf("service %s: dockerfile %s", n, rel)
		}
	}
}

// dockerfile is what the test reads of a Dockerfile.
type dockerfile struct {
	copies  []string // COPY sources from the build context
	targets []string // the packages of RUN ... go build ... ./pkg
	from    []string
}

var goBuildTarget = regexp.MustCompile(`\bgo build\b.*\s(\./\S+)\s*$`)

func parseDockerfile(t *testing.T, rel string) dockerfile {
	t.Helper()
	var d dockerfile
	sc := bufio.NewScanner(bytes.NewReader(repoFile(t, rel)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			d.from = append(d.from, f[1])
		case "COPY":
			if len(f) < 3 || strings.HasPrefix(f[1], "--from=") {
				continue
			}
			d.copies = append(d.copies, f[1:len(f)-1]...)
		case "RUN":
			if m := goBuildTarget.FindStringSubmatch(sc.Text()); m != nil {
				d.targets = append(d.targets, m[1])
			}
		}
	}
	return d
}

// TestDockerfiles builds what each Dockerfile builds, from only what it
// copies: the COPY sources are copied into an empty module directory and
// `go build` of the RUN's package must succeed there (CGO_ENABLED=0, as in
// the image). It also checks that the .dockerignore keeps the COPY sources.
func TestDockerfiles(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"mockllm", "echo"} {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			rel := "e2e/docker/" + n + ".Dockerfile"
			d := parseDockerfile(t, rel)
			if len(d.from) != 2 || !strings.HasPrefix(d.from[0], "golang:1.") || !strings.HasPrefix(d.from[1], "gcr.io/distroless/static") {
				t.Errorf("%s: FROM %v, want a golang builder and a distroless static runtime", rel, d.from)
			}
			if len(d.targets) != 1 || d.targets[0] != "./e2e/cmd/"+n {
				t.Fatalf("%s: go build targets %v, want ./e2e/cmd/%s", rel, d.targets, n)
			}
			ignore := string(repoFile(t, rel+".dockerignore"))
			dir := t.TempDir()
			for _, src := range d.copies {
				if !strings.Contains(ignore, "\n!"+src+"\n") {
					t.Errorf("%s.dockerignore does not keep %s", rel, src)
				}
				if err := copyTree(filepath.Join(checkout.Root, filepath.FromSlash(src)), filepath.Join(dir, filepath.FromSlash(src))); err != nil {
					t.Fatalf("COPY %s: %v", src, err)
				}
			}
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, n), d.targets[0])
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build %s from the copied files only: %v\n%s", d.targets[0], err, out)
			}
		})
	}
}

// copyTree copies a file or a directory tree.
func copyTree(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return copyFile(src, dst)
	}
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		r, _ := filepath.Rel(src, p)
		return copyFile(p, filepath.Join(dst, r))
	})
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// TestEnvoyConfigsValidate finds every Envoy bootstrap of the repository
// (a YAML or JSON file with a top-level static_resources) and checks it
// against Envoy's schema with the gateway's loader. deploy/ (Kubernetes and
// APISIX files) and testdata/ directories (test fixtures, some invalid on
// purpose, loaded by their own package's tests) are skipped.
func TestEnvoyConfigsValidate(t *testing.T) {
	var found []string
	err := filepath.WalkDir(checkout.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(checkout.Root, p)
		rel = filepath.ToSlash(rel)
		if e.IsDir() {
			switch {
			case rel == ".git", rel == "build", rel == "deploy", e.Name() == "testdata", e.Name() == "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		js, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil // not YAML: not a bootstrap
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(js, &top) != nil || top["static_resources"] == nil {
			return nil
		}
		found = append(found, rel)
		if _, err := bootstrap.Parse(b); err != nil {
			if errors.Is(err, bootstrap.ErrUnsupported) {
				t.Logf("%s: valid for Envoy, outside the gateway's subset: %v", rel, err)
				return nil
			}
			t.Errorf("%s: %v", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"envoy.yaml", "run/gateway.yaml", "run/openai.yaml", "e2e/compose/envoy.yaml"} {
		if !slices.Contains(found, want) {
			t.Errorf("%s was not found as an Envoy bootstrap (found %v)", want, found)
		}
	}
}

// localCompose returns e2e/compose/envoy.yaml for build/gateway on this
// machine: listeners and admin on 127.0.0.1 free ports, the mockllm and echo
// services on the given local ports, the module at build/ai-proxy.wasm.
func localCompose(t *testing.T, mockPort, echoPort int) []byte {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(repoFile(t, "e2e/compose/envoy.yaml"), &doc); err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{"mockllm": mockPort, "echo": echoPort}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if sa, ok := x["socket_address"].(map[string]any); ok {
				switch addr, _ := sa["address"].(string); {
				case addr == "0.0.0.0":
					sa["address"], sa["port_value"] = "127.0.0.1", 0
				case ports[addr] != 0:
					sa["address"], sa["port_value"] = "127.0.0.1", ports[addr]
				}
			}
			if fn, ok := x["filename"].(string); ok && fn == "/etc/envoy/ai-proxy.wasm" {
				x["filename"] = checkout.Wasm
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestComposeScript runs e2e/compose-test.sh --no-compose against
// build/gateway running the compose Envoy configuration, with the mock LLM
// and the echo on 127.0.0.1 in place of the compose services: the three
// documented curls pass. Pointed at the wrong listeners, the script fails.
func TestComposeScript(t *testing.T) {
	t.Parallel()
	checkout.NeedBuild(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("compose-test.sh needs curl, which is not installed")
	}
	llm, up := startMocks(t)
	g, ready := runGateway(t, localCompose(t, llm.Port(), up.Port()))
	if !ready {
		t.Fatalf("the gateway did not start on the compose configuration:\n%s", g.Output())
	}
	script := filepath.Join(checkout.Root, "e2e", "compose-test.sh")
	run := func(openai, azure, passthrough string) (string, error) {
		cmd := exec.Command("sh", script, "--no-compose")
		cmd.Env = append(os.Environ(), "OPENAI_URL="+openai, "AZURE_URL="+azure, "PASSTHROUGH_URL="+passthrough, "ADMIN_URL="+gatewayURL(t, g, "admin"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	openai, azure, pass := gatewayURL(t, g, "listener openai"), gatewayURL(t, g, "listener azure"), gatewayURL(t, g, "listener passthrough")

	out, err := run(openai, azure, pass)
	if err != nil || !strings.Contains(out, "\n3 passed, 0 failed\n") {
		t.Fatalf("compose-test.sh: %v\n%s\ngateway:\n%s", err, out, g.Output())
	}
	if n := len(llm.Requests()); n != 3 {
		t.Errorf("the mock LLM got %d requests, want 3", n)
	}
	if n := len(up.Requests()); n != 1 {
		t.Errorf("the echo got %d requests, want 1 (the passthrough example)", n)
	}

	// The checks can fail: the passthrough example against the OpenAI
	// listener gets a completion, not the echo.
	out, err = run(openai, azure, openai)
	if err == nil || !strings.Contains(out, "FAIL: forward LLM response to upstream") || !strings.Contains(out, "\n2 passed, 1 failed\n") {
		t.Errorf("compose-test.sh against the wrong listener: %v\n%s", err, out)
	}
	out, err = run(openai, "http://"+testutil.FreeAddr(t), pass)
	if err == nil || !strings.Contains(out, "FAIL: proxy to Azure OpenAI: HTTP status 000") {
		t.Errorf("compose-test.sh with Azure unreachable: %v\n%s", err, out)
	}
}
