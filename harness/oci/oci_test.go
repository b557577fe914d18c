package oci_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness"
	"ai-proxy/harness/oci"
	"ai-proxy/harness/testutil"
)

// seedConf is the first configuration of the seed documentation.
const seedConf = `{
  "auth": {"header": {"Authorization": "Bearer sk-test"}},
  "model": {"provider": "openai", "name": "gpt-4", "options": {"max_tokens": 512, "temperature": 1.0}},
  "passthrough": false
}`

const chatBody = `{"messages":[{"role":"system","content":"You are a mathematician"},{"role":"user","content":"What is 1+1?"}]}`

// readWasm returns build/ai-proxy.wasm; it fails (does not skip) when make
// build has not run.
func readWasm(t *testing.T) []byte {
	t.Helper()
	b, err := testutil.ReadArtifact(testutil.WasmFile)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestPushPullRun builds the image of build/ai-proxy.wasm, writes and reads
// back its layout tarball, pushes it to an in-process registry, pulls it,
// checks the manifest and that the module is byte-identical, then runs the
// pulled module in the harness with the seed's first configuration and
// answers one request.
func TestPushPullRun(t *testing.T) {
	wasm := readWasm(t)
	img, err := oci.NewImage(wasm, oci.DefaultRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := oci.WriteLayout(&tarball, img, "v1"); err != nil {
		t.Fatal(err)
	}
	l, err := oci.ReadLayout(bytes.NewReader(tarball.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Tag != "v1" {
		t.Errorf("layout tag %q, want v1", l.Tag)
	}
	if err := validate.Image(l.Image); err != nil {
		t.Fatalf("the layout's image is not valid: %v", err)
	}

	ref, err := oci.ParseReference(startRegistry(t)+"/ai-proxy:v1", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pushed, err := oci.Push(ref, l.Image, oci.RemoteOptions(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if pushed != want {
		t.Errorf("pushed digest %s, want the built image's %s", pushed, want)
	}
	pulled, err := oci.Pull(ref, oci.RemoteOptions(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Fatalf("the pulled image is not valid: %v", err)
	}
	if d, _ := pulled.Digest(); d != want {
		t.Errorf("pulled digest %s, want %s", d, want)
	}
	checkManifest(t, pulled, wasm)

	module, err := oci.Module(pulled)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(module, wasm) {
		t.Fatalf("the pulled module (%d bytes) differs from build/ai-proxy.wasm (%d bytes)", len(module), len(wasm))
	}
	answerOneRequest(t, module)
}

// checkManifest checks the raw manifest as a registry serves it: media types,
// the two layers in order, titles, and the module layer's digest and size.
func checkManifest(t *testing.T, img v1.Image, wasm []byte) {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Size        int64             `json:"size"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest: %v: %s", err, raw)
	}
	if m.SchemaVersion != 2 || m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest schemaVersion %d mediaType %q", m.SchemaVersion, m.MediaType)
	}
	if m.Config.MediaType != "application/vnd.module.wasm.config.v1+json" {
		t.Errorf("config media type %q", m.Config.MediaType)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("%d layers, want 2: %s", len(m.Layers), raw)
	}
	if l := m.Layers[0]; l.MediaType != "application/vnd.module.wasm.config.v1+json" || l.Annotations[oci.TitleAnnotation] != "runtime-config.json" || l.Digest != m.Config.Digest {
		t.Errorf("layer 0 = %+v, want the runtime config", l)
	}
	wantDigest, _, _ := v1.SHA256(bytes.NewReader(wasm))
	if l := m.Layers[1]; l.MediaType != "application/vnd.module.wasm.content.layer.v1+wasm" || l.Annotations[oci.TitleAnnotation] != "plugin.wasm" ||
		l.Digest != wantDigest.String() || l.Size != int64(len(wasm)) {
		t.Errorf("layer 1 = %+v, want the module %s (%d bytes)", l, wantDigest, len(wasm))
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var rc oci.RuntimeConfig
	if err := json.Unmarshal(cfg, &rc); err != nil || rc.Type != "envoy_proxy" || len(rc.ABIVersions) != 1 || rc.ABIVersions[0] != "proxy_abi_version_0_2_1" {
		t.Errorf("runtime config %s (%v)", cfg, err)
	}
}

// answerOneRequest loads module in the harness with the seed's first
// configuration and checks that one request is called out and answered.
func answerOneRequest(t *testing.T, module []byte) {
	t.Helper()
	ctx := context.Background()
	m, err := harness.Compile(ctx, module)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	defer m.Close(ctx)
	vm, err := m.NewVM(ctx, harness.Env{Profile: harness.ProfileEnvoy})
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	defer vm.Close(ctx)
	p, err := vm.StartPlugin(harness.PluginConfig{Name: "ai-proxy", RootID: "ai-proxy", Configuration: []byte(seedConf)})
	if err != nil {
		t.Fatalf("StartPlugin: %v", err)
	}
	s := p.NewStream()
	defer s.Done()
	hs := []abi.Header{
		{":method", "POST"}, {":path", "/anything"}, {":authority", "api.openai.com:443"}, {":scheme", "http"},
		{"content-type", "application/json"}, {"content-length", "104"},
	}
	if a := s.SendRequestHeaders(hs, false); a != abi.ActionContinue {
		t.Fatalf("request headers: action %v, want continue", a)
	}
	if a := s.SendRequestBody([]byte(chatBody), true); a != abi.ActionPause {
		t.Fatalf("request body: action %v, want pause (waiting for the LLM)", a)
	}
	calls := vm.PendingCalls()
	if len(calls) != 1 {
		t.Fatalf("%d pending calls, want 1", len(calls))
	}
	c := calls[0]
	if c.Upstream != "api.openai.com:443" || c.Header(":path") != "/v1/chat/completions" || c.Header("authorization") != "Bearer sk-test" {
		t.Errorf("call to %s %s authorization %q", c.Upstream, c.Header(":path"), c.Header("authorization"))
	}
	var body map[string]any
	if err := json.Unmarshal(c.Body, &body); err != nil || body["model"] != "gpt-4" || body["max_tokens"] != 512.0 {
		t.Errorf("call body %s (%v)", c.Body, err)
	}
	answer := `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4-0613","choices":[{"index":0,"message":{"role":"assistant","content":"1+1 equals 2."},"finish_reason":"stop"}]}`
	if err := vm.RespondCall(c.ID, &harness.CallResponse{
		Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}},
		Body:    []byte(answer),
	}); err != nil {
		t.Fatal(err)
	}
	lr := s.LocalResponse()
	if lr == nil {
		t.Fatal("the filter did not answer the client")
	}
	if lr.Status != 200 || string(lr.Body) != answer || harness.HeaderValue(lr.Headers, "content-type") != "application/json" {
		t.Errorf("client got %d %v %s, want 200 and the LLM's answer", lr.Status, lr.Headers, lr.Body)
	}
}

// TestLayoutReproducible: the same module gives the same tarball, byte for
// byte, and the tarball holds the OCI layout files.
func TestLayoutReproducible(t *testing.T) {
	module := append([]byte("\x00asm\x01\x00\x00\x00"), "rest of a module"...)
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		img, err := oci.NewImage(module, oci.DefaultRuntimeConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := oci.WriteLayout(buf, img, "latest"); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds of the same module differ")
	}
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(a.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want zero", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		names[h.Name] = true
	}
	for _, n := range []string{"oci-layout", "index.json", "blobs/sha256/"} {
		if !names[n] {
			t.Errorf("the tarball has no %s (has %v)", n, names)
		}
	}
	// 3 blobs: manifest, runtime config (config and first layer), module.
	blobs := 0
	for n := range names {
		if strings.HasPrefix(n, "blobs/sha256/") && n != "blobs/sha256/" {
			blobs++
		}
	}
	if blobs != 3 {
		t.Errorf("%d blobs, want 3", blobs)
	}
}

// TestRefusals covers what NewImage, Module and ReadLayout refuse.
func TestRefusals(t *testing.T) {
	if _, err := oci.NewImage([]byte("not wasm"), oci.DefaultRuntimeConfig()); !errors.Is(err, oci.ErrNotWasm) {
		t.Errorf("NewImage of a non-module: %v, want ErrNotWasm", err)
	}

	module := []byte("\x00asm\x01\x00\x00\x00")
	good, err := oci.NewImage(module, oci.DefaultRuntimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	compat, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
		mutate.Addendum{Layer: static.NewLayer([]byte("tar.gz with plugin.wasm"), types.OCILayer)})
	if err != nil {
		t.Fatal(err)
	}
	oneLayer, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), oci.ConfigMediaType),
		mutate.Addendum{Layer: static.NewLayer(module, oci.ModuleMediaType)})
	if err != nil {
		t.Fatal(err)
	}
	notWasm, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), oci.ConfigMediaType),
		mutate.Addendum{Layer: static.NewLayer([]byte("{}"), oci.ConfigMediaType)},
		mutate.Addendum{Layer: static.NewLayer([]byte("text"), oci.ModuleMediaType)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		img  v1.Image
		want string // "" means accepted
	}{
		{"built image", good, ""},
		{"compat variant", compat, `config media type "application/vnd.oci.image.config.v1+json"`},
		{"module layer only", oneLayer, "1 layers, want 2"},
		{"module layer is not wasm", notWasm, "not a WebAssembly module"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := oci.Module(tc.img)
			if tc.want == "" {
				if err != nil || !bytes.Equal(b, module) {
					t.Errorf("Module = %q, %v; want the module", b, err)
				}
				return
			}
			if !errors.Is(err, oci.ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Module error %v, want ErrFormat containing %q", err, tc.want)
			}
		})
	}

	tarOf := func(files map[string]string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for n, c := range files {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
			tw.Write([]byte(c))
		}
		tw.Close()
		return buf.Bytes()
	}
	layouts := []struct {
		name string
		data []byte
		want string
	}{
		{"not a tar", []byte("garbage garbage garbage"), "invalid OCI image layout"},
		{"no oci-layout", tarOf(map[string]string{"index.json": "{}"}), "no oci-layout file"},
		{"escaping path", tarOf(map[string]string{"../evil": "x"}), "leaves the layout"},
		{"empty index", tarOf(map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`, "index.json": `{"schemaVersion":2,"manifests":[]}`}), "lists 0 manifests"},
	}
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			l, err := oci.ReadLayout(bytes.NewReader(tc.data))
			if err == nil {
				l.Close()
				t.Fatal("ReadLayout accepted it")
			}
			if !errors.Is(err, oci.ErrLayout) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadLayout error %v, want ErrLayout containing %q", err, tc.want)
			}
		})
	}
}
