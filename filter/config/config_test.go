package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func opts(kv ...string) []Option {
	var out []Option
	for i := 0; i < len(kv); i += 2 {
		out = append(out, Option{Key: kv[i], Raw: []byte(kv[i+1])})
	}
	return out
}

var openaiDefault = Endpoint{
	URL:       "https://api.openai.com/v1/chat/completions",
	Scheme:    "https",
	Host:      "api.openai.com",
	Port:      443,
	Authority: "api.openai.com",
	Path:      "/v1/chat/completions",
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Config
	}{
		{
			name: "seed example 1: proxy to OpenAI",
			in: `{
				"auth": {"header": {"Authorization": "Bearer sk-test"}},
				"model": {"provider": "openai", "name": "gpt-4", "options": {"max_tokens": 512, "temperature": 1.0}},
				"passthrough": false
			}`,
			want: Config{
				Provider: OpenAI, Model: "gpt-4",
				Options:   opts("max_tokens", "512", "temperature", "1.0"),
				TimeoutMS: 30000, Cluster: "api.openai.com:443", Forward: ForwardCallout,
				Endpoint:        openaiDefault,
				AuthHeaders:     [][2]string{{"authorization", "Bearer sk-test"}},
				AuthHeaderNames: []string{"authorization"},
				MaxBodyBytes:    67108864,
			},
		},
		{
			name: "seed example 2: Azure OpenAI through override.endpoint",
			in: `{
				"auth": {"header": {"api-key": "az-key"}},
				"model": {"provider": "openai", "name": "gpt-4", "options": {"max_tokens": 512, "temperature": 1.0}},
				"override": {"endpoint": "https://api7-auzre-openai.openai.azure.com/openai/deployments/gpt-4/chat/completions?api-version=2024-02-15-preview"}
			}`,
			want: Config{
				Provider: OpenAI, Model: "gpt-4",
				Options:   opts("max_tokens", "512", "temperature", "1.0"),
				TimeoutMS: 30000, Cluster: "api7-auzre-openai.openai.azure.com:443", Forward: ForwardCallout,
				Endpoint: Endpoint{
					URL:       "https://api7-auzre-openai.openai.azure.com/openai/deployments/gpt-4/chat/completions?api-version=2024-02-15-preview",
					Scheme:    "https",
					Host:      "api7-auzre-openai.openai.azure.com",
					Port:      443,
					Authority: "api7-auzre-openai.openai.azure.com",
					Path:      "/openai/deployments/gpt-4/chat/completions?api-version=2024-02-15-preview",
				},
				AuthHeaders:     [][2]string{{"api-key", "az-key"}},
				AuthHeaderNames: []string{"api-key"},
				MaxBodyBytes:    67108864,
			},
		},
		{
			name: "seed example 3: passthrough to the upstream",
			in: `{"auth":{"header":{"Authorization":"Bearer sk-test"}},
				"model":{"provider":"openai","name":"gpt-4"},"passthrough":true}`,
			want: Config{
				Provider: OpenAI, Model: "gpt-4", Passthrough: true,
				TimeoutMS: 30000, Cluster: "api.openai.com:443", Forward: ForwardCallout,
				Endpoint:        openaiDefault,
				AuthHeaders:     [][2]string{{"authorization", "Bearer sk-test"}},
				AuthHeaderNames: []string{"authorization"},
				MaxBodyBytes:    67108864,
			},
		},
		{
			name: "flat form with every extra key",
			in: `{"provider":"deepseek","auth":{"header":{"X-B":"2","Authorization":"Bearer d"},"query":{"z":"1","a":"x y"}},
				"options":{"model":"deepseek-chat","stream":true,"stop":["\n"],"temperature":0.2},
				"timeout":1500,"cluster":"llm","forward":"route","max_req_body_size":1024}`,
			want: Config{
				Provider: DeepSeek, Model: "deepseek-chat",
				Options:   opts("stream", "true", "stop", `["\n"]`, "temperature", "0.2"),
				TimeoutMS: 1500, Cluster: "llm", Forward: ForwardRoute,
				Endpoint: Endpoint{
					URL: "https://api.deepseek.com/chat/completions", Scheme: "https", Host: "api.deepseek.com",
					Port: 443, Authority: "api.deepseek.com", Path: "/chat/completions?a=x%20y&z=1",
				},
				AuthHeaders:     [][2]string{{"authorization", "Bearer d"}, {"x-b", "2"}},
				AuthHeaderNames: []string{"authorization", "x-b"},
				MaxBodyBytes:    1024,
			},
		},
		{
			name: "flat form: model as a plain string, no auth, openai-compatible on a local port",
			in:   `{"provider":"openai-compatible","model":"llama3","override":{"endpoint":"http://127.0.0.1:11434/v1/chat/completions"}}`,
			want: Config{
				Provider: OpenAICompatible, Model: "llama3",
				TimeoutMS: 30000, Cluster: "127.0.0.1:11434", Forward: ForwardCallout,
				Endpoint: Endpoint{
					URL: "http://127.0.0.1:11434/v1/chat/completions", Scheme: "http", Host: "127.0.0.1",
					Port: 11434, Authority: "127.0.0.1:11434", Path: "/v1/chat/completions",
				},
				MaxBodyBytes: 67108864,
			},
		},
		{
			name: "seed form: model.name wins over model.options.model, which is not sent",
			in:   `{"model":{"provider":"openai","name":"gpt-4","options":{"model":"gpt-3.5","top_p":1}}}`,
			want: Config{
				Provider: OpenAI, Model: "gpt-4", Options: opts("top_p", "1"),
				TimeoutMS: 30000, Cluster: "api.openai.com:443", Forward: ForwardCallout,
				Endpoint: openaiDefault, MaxBodyBytes: 67108864,
			},
		},
		{
			name: "seed form: options.model when model.name is absent; 3.11 model.override",
			in:   `{"model":{"provider":"azure-openai","options":{"model":"gpt-4o"},"override":{"endpoint":"https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=1"}}}`,
			want: Config{
				Provider: AzureOpenAI, Model: "gpt-4o",
				TimeoutMS: 30000, Cluster: "x.openai.azure.com:443", Forward: ForwardCallout,
				Endpoint: Endpoint{
					URL: "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=1", Scheme: "https",
					Host: "x.openai.azure.com", Port: 443, Authority: "x.openai.azure.com",
					Path: "/openai/deployments/d/chat/completions?api-version=1",
				},
				MaxBodyBytes: 67108864,
			},
		},
		{
			name: "no model configured: the client's model stays; ignored APISIX keys",
			in: `{"provider":"openai","auth":{},"logging":{"summaries":true},"keepalive":true,"keepalive_timeout":60000,
				"keepalive_pool":30,"ssl_verify":false,"streaming_flush_interval_ms":0,"provider_conf":{"region":"x"}}`,
			want: Config{
				Provider: OpenAI, TimeoutMS: 30000, Cluster: "api.openai.com:443", Forward: ForwardCallout,
				Endpoint: openaiDefault, MaxBodyBytes: 67108864,
			},
		},
		{
			name: "limits at their bounds",
			in:   `{"provider":"openai","timeout":600000,"max_req_body_size":1}`,
			want: Config{
				Provider: OpenAI, TimeoutMS: 600000, Cluster: "api.openai.com:443", Forward: ForwardCallout,
				Endpoint: openaiDefault, MaxBodyBytes: 1,
			},
		},
		{
			name: "option values keep their exact bytes, escaped keys are decoded",
			in:   `{"provider":"openai","options":{"a\u0062":{ "x" : [1, 2] },"t":1e2}}`,
			want: Config{
				Provider: OpenAI, Options: opts("ab", `{ "x" : [1, 2] }`, "t", "1e2"),
				TimeoutMS: 30000, Cluster: "api.openai.com:443", Forward: ForwardCallout,
				Endpoint: openaiDefault, MaxBodyBytes: 67108864,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", *got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const supported = " (supported: openai, azure-openai, deepseek, openai-compatible)"
	tests := []struct{ in, want string }{
		// The document.
		{``, `invalid configuration: the configuration is empty (want a JSON object)`},
		{"  \n", `invalid configuration: the configuration is empty (want a JSON object)`},
		{`{"provider":"openai"`, `invalid configuration: not valid JSON (error at byte 20)`},
		{`{"provider":"openai"} x`, `invalid configuration: not valid JSON (error at byte 22)`},
		{`[]`, `invalid configuration: must be a JSON object`},
		{`"openai"`, `invalid configuration: must be a JSON object`},
		{`{"provider":"openai","provider":"openai"}`, `invalid configuration: provider: duplicate key`},
		// Unknown and unsupported keys.
		{`{"provider":"openai","passthru":true}`, `invalid configuration: passthru: unknown key`},
		{`{"provider":"openai","a b":1}`, `invalid configuration: "a b": unknown key`},
		{`{"provider":"openai","max_response_bytes":10}`, `invalid configuration: max_response_bytes: not supported by this filter`},
		{`{"provider":"openai","instances":[]}`, `invalid configuration: instances: not supported by this filter`},
		{`{"model":{"provider":"openai","nam":"x"}}`, `invalid configuration: model.nam: unknown key`},
		{`{"provider":"openai","auth":{"headers":{}}}`, `invalid configuration: auth.headers: unknown key`},
		{`{"provider":"openai","auth":{"gcp":{}}}`, `invalid configuration: auth.gcp: not supported by this filter`},
		{`{"provider":"openai","auth":{"aws":{}}}`, `invalid configuration: auth.aws: not supported by this filter`},
		{`{"provider":"openai","override":{"endpoint":"http://x","llm_options":{}}}`, `invalid configuration: override.llm_options: not supported by this filter`},
		{`{"provider":"openai","override":{"host":"x"}}`, `invalid configuration: override.host: unknown key`},
		// Forms.
		{`{}`, `invalid configuration: provider: required`},
		{`{"auth":{}}`, `invalid configuration: provider: required`},
		{`{"model":{"name":"gpt-4"}}`, `invalid configuration: model.provider: required`},
		{`{"provider":"openai","model":{"provider":"openai"}}`, `invalid configuration: provider: cannot be combined with the model object (use model.provider in the seed form, or the flat form without a model object)`},
		{`{"model":{"provider":"openai"},"options":{}}`, `invalid configuration: options: cannot be combined with the model object (use model.options)`},
		{`{"model":{"provider":"openai","override":{"endpoint":"http://a"}},"override":{"endpoint":"http://b"}}`, `invalid configuration: model.override: cannot be combined with override`},
		{`{"provider":"openai","model":1}`, `invalid configuration: model: must be an object (seed form) or a string (model name)`},
		{`{"provider":"openai","model":"a","options":{"model":"b"}}`, `invalid configuration: model: cannot be combined with options.model (set one)`},
		// Provider.
		{`{"model":{"provider":"foo"}}`, `invalid configuration: model.provider: unknown provider "foo"` + supported},
		{`{"provider":"anthropic"}`, `invalid configuration: provider: unknown provider "anthropic"` + supported},
		{`{"provider":"OpenAI"}`, `invalid configuration: provider: unknown provider "OpenAI"` + supported},
		{`{"provider":1}`, `invalid configuration: provider: must be a string`},
		{`{"model":{"provider":null}}`, `invalid configuration: model.provider: must be a string`},
		{`{"provider":"azure-openai"}`, `invalid configuration: override.endpoint: required for provider "azure-openai"`},
		{`{"provider":"openai-compatible","auth":{"header":{"Authorization":"Bearer x"}}}`, `invalid configuration: override.endpoint: required for provider "openai-compatible"`},
		// Model and options.
		{`{"model":{"provider":"openai","name":4}}`, `invalid configuration: model.name: must be a string`},
		{`{"model":{"provider":"openai","name":""}}`, `invalid configuration: model.name: must not be empty`},
		{`{"provider":"openai","model":""}`, `invalid configuration: model: must not be empty`},
		{`{"provider":"openai","options":[]}`, `invalid configuration: options: must be an object`},
		{`{"model":{"provider":"openai","options":"x"}}`, `invalid configuration: model.options: must be an object`},
		{`{"provider":"openai","options":{"model":1}}`, `invalid configuration: options.model: must be a string`},
		{`{"provider":"openai","options":{"model":""}}`, `invalid configuration: options.model: must not be empty`},
		{`{"provider":"openai","options":{"stream":"yes"}}`, `invalid configuration: options.stream: must be a boolean`},
		{`{"provider":"openai","options":{"t":1,"t":2}}`, `invalid configuration: options.t: duplicate key`},
		// Scalars.
		{`{"provider":"openai","passthrough":"false"}`, `invalid configuration: passthrough: must be a boolean`},
		{`{"provider":"openai","timeout":0}`, `invalid configuration: timeout: must be an integer between 1 and 600000 (ms)`},
		{`{"provider":"openai","timeout":600001}`, `invalid configuration: timeout: must be an integer between 1 and 600000 (ms)`},
		{`{"provider":"openai","timeout":1.5}`, `invalid configuration: timeout: must be an integer between 1 and 600000 (ms)`},
		{`{"provider":"openai","timeout":1e3}`, `invalid configuration: timeout: must be an integer between 1 and 600000 (ms)`},
		{`{"provider":"openai","timeout":-5}`, `invalid configuration: timeout: must be an integer between 1 and 600000 (ms)`},
		{`{"provider":"openai","timeout":"30000"}`, `invalid configuration: timeout: must be an integer between 1 and 600000 (ms)`},
		{`{"provider":"openai","timeout":99999999999999999999}`, `invalid configuration: timeout: must be an integer between 1 and 600000 (ms)`},
		{`{"provider":"openai","max_req_body_size":0}`, `invalid configuration: max_req_body_size: must be an integer >= 1 (bytes)`},
		{`{"provider":"openai","max_req_body_size":true}`, `invalid configuration: max_req_body_size: must be an integer >= 1 (bytes)`},
		{`{"provider":"openai","cluster":""}`, `invalid configuration: cluster: must be a non-empty string`},
		{`{"provider":"openai","cluster":7}`, `invalid configuration: cluster: must be a non-empty string`},
		{`{"provider":"openai","cluster":"a\nb"}`, `invalid configuration: cluster: must be a non-empty string`},
		{`{"provider":"openai","forward":"proxy"}`, `invalid configuration: forward: must be "callout" or "route"`},
		{`{"provider":"openai","forward":null}`, `invalid configuration: forward: must be "callout" or "route"`},
		{`{"provider":"openai","forward":"route","passthrough":true}`, `invalid configuration: passthrough: not supported with forward "route" (the route's upstream is the LLM)`},
		// Auth.
		{`{"provider":"openai","auth":"Bearer x"}`, `invalid configuration: auth: must be an object`},
		{`{"provider":"openai","auth":{"header":[]}}`, `invalid configuration: auth.header: must be an object`},
		{`{"provider":"openai","auth":{"header":{"Authorization":1}}}`, `invalid configuration: auth.header.Authorization: must be a string`},
		{`{"provider":"openai","auth":{"header":{"Authorization":null}}}`, `invalid configuration: auth.header.Authorization: must be a string`},
		{`{"provider":"openai","auth":{"header":{"X Key":"v"}}}`, `invalid configuration: auth.header."X Key": invalid name (allowed: letters, digits, '.', '_', '-')`},
		{`{"provider":"openai","auth":{"header":{"":"v"}}}`, `invalid configuration: auth.header."": invalid name (allowed: letters, digits, '.', '_', '-')`},
		{`{"provider":"openai","auth":{"header":{":path":"v"}}}`, `invalid configuration: auth.header.":path": invalid name (allowed: letters, digits, '.', '_', '-')`},
		{`{"provider":"openai","auth":{"header":{"X-Key":"sk-secret\r\nx: y"}}}`, `invalid configuration: auth.header.X-Key: must not contain control characters`},
		{`{"provider":"openai","auth":{"header":{"api-key":"a","API-Key":"b"}}}`, `invalid configuration: auth.header.API-Key: duplicate header name (names are case-insensitive)`},
		{`{"provider":"openai","auth":{"query":{"api_key":5}}}`, `invalid configuration: auth.query.api_key: must be a string`},
		{`{"provider":"openai","auth":{"query":{"a&b":"v"}}}`, `invalid configuration: auth.query."a&b": invalid name (allowed: letters, digits, '.', '_', '-')`},
		{`{"provider":"openai","auth":{"query":"k=v"}}`, `invalid configuration: auth.query: must be an object`},
		// Override and endpoint.
		{`{"provider":"openai","override":"http://x"}`, `invalid configuration: override: must be an object`},
		{`{"provider":"openai","override":{"endpoint":5}}`, `invalid configuration: override.endpoint: must be a string`},
		{`{"provider":"openai","override":{"endpoint":""}}`, `invalid configuration: override.endpoint: must not be empty`},
		{`{"provider":"openai","override":{"endpoint":"ftp://x"}}`, `invalid configuration: override.endpoint: "ftp://x" is not an http(s) URL`},
		{`{"provider":"openai","override":{"endpoint":"http//127.0.0.1:1980"}}`, `invalid configuration: override.endpoint: "http//127.0.0.1:1980" is not an http(s) URL`},
		{`{"provider":"openai","override":{"endpoint":"127.0.0.1:1980/v1"}}`, `invalid configuration: override.endpoint: "127.0.0.1:1980/v1" is not an http(s) URL`},
		{`{"provider":"openai","override":{"endpoint":"/v1/chat"}}`, `invalid configuration: override.endpoint: "/v1/chat" is not an http(s) URL`},
		{`{"provider":"openai","override":{"endpoint":"http:/x"}}`, `invalid configuration: override.endpoint: "http:/x" is not an http(s) URL`},
		{`{"provider":"openai","override":{"endpoint":"http://"}}`, `invalid configuration: override.endpoint: "http://" has no valid host`},
		{`{"provider":"openai","override":{"endpoint":"http://:80/x"}}`, `invalid configuration: override.endpoint: "http://:80/x" has no valid host`},
		{`{"provider":"openai","override":{"endpoint":"http://a b/x?key=sk"}}`, `invalid configuration: override.endpoint: "http://a b/x?…" has no valid host`},
		{`{"provider":"openai","override":{"endpoint":"http://user:pw@host/x"}}`, `invalid configuration: override.endpoint: must not contain user information (put credentials in auth.header)`},
		{`{"provider":"openai","override":{"endpoint":"http://h:0/x"}}`, `invalid configuration: override.endpoint: "http://h:0/x" has an invalid port`},
		{`{"provider":"openai","override":{"endpoint":"http://h:65536/x"}}`, `invalid configuration: override.endpoint: "http://h:65536/x" has an invalid port`},
		{`{"provider":"openai","override":{"endpoint":"http://h:+80/x"}}`, `invalid configuration: override.endpoint: "http://h:+80/x" has an invalid port`},
		{`{"provider":"openai","override":{"endpoint":"http://h:x/x"}}`, `invalid configuration: override.endpoint: "http://h:x/x" has an invalid port`},
		{`{"provider":"openai","override":{"endpoint":"http://[::1/x"}}`, `invalid configuration: override.endpoint: "http://[::1/x" has an invalid IPv6 host`},
		{`{"provider":"openai","override":{"endpoint":"http://[zz::1]/x"}}`, `invalid configuration: override.endpoint: "http://[zz::1]/x" has an invalid IPv6 host`},
		{`{"provider":"openai","override":{"endpoint":"http://[127.0.0.1]/x"}}`, `invalid configuration: override.endpoint: "http://[127.0.0.1]/x" has an invalid IPv6 host`},
		{`{"provider":"openai","override":{"endpoint":"http://[fe80::1%25eth0]/x"}}`, `invalid configuration: override.endpoint: "http://[fe80::1%25eth0]/x" has an invalid IPv6 host`},
		{`{"provider":"openai","override":{"endpoint":"http://[::1]x/x"}}`, `invalid configuration: override.endpoint: "http://[::1]x/x" has an invalid port`},
		{`{"provider":"openai","override":{"endpoint":"http://h/a%zz"}}`, `invalid configuration: override.endpoint: "http://h/a%zz" has an invalid percent-encoding in its path`},
		{`{"provider":"openai","override":{"endpoint":"http://h/a?k=%2"}}`, `invalid configuration: override.endpoint: has an invalid percent-encoding in its query`},
		{`{"provider":"azure-openai","override":{"endpoint":"https://x.openai.azure.com"}}`, `invalid configuration: override.endpoint: must include the path (e.g. https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT/chat/completions?api-version=VERSION)`},
		{`{"model":{"provider":"openai","override":{"endpoint":"ftp://x"}}}`, `invalid configuration: model.override.endpoint: "ftp://x" is not an http(s) URL`},
	}
	for _, tc := range tests {
		got, err := Parse([]byte(tc.in))
		if err == nil {
			t.Errorf("Parse(%s) = %+v, want error %q", tc.in, got, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%s)\n error %q\n want  %q", tc.in, err.Error(), tc.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s) error does not wrap ErrInvalid", tc.in)
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%s) error is not a *FieldError", tc.in)
		}
		if got != nil {
			t.Errorf("Parse(%s) returned a config with an error", tc.in)
		}
	}
}

