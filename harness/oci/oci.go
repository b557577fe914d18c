// Package oci packages the filter module as an OCI image that Istio's
// WasmPlugin (url: oci://...) and Envoy Gateway pull, saves it as an OCI
// image-layout tarball, and pushes and pulls it with go-containerregistry.
//
// The image is the "oci" variant of the Wasm image specification
// (solo-io/wasm spec.md), in the shape Istio's and Envoy Gateway's fetchers
// (pkg/wasm/imagefetcher.go, extractOCIArtifactImage) accept:
//
//   - an OCI image manifest (application/vnd.oci.image.manifest.v1+json) whose
//     config is the runtime configuration (ConfigMediaType);
//   - exactly two layers: the runtime configuration again (ConfigMediaType,
//     titled runtime-config.json) and the module itself (ModuleMediaType,
//     titled plugin.wasm). The module layer is the raw .wasm bytes, not a tar:
//     its blob is byte-identical to build/ai-proxy.wasm.
//
// The fetchers require two layers and take the module layer's blob as is.
// The runtime configuration is repeated as the manifest config so that tools
// that read the spec as "the config is the manifest config" (oras) find it too.
package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the Wasm image specification ("oci" variant).
const (
	// ManifestMediaType is the image manifest's media type.
	ManifestMediaType = types.OCIManifestSchema1
	// ConfigMediaType is the runtime configuration's media type, used for the
	// manifest config and for the first layer.
	ConfigMediaType types.MediaType = "application/vnd.module.wasm.config.v1+json"
	// ModuleMediaType is the module layer's media type: the raw .wasm bytes.
	ModuleMediaType types.MediaType = "application/vnd.module.wasm.content.layer.v1+wasm"
)

// Annotation keys and the titles of the two layers.
const (
	// TitleAnnotation names a layer's file (org.opencontainers.image.title).
	TitleAnnotation = "org.opencontainers.image.title"
	// RefNameAnnotation is the tag of the image in the layout's index.json.
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	// ConfigTitle and ModuleTitle are the titles of the two layers.
	ConfigTitle = "runtime-config.json"
	ModuleTitle = "plugin.wasm"
)

// Sentinel errors, wrapped with context.
var (
	// ErrNotWasm: the bytes given as the module are not a WebAssembly binary.
	ErrNotWasm = errors.New("not a WebAssembly module")
	// ErrFormat: an image is not a Wasm image in the layout described above.
	ErrFormat = errors.New("not a wasm image")
	// ErrLayout: a tarball is not an OCI image layout holding one image.
	ErrLayout = errors.New("invalid OCI image layout")
)

// wasmMagic starts every WebAssembly binary ("\0asm", version 1).
var wasmMagic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// RuntimeConfig is the runtime configuration of the Wasm image specification.
type RuntimeConfig struct {
	// Type is the target runtime: "envoy_proxy".
	Type string `json:"type"`
	// ABIVersions lists the proxy-wasm ABI versions the module implements.
	ABIVersions []string `json:"abiVersions"`
	// Config is runtime specific; for Envoy, the root ids the module serves.
	Config RuntimeRootIDs `json:"config"`
}

// RuntimeRootIDs is the Envoy runtime's config: the filter's root ids.
type RuntimeRootIDs struct {
	RootIDs []string `json:"root_ids"`
}

// DefaultRuntimeConfig describes the ai-proxy filter: Envoy, proxy-wasm ABI
// 0.2.1, root id "ai-proxy" (the filter serves any root id).
func DefaultRuntimeConfig() RuntimeConfig {
	return RuntimeConfig{
		Type:        "envoy_proxy",
		ABIVersions: []string{"proxy_abi_version_0_2_1"},
		Config:      RuntimeRootIDs{RootIDs: []string{"ai-proxy"}},
	}
}

// NewImage returns the Wasm image holding module with the runtime
// configuration rc. The image is deterministic: the same module and rc
// always give the same manifest digest.
func NewImage(module []byte, rc RuntimeConfig) (v1.Image, error) {
	if !bytes.HasPrefix(module, wasmMagic) {
		return nil, fmt.Errorf("module: %w (no \\0asm version 1 header)", ErrNotWasm)
	}
	cfg, err := json.Marshal(rc)
	if err != nil {
		return nil, fmt.Errorf("runtime config: %w", err)
	}
	img := &wasmImage{
		config: cfg,
		layers: []v1.Layer{static.NewLayer(cfg, ConfigMediaType), static.NewLayer(module, ModuleMediaType)},
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     ManifestMediaType,
		Config:        descriptor(cfg, ConfigMediaType, nil),
		Layers: []v1.Descriptor{
			descriptor(cfg, ConfigMediaType, map[string]string{TitleAnnotation: ConfigTitle}),
			descriptor(module, ModuleMediaType, map[string]string{TitleAnnotation: ModuleTitle}),
		},
	}
	if img.manifest, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return partial.CompressedToImage(img)
}

func descriptor(b []byte, mt types.MediaType, annotations map[string]string) v1.Descriptor {
	sum := sha256.Sum256(b)
	return v1.Descriptor{
		MediaType:   mt,
		Size:        int64(len(b)),
		Digest:      v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Annotations: annotations,
	}
}

