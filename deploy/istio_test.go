package deploy

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	extapi "istio.io/api/extensions/v1alpha1"
	netapi "istio.io/api/networking/v1alpha3"
	typeapi "istio.io/api/type/v1beta1"
	extv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"ai-proxy/filter/config"
)

// istioObject is one decoded manifest: the client-go object and its spec,
// the istio.io/api message inside it.
type istioObject struct {
	Where  string // file#index
	Object metav1.Object
	Spec   proto.Message
}

// istioKinds are the kinds deploy/istio may hold, with a constructor of the
// client-go object returning the object and a pointer to its spec.
var istioKinds = map[schema.GroupVersionKind]func() (metav1.Object, proto.Message){
	extv1alpha1.SchemeGroupVersion.WithKind("WasmPlugin"): func() (metav1.Object, proto.Message) {
		o := &extv1alpha1.WasmPlugin{}
		return o, &o.Spec
	},
	netv1.SchemeGroupVersion.WithKind("ServiceEntry"): func() (metav1.Object, proto.Message) {
		o := &netv1.ServiceEntry{}
		return o, &o.Spec
	},
	netv1.SchemeGroupVersion.WithKind("DestinationRule"): func() (metav1.Object, proto.Message) {
		o := &netv1.DestinationRule{}
		return o, &o.Spec
	},
	netv1.SchemeGroupVersion.WithKind("Gateway"): func() (metav1.Object, proto.Message) {
		o := &netv1.Gateway{}
		return o, &o.Spec
	},
	netv1.SchemeGroupVersion.WithKind("VirtualService"): func() (metav1.Object, proto.Message) {
		o := &netv1.VirtualService{}
		return o, &o.Spec
	},
}

// docSeparator splits a multi-document YAML file.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeIstio decodes every document of a manifest file with Istio's types:
// the envelope (apiVersion, kind, metadata, spec) strictly, the metadata as
// Kubernetes ObjectMeta, the whole object into the istio.io/client-go type,
// and the spec with protojson into the istio.io/api message, which rejects
// unknown fields and wrong enum names (client-go's own JSON decoding of
// specs ignores unknown fields).
func decodeIstio(name string, data []byte) ([]istioObject, error) {
	var out []istioObject
	for i, doc := range docSeparator.Split(string(data), -1) {
		where := fmt.Sprintf("%s#%d", name, i)
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		var env struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
			Spec       json.RawMessage   `json:"spec"`
		}
		if err := strictJSON(js, &env); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		gv, err := schema.ParseGroupVersion(env.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("%s: apiVersion: %v", where, err)
		}
		gvk := gv.WithKind(env.Kind)
		newObj, ok := istioKinds[gvk]
		if !ok {
			return nil, fmt.Errorf("%s: unexpected kind %s", where, gvk)
		}
		if env.Metadata.Name == "" || env.Metadata.Namespace == "" {
			return nil, fmt.Errorf("%s: metadata.name and metadata.namespace are required", where)
		}
		if len(env.Spec) == 0 {
			return nil, fmt.Errorf("%s: no spec", where)
		}
		obj, spec := newObj()
		if err := protojson.Unmarshal(env.Spec, spec); err != nil {
			return nil, fmt.Errorf("%s: %s spec: %v", where, gvk.Kind, err)
		}
		// The spec is valid; now the whole object with client-go's decoding
		// (which decodes the spec again, leniently, into the same message).
		if err := json.Unmarshal(js, obj); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", where, gvk.Kind, err)
		}
		out = append(out, istioObject{Where: where, Object: obj, Spec: spec})
	}
	return out, nil
}