// Secrets never appear in an error message.
func TestErrorsDoNotLeakSecrets(t *testing.T) {
	const secret = "sk-SECRET-123"
	for _, in := range []string{
		`{"provider":"openai","auth":{"header":{"Authorization":"Bearer ` + secret + `\n"}}}`,
		`{"provider":"openai","auth":{"header":{"x-key":"` + secret + `","X-Key":"` + secret + `"}}}`,
		`{"provider":"openai","auth":{"query":{"key":"` + secret + `"}},"override":{"endpoint":"ftp://x"}}`,
		`{"provider":"openai","override":{"endpoint":"ftp://x/?api_key=` + secret + `"}}`,
		`{"provider":"openai","override":{"endpoint":"http://u:` + secret + `@x/"}}`,
		`{"provider":"openai","override":{"endpoint":"http://x/?k=` + secret + `%zz"}}`,
		`{"provider":"openai","auth":{"header":{"a":"` + secret + `"}},"timeout":0}`,
	} {
		_, err := Parse([]byte(in))
		if err == nil {
			t.Errorf("Parse(%s) succeeded", in)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name      string
		provider  string
		endpoint  string
		query     string // auth.query object, "" for none
		want      Endpoint
		cluster   string
		urlIsSame bool
	}{
		{
			name: "http default port", provider: "openai", endpoint: "http://example.com/v1/chat/completions",
			want:    Endpoint{Scheme: "http", Host: "example.com", Port: 80, Authority: "example.com", Path: "/v1/chat/completions"},
			cluster: "example.com:80",
		},
		{
			name: "explicit default port is dropped from the authority", provider: "openai", endpoint: "https://example.com:443/x",
			want:    Endpoint{Scheme: "https", Host: "example.com", Port: 443, Authority: "example.com", Path: "/x"},
			cluster: "example.com:443",
		},
		{
			name: "non-default port on https", provider: "openai", endpoint: "https://example.com:8443/x",
			want:    Endpoint{Scheme: "https", Host: "example.com", Port: 8443, Authority: "example.com:8443", Path: "/x"},
			cluster: "example.com:8443",
		},
		{
			name: "port 443 on http is not default", provider: "openai", endpoint: "http://example.com:443/x",
			want:    Endpoint{Scheme: "http", Host: "example.com", Port: 443, Authority: "example.com:443", Path: "/x"},
			cluster: "example.com:443",
		},
		{
			name: "empty port means the default", provider: "openai", endpoint: "http://example.com:/x",
			want:    Endpoint{Scheme: "http", Host: "example.com", Port: 80, Authority: "example.com", Path: "/x"},
			cluster: "example.com:80",
		},
		{
			name: "scheme and host are case-insensitive", provider: "openai", endpoint: "HTTPS://API.Example.COM/V1",
			want:    Endpoint{Scheme: "https", Host: "api.example.com", Port: 443, Authority: "api.example.com", Path: "/V1"},
			cluster: "api.example.com:443",
		},
		{
			name: "IPv6 with port", provider: "openai", endpoint: "http://[::1]:8080/v1/chat/completions",
			want:    Endpoint{Scheme: "http", Host: "::1", Port: 8080, Authority: "[::1]:8080", Path: "/v1/chat/completions"},
			cluster: "[::1]:8080",
		},
		{
			name: "IPv6 default port, normalised", provider: "openai", endpoint: "https://[2001:DB8:0:0::1]/x",
			want:    Endpoint{Scheme: "https", Host: "2001:db8::1", Port: 443, Authority: "[2001:db8::1]", Path: "/x"},
			cluster: "[2001:db8::1]:443",
		},
		{
			name: "host only: openai default path (as APISIX)", provider: "openai", endpoint: "http://127.0.0.1:1980",
			want:    Endpoint{Scheme: "http", Host: "127.0.0.1", Port: 1980, Authority: "127.0.0.1:1980", Path: "/v1/chat/completions"},
			cluster: "127.0.0.1:1980",
		},
		{
			name: "host only: deepseek default path", provider: "deepseek", endpoint: "http://localhost:9000",
			want:    Endpoint{Scheme: "http", Host: "localhost", Port: 9000, Authority: "localhost:9000", Path: "/chat/completions"},
			cluster: "localhost:9000",
		},
		{
			name: "host only with a query: default path plus query", provider: "openai-compatible", endpoint: "http://h?x=1",
			want:    Endpoint{Scheme: "http", Host: "h", Port: 80, Authority: "h", Path: "/v1/chat/completions?x=1"},
			cluster: "h:80",
		},
		{
			name: "a trailing slash is the path /", provider: "openai", endpoint: "http://h/",
			want:    Endpoint{Scheme: "http", Host: "h", Port: 80, Authority: "h", Path: "/"},
			cluster: "h:80",
		},
		{
			name: "auth.query on the default endpoint, sorted and encoded", provider: "openai", endpoint: "",
			query:   `{"z":"1","api_key":"a b&c=d/é"}`,
			want:    Endpoint{Scheme: "https", Host: "api.openai.com", Port: 443, Authority: "api.openai.com", Path: "/v1/chat/completions?api_key=a%20b%26c%3Dd%2F%C3%A9&z=1"},
			cluster: "api.openai.com:443",
		},
		{
			name: "endpoint query first, verbatim, and wins for the same key", provider: "openai",
			endpoint: "http://h/p?some_query=yes&api_key=from-endpoint&b=%2F",
			query:    `{"api_key":"from-auth","a":"1"}`,
			want:     Endpoint{Scheme: "http", Host: "h", Port: 80, Authority: "h", Path: "/p?some_query=yes&api_key=from-endpoint&b=%2F&a=1"},
			cluster:  "h:80",
		},
		{
			name: "endpoint keys are compared decoded", provider: "openai",
			endpoint: "http://h/p?api%5Fkey=1&x+y=2", query: `{"api_key":"2"}`,
			want:    Endpoint{Scheme: "http", Host: "h", Port: 80, Authority: "h", Path: "/p?api%5Fkey=1&x+y=2"},
			cluster: "h:80",
		},
		{
			name: "empty query pieces and a fragment are dropped", provider: "openai",
			endpoint: "http://h/p?&a=1&&b#frag",
			want:     Endpoint{Scheme: "http", Host: "h", Port: 80, Authority: "h", Path: "/p?a=1&b"},
			cluster:  "h:80",
		},
		{
			name: "bytes not allowed in path or query are percent-encoded", provider: "openai",
			endpoint: "http://h/a b/é?q=x y|z",
			want:     Endpoint{Scheme: "http", Host: "h", Port: 80, Authority: "h", Path: "/a%20b/%C3%A9?q=x%20y%7Cz"},
			cluster:  "h:80",
		},
		{
			name: "a lone ? adds nothing", provider: "openai", endpoint: "http://h/p?",
			want:    Endpoint{Scheme: "http", Host: "h", Port: 80, Authority: "h", Path: "/p"},
			cluster: "h:80",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := `{"provider":"` + tc.provider + `"`
			if tc.endpoint != "" {
				in += `,"override":{"endpoint":"` + tc.endpoint + `"}`
			}
			if tc.query != "" {
				in += `,"auth":{"query":` + tc.query + `}`
			}
			in += "}"
			c, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse(%s): %v", in, err)
			}
			want := tc.want
			want.URL = tc.endpoint
			if want.URL == "" {
				want.URL = Provider(tc.provider).DefaultEndpoint()
			}
			if c.Endpoint != want {
				t.Errorf("Endpoint =\n%+v\nwant\n%+v", c.Endpoint, want)
			}
			if c.Cluster != tc.cluster {
				t.Errorf("Cluster = %q, want %q", c.Cluster, tc.cluster)
			}
		})
	}
}