// wasmImage is the partial.CompressedImageCore of a Wasm image.
type wasmImage struct {
	config   []byte
	manifest []byte
	layers   []v1.Layer
}

func (i *wasmImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *wasmImage) MediaType() (types.MediaType, error) { return ManifestMediaType, nil }
func (i *wasmImage) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *wasmImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.layers {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("blob %s not found", h)
}

// Module checks that img is a Wasm image as NewImage builds it (manifest
// and config media types, exactly one config layer and one module layer)
// and returns the module layer's bytes as Istio's fetcher reads them: the
// blob as stored, not decompressed. Errors wrap ErrFormat.
func Module(img v1.Image) ([]byte, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.MediaType != ManifestMediaType {
		return nil, fmt.Errorf("%w: manifest media type %q, want %q", ErrFormat, m.MediaType, ManifestMediaType)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("%w: config media type %q, want %q", ErrFormat, m.Config.MediaType, ConfigMediaType)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	if len(layers) != 2 {
		return nil, fmt.Errorf("%w: %d layers, want 2 (runtime config, module)", ErrFormat, len(layers))
	}
	var module v1.Layer
	for i, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		want := []types.MediaType{ConfigMediaType, ModuleMediaType}[i]
		if mt != want {
			return nil, fmt.Errorf("%w: layer %d media type %q, want %q", ErrFormat, i, mt, want)
		}
		if mt == ModuleMediaType {
			module = l
		}
	}
	rc, err := module.Compressed()
	if err != nil {
		return nil, fmt.Errorf("module layer: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("module layer: %w", err)
	}
	if !bytes.HasPrefix(b, wasmMagic) {
		return nil, fmt.Errorf("%w: module layer: %w", ErrFormat, ErrNotWasm)
	}
	return b, nil
}

// WriteLayout writes img as an OCI image-layout tarball (oci-layout,
// index.json naming the image tag, blobs/sha256/...) to w. The tarball is
// reproducible: entries are sorted and carry no time, owner or mode beyond
// 0644/0755.
func WriteLayout(w io.Writer, img v1.Image, tag string) error {
	dir, err := os.MkdirTemp("", "ai-proxy-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{RefNameAnnotation: tag}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	return tarDir(w, dir)
}

// tarDir writes the files under dir to w as a reproducible tar.
func tarDir(w io.Writer, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, path := range paths {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if st.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, st.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// Layout is an OCI image layout read from a tarball.
type Layout struct {
	// Image is the layout's only image.
	Image v1.Image
	// Tag is its org.opencontainers.image.ref.name annotation ("" if none).
	Tag string
	dir string
}

// Close removes the layout's extracted files; Image is unusable afterwards.
func (l *Layout) Close() error { return os.RemoveAll(l.dir) }

// ReadLayout reads an OCI image-layout tarball holding exactly one image
// (as WriteLayout writes it) with go-containerregistry's layout reader.
// Blobs are read lazily from a temporary copy: Close the Layout when done.
// Errors wrap ErrLayout.
func ReadLayout(r io.Reader) (*Layout, error) {
	dir, err := os.MkdirTemp("", "ai-proxy-oci-")
	if err != nil {
		return nil, err
	}
	l := &Layout{dir: dir}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	if err := untar(r, dir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, fmt.Errorf("%w: no oci-layout file", ErrLayout)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%w: index.json: %w", ErrLayout, err)
	}
	if len(im.Manifests) != 1 {
		return nil, fmt.Errorf("%w: index.json lists %d manifests, want 1", ErrLayout, len(im.Manifests))
	}
	d := im.Manifests[0]
	if !d.MediaType.IsImage() {
		return nil, fmt.Errorf("%w: index.json entry has media type %q, want an image manifest", ErrLayout, d.MediaType)
	}
	if l.Image, err = idx.Image(d.Digest); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	l.Tag = d.Annotations[RefNameAnnotation]
	ok = true
	return l, nil
}

// untar extracts regular files and directories of a tar into dir, refusing
// names that leave it.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(strings.TrimPrefix(hdr.Name, "./"))
		if !filepath.IsLocal(name) {
			if name == "." || name == "" {
				continue
			}
			return fmt.Errorf("tar entry %q leaves the layout", hdr.Name)
		}
		path := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("tar entry %q: unsupported type %q", hdr.Name, hdr.Typeflag)
		}
	}
}

// RemoteOptions are the go-containerregistry options of Push and Pull:
// the credentials of the Docker config (DOCKER_CONFIG, ~/.docker/config.json)
// and ctx. Registries on localhost or 127.0.0.1 are reached over plain HTTP,
// as go-containerregistry does.
func RemoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

// ParseReference parses an image reference ("registry/repository:tag");
// insecure allows plain HTTP to any registry.
func ParseReference(ref string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return r, nil
}

// Push writes img to ref (remote.Write) and returns the manifest digest.
func Push(ref name.Reference, img v1.Image, opts ...remote.Option) (v1.Hash, error) {
	if err := remote.Write(ref, img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	return d, nil
}

// Pull fetches the image at ref as Istio's fetcher does (remote.Get, then
// the image of the descriptor).
func Pull(ref name.Reference, opts ...remote.Option) (v1.Image, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, nil
}