// stripComments drops YAML comment lines (a document of comments only is
// empty).
func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// loadIstio decodes every deploy/istio/*.yaml file.
func loadIstio(t *testing.T) []istioObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(checkout.Root, "deploy", "istio", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no deploy/istio/*.yaml")
	}
	var all []istioObject
	for _, f := range files {
		rel, _ := filepath.Rel(checkout.Root, f)
		objs, err := decodeIstio(filepath.ToSlash(rel), repoFile(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, objs...)
	}
	return all
}

// only returns the one object of type T (a spec type), failing otherwise.
func only[T proto.Message](t *testing.T, objs []istioObject) (metav1.Object, T) {
	t.Helper()
	var found []istioObject
	for _, o := range objs {
		if _, ok := o.Spec.(T); ok {
			found = append(found, o)
		}
	}
	var zero T
	if len(found) != 1 {
		t.Fatalf("%d manifests of %T, want 1", len(found), zero)
	}
	return found[0].Object, found[0].Spec.(T)
}

// TestIstioManifests decodes deploy/istio with Istio's API types and checks
// the WasmPlugin against the seed's first example and the provider's
// ServiceEntry and DestinationRule.
func TestIstioManifests(t *testing.T) {
	objs := loadIstio(t)
	if len(objs) != 5 {
		t.Errorf("%d manifests, want 5 (WasmPlugin, ServiceEntry, DestinationRule, Gateway, VirtualService)", len(objs))
	}
	meta, wp := only[*extapi.WasmPlugin](t, objs)
	if meta.GetName() != "ai-proxy" || meta.GetNamespace() != "istio-system" {
		t.Errorf("WasmPlugin %s/%s, want istio-system/ai-proxy", meta.GetNamespace(), meta.GetName())
	}
	if !strings.HasPrefix(wp.GetUrl(), "oci://") {
		t.Errorf("url %q, want an oci:// image (make push)", wp.GetUrl())
	}
	if wp.GetPhase() != extapi.PluginPhase_STATS {
		t.Errorf("phase %v, want STATS (after authn/authz, before the router)", wp.GetPhase())
	}
	if wp.GetImagePullPolicy() != extapi.PullPolicy_IfNotPresent || wp.GetFailStrategy() != extapi.FailStrategy_FAIL_CLOSE || wp.GetType() != extapi.PluginType_HTTP {
		t.Errorf("imagePullPolicy %v failStrategy %v type %v", wp.GetImagePullPolicy(), wp.GetFailStrategy(), wp.GetType())
	}
	if wp.GetSelector().GetMatchLabels()["istio"] != "ingressgateway" {
		t.Errorf("selector %v, want istio=ingressgateway", wp.GetSelector())
	}
	if m := wp.GetMatch(); len(m) != 1 || m[0].GetMode() != typeapi.WorkloadMode_CLIENT {
		t.Errorf("match %v, want mode CLIENT (gateways)", m)
	}

	// pluginConfig is what the filter receives as JSON: it must pass the
	// filter's own validator and be the seed's first example plus cluster.
	pc, err := protojson.Marshal(wp.GetPluginConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(pc)
	if err != nil {
		t.Fatalf("pluginConfig rejected by the filter: %v\n%s", err, pc)
	}
	var got, want map[string]any
	if err := json.Unmarshal(pc, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(seedProxyConfig), &want); err != nil {
		t.Fatal(err)
	}
	cluster := got["cluster"]
	delete(got, "cluster")
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("pluginConfig without cluster\n%s\nwant the seed's first configuration\n%s", g, w)
	}
	if cfg.Passthrough || cfg.Forward != config.ForwardCallout || cfg.Endpoint.Host != "api.openai.com" {
		t.Errorf("config passthrough %v forward %q endpoint host %q", cfg.Passthrough, cfg.Forward, cfg.Endpoint.Host)
	}

	// The cluster is the ServiceEntry's, and the DestinationRule originates
	// TLS on its port.
	_, se := only[*netapi.ServiceEntry](t, objs)
	if len(se.GetHosts()) != 1 || len(se.GetPorts()) != 1 {
		t.Fatalf("ServiceEntry hosts %v ports %v, want one each", se.GetHosts(), se.GetPorts())
	}
	host, port := se.GetHosts()[0], se.GetPorts()[0]
	wantCluster := fmt.Sprintf("outbound|%d||%s", port.GetNumber(), host)
	if cluster != wantCluster || cfg.Cluster != wantCluster {
		t.Errorf("pluginConfig cluster %v (parsed %q), want the ServiceEntry's cluster %q", cluster, cfg.Cluster, wantCluster)
	}
	if host != cfg.Endpoint.Host || port.GetNumber() != 443 || port.GetProtocol() != "HTTP" ||
		se.GetLocation() != netapi.ServiceEntry_MESH_EXTERNAL || se.GetResolution() != netapi.ServiceEntry_DNS {
		t.Errorf("ServiceEntry %v, want %s port 443 HTTP (TLS by the DestinationRule), MESH_EXTERNAL, DNS", se, cfg.Endpoint.Host)
	}
	_, dr := only[*netapi.DestinationRule](t, objs)
	pls := dr.GetTrafficPolicy().GetPortLevelSettings()
	if dr.GetHost() != host || len(pls) != 1 || pls[0].GetPort().GetNumber() != port.GetNumber() ||
		pls[0].GetTls().GetMode() != netapi.ClientTLSSettings_SIMPLE || pls[0].GetTls().GetSni() != host {
		t.Errorf("DestinationRule %v, want TLS SIMPLE with SNI %s on port %d of %s", dr, host, port.GetNumber(), host)
	}

	// The route of the documentation's curl.
	_, gw := only[*netapi.Gateway](t, objs)
	if gw.GetSelector()["istio"] != "ingressgateway" || len(gw.GetServers()) != 1 || gw.GetServers()[0].GetPort().GetProtocol() != "HTTP" {
		t.Errorf("Gateway %v", gw)
	}
	_, vs := only[*netapi.VirtualService](t, objs)
	if len(vs.GetHttp()) != 1 || len(vs.GetHttp()[0].GetMatch()) != 1 || vs.GetHttp()[0].GetMatch()[0].GetUri().GetPrefix() != "/anything" {
		t.Errorf("VirtualService %v, want a route for prefix /anything", vs)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIstioDecodingIsStrict: the decoding above rejects what Istio rejects,
// so that the manifest test can fail.
func TestIstioDecodingIsStrict(t *testing.T) {
	const wasmPlugin = `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: x
  namespace: istio-system
spec:
  url: oci://r/x:1
`
	cases := []struct {
		name, doc, want string
	}{
		{"valid", wasmPlugin, ""},
		{"unknown spec field", wasmPlugin + "  phaze: STATS\n", `unknown field "phaze"`},
		{"unknown enum", wasmPlugin + "  phase: ROUTER\n", "ROUTER"},
		{"wrong type", wasmPlugin + "  priority: high\n", `invalid value for int32 field value: "high"`},
		{"unknown metadata field", strings.Replace(wasmPlugin, "  name: x\n", "  name: x\n  label: y\n", 1), `unknown field "label"`},
		{"unknown top-level field", wasmPlugin + "status2: {}\n", `unknown field "status2"`},
		{"unknown kind", strings.Replace(wasmPlugin, "kind: WasmPlugin", "kind: EnvoyFilter", 1), "unexpected kind"},
		{"wrong version", strings.Replace(wasmPlugin, "v1alpha1", "v1", 1), "unexpected kind"},
		{"no namespace", strings.Replace(wasmPlugin, "  namespace: istio-system\n", "", 1), "metadata.namespace"},
		{"unknown nested field", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: x, namespace: default}
spec:
  host: h
  trafficPolicy: {tls: {mode: SIMPLE, sniHost: h}}
`, `unknown field "sniHost"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := decodeIstio("test.yaml", []byte(tc.doc))
			if tc.want == "" {
				if err != nil || len(objs) != 1 {
					t.Fatalf("decode: %v (%d objects)", err, len(objs))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