func TestParseCopiesInput(t *testing.T) {
	in := []byte(`{"provider":"openai","options":{"temperature":0.5}}`)
	c, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'x'
	}
	if string(c.Options[0].Raw) != "0.5" {
		t.Errorf("option aliases the caller's buffer: %q", c.Options[0].Raw)
	}
}

func TestProviderDefaults(t *testing.T) {
	for p, want := range map[Provider]string{
		OpenAI:           "https://api.openai.com/v1/chat/completions",
		DeepSeek:         "https://api.deepseek.com/chat/completions",
		AzureOpenAI:      "",
		OpenAICompatible: "",
	} {
		if got := p.DefaultEndpoint(); got != want {
			t.Errorf("%s.DefaultEndpoint() = %q, want %q", p, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"provider":"openai"}`,
		`{"model":{"provider":"openai","name":"gpt-4","options":{"max_tokens":512}},"auth":{"header":{"Authorization":"Bearer x"}}}`,
		`{"provider":"openai-compatible","override":{"endpoint":"http://[::1]:8080/v1?a=b"},"auth":{"query":{"k":"v"}}}`,
		`{"provider":"azure-openai","override":{"endpoint":"https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=1"}}`,
		`{"provider":"deepseek","timeout":5,"forward":"route","cluster":"c","max_req_body_size":10}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || c != nil {
				t.Fatalf("bad error result: %v, %v", c, err)
			}
			return
		}
		e := c.Endpoint
		if !strings.HasPrefix(e.Path, "/") || e.Port < 1 || e.Port > 65535 || e.Host == "" || e.Authority == "" ||
			(e.Scheme != "http" && e.Scheme != "https") || strings.ContainsAny(e.Path, " \r\n\x00") {
			t.Fatalf("bad endpoint %+v from %q", e, data)
		}
		if c.Cluster == "" || c.TimeoutMS < 1 || c.TimeoutMS > MaxTimeoutMS || c.MaxBodyBytes < 1 {
			t.Fatalf("bad config %+v", c)
		}
		if c.Forward != ForwardCallout && c.Forward != ForwardRoute {
			t.Fatalf("bad forward %q", c.Forward)
		}
		for i, h := range c.AuthHeaders {
			if h[0] != strings.ToLower(h[0]) || c.AuthHeaderNames[i] != h[0] || (i > 0 && c.AuthHeaders[i-1][0] >= h[0]) {
				t.Fatalf("auth headers not lower-cased, unique and sorted: %q", c.AuthHeaders)
			}
		}
		for _, o := range c.Options {
			if o.Key == "model" {
				t.Fatalf("model left in options")
			}
		}
	})
}
