// Package config parses and validates the plugin configuration (the JSON in the
// wasm filter's `configuration`) once, at configure time, into an immutable
// Config that holds everything the per-request path needs precomputed.
//
// Both APISIX ai-proxy schemas are accepted:
//
//   - the seed (APISIX 3.11) form:
//     {"auth":{"header":{..},"query":{..}}, "model":{"provider":"openai","name":"gpt-4","options":{..}},
//     "override":{"endpoint":"URL"}, "passthrough":false}
//     (3.11 kept override inside model: "model.override.endpoint" is accepted too);
//   - the flat (3.12+) form:
//     {"provider":"openai","auth":{..},"options":{"model":"gpt-4",..},"override":{"endpoint":"URL"}}
//
// plus, in either form, "timeout" (ms), "cluster", "forward", "max_req_body_size"
// and "passthrough".
//
// Decisions (see the tests for each):
//   - A "model" object together with a top-level "provider" is an error: the two
//     forms are not mixed. A top-level "options" next to a "model" object is an
//     error too (use model.options).
//   - Seed form: model.name wins over model.options.model (which is then not
//     sent). Flat form: options.model is the model; a plain string "model" is
//     accepted as a convenience, but not together with options.model.
//   - "auth" is optional (APISIX requires it): local and mock LLMs need none.
//   - Unknown keys are rejected, naming the key, at every level, except these
//     top-level keys APISIX accepts and this filter ignores: logging, keepalive,
//     keepalive_timeout, keepalive_pool, ssl_verify, streaming_flush_interval_ms,
//     provider_conf. APISIX features this filter does not implement
//     (auth.gcp, auth.aws, override.llm_options, override.request_body, ...)
//     are rejected as "not supported" rather than silently ignored.
//   - Duplicate keys in any configuration object are rejected.
//   - passthrough=true needs forward "callout" (in "route" mode the route's
//     upstream is the LLM itself).
//   - options.stream, when set, must be a boolean; other options are free-form
//     JSON, sent as configured.
//
// Errors wrap ErrInvalid, name the field and never contain auth values.
package config

import (
	"errors"
	"strconv"
	"strings"

	"ai-proxy/filter/rawjson"
)

// Provider names an LLM provider, as in APISIX.
type Provider string

// Supported providers.
const (
	OpenAI           Provider = "openai"
	AzureOpenAI      Provider = "azure-openai"
	DeepSeek         Provider = "deepseek"
	OpenAICompatible Provider = "openai-compatible"
)

// providers lists the supported providers in the order error messages name them.
var providers = []Provider{OpenAI, AzureOpenAI, DeepSeek, OpenAICompatible}

// DefaultEndpoint returns the endpoint used when override.endpoint is absent, or
// "" when the provider has none (override.endpoint is then required).
func (p Provider) DefaultEndpoint() string {
	switch p {
	case OpenAI:
		return "https://api.openai.com/v1/chat/completions"
	case DeepSeek:
		return "https://api.deepseek.com/chat/completions"
	}
	return ""
}

// defaultPath is the path used for an override.endpoint without one ("" = the
// endpoint must have a path), as APISIX's provider capabilities define it.
func (p Provider) defaultPath() string {
	switch p {
	case OpenAI, OpenAICompatible:
		return "/v1/chat/completions"
	case DeepSeek:
		return "/chat/completions"
	}
	return ""
}

// Forward says how the filter reaches the LLM.
type Forward string

// Forward modes.
const (
	// ForwardCallout: buffer the client body and send the provider request
	// with proxy_http_call to Cluster.
	ForwardCallout Forward = "callout"
	// ForwardRoute: the route's own cluster is the LLM; rewrite the request in
	// place and let the proxy forward it.
	ForwardRoute Forward = "route"
)

// Option is one configured body option.
type Option struct {
	// Key is the option's name (decoded).
	Key string
	// Raw is the option's JSON value bytes, exactly as configured.
	Raw []byte
}

// Defaults and limits.
const (
	DefaultTimeoutMS    = 30000
	MaxTimeoutMS        = 600000
	DefaultMaxBodyBytes = 64 << 20 // 67108864, as APISIX
)

// Config is a validated plugin configuration. It is immutable after Parse and
// safe to share between requests.
type Config struct {
	Provider Provider
	// Model is the configured model name ("" = the client's model stays).
	Model string
	// Options are the configured options except "model", in configuration order.
	Options     []Option
	Passthrough bool
	// TimeoutMS is the LLM call timeout: default 30000, 1..600000.
	TimeoutMS uint32
	// Cluster is the proxy's name for the LLM upstream. Default: Endpoint.Host
	// ":" port with the port explicit ("api.openai.com:443", "[::1]:8080").
	Cluster  string
	Forward  Forward
	Endpoint Endpoint
	// AuthHeaders are auth.header pairs, names lower-cased, sorted by name;
	// values as given.
	AuthHeaders [][2]string
	// AuthHeaderNames are the same names, in the same order (the filter strips
	// these from client headers too).
	AuthHeaderNames []string
	// MaxBodyBytes is max_req_body_size: default 64 MiB, >= 1.
	MaxBodyBytes int
}

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid configuration")

// FieldError is a rejected configuration field. Its message never contains a
// credential.
type FieldError struct {
	// Field is the dotted path of the field ("" for the document itself).
	Field string
	// Reason says what is wrong.
	Reason string
}

// Error returns "invalid configuration: FIELD: REASON".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return ErrInvalid.Error() + ": " + e.Reason
	}
	return ErrInvalid.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// member is one decoded configuration object member.
type member struct {
	key string
	raw []byte
}

// object decodes raw as a JSON object with unique keys; field names it in
// errors.
func object(field string, raw []byte) ([]member, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fieldErr(field, "must be an object")
	}
	ms, err := rawjson.Members(raw)
	if err != nil { // cannot happen: the document was validated
		return nil, fieldErr(field, "must be an object")
	}
	out := make([]member, 0, len(ms))
	for _, m := range ms {
		k, _ := rawjson.Unquote(m.Key)
		for _, o := range out {
			if o.key == k {
				return nil, fieldErr(join(field, k), "duplicate key")
			}
		}
		out = append(out, member{key: k, raw: m.Value})
	}
	return out, nil
}

func get(ms []member, key string) ([]byte, bool) {
	for _, m := range ms {
		if m.key == key {
			return m.raw, true
		}
	}
	return nil, false
}

// join appends key to a dotted field path, quoting keys that are not simple
// names.
func join(field, key string) string {
	if !simpleName(key) {
		key = strconv.Quote(key)
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

// simpleName reports whether s matches ^[a-zA-Z0-9._-]+$ (APISIX's pattern for
// auth.header and auth.query names).
func simpleName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// quoteTrunc quotes a configured (non-secret) value for a message, cut at 100
// bytes.
func quoteTrunc(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return strconv.Quote(s)
}

func str(field string, raw []byte) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fieldErr(field, "must be a string")
	}
	s, _ := rawjson.Unquote(raw)
	return s, nil
}

func boolean(field string, raw []byte) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fieldErr(field, "must be a boolean")
}

// integer parses raw as a JSON integer (no fraction, no exponent) within
// [lo, hi]; reason is the whole message on any failure.
func integer(field string, raw []byte, lo, hi int64, reason string) (int64, error) {
	s := string(raw)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, fieldErr(field, reason)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fieldErr(field, reason)
	}
	return n, nil
}

// hasControl reports bytes not allowed in a header value or cluster name: any
// ASCII control character except horizontal tab.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// ignoredKeys are top-level keys APISIX accepts that this filter ignores.
var ignoredKeys = map[string]bool{
	"logging": true, "keepalive": true, "keepalive_timeout": true, "keepalive_pool": true,
	"ssl_verify": true, "streaming_flush_interval_ms": true, "provider_conf": true,
}

// unsupported are APISIX keys whose feature this filter does not implement.
var unsupported = map[string]bool{
	"auth.gcp": true, "auth.aws": true,
	"override.llm_options": true, "override.request_body": true, "override.request_body_force_override": true,
	"max_stream_duration_ms": true, "max_response_bytes": true, "instances": true,
}

func unknownKey(field, key string) error {
	f := join(field, key)
	if unsupported[f] {
		return fieldErr(f, "not supported by this filter")
	}
	return fieldErr(f, "unknown key")
}

// Parse validates data and returns the configuration. Every error wraps
// ErrInvalid and is a *FieldError naming the field.
func Parse(data []byte) (*Config, error) {
	// Own the bytes: option values alias them for the life of the Config.
	data = append([]byte(nil), data...)

	start := rawjson.SkipSpace(data, 0)
	if start == len(data) {
		return nil, fieldErr("", "the configuration is empty (want a JSON object)")
	}
	end, err := rawjson.Value(data, start)
	if err == nil && rawjson.SkipSpace(data, end) != len(data) {
		err = rawjson.ErrSyntax
		end = rawjson.SkipSpace(data, end)
	}
	if err != nil {
		return nil, fieldErr("", "not valid JSON (error at byte "+strconv.Itoa(end)+")")
	}
	if data[start] != '{' {
		return nil, fieldErr("", "must be a JSON object")
	}
	top, err := object("", data[start:end])
	if err != nil {
		return nil, err
	}

	c := &Config{
		TimeoutMS:    DefaultTimeoutMS,
		Forward:      ForwardCallout,
		MaxBodyBytes: DefaultMaxBodyBytes,
	}
	var (
		authRaw, overrideRaw, modelOverrideRaw, optionsRaw []byte
		optionsField                                       string
		providerField                                      = "provider"
		providerRaw                                        []byte
		haveProvider                                       bool
		modelName                                          string
		modelNameSet                                       bool
		modelNameField                                     string
		seed                                               bool
	)

	modelRaw, haveModel := get(top, "model")
	seed = haveModel && modelRaw[0] == '{'
	for _, m := range top {
		switch m.key {
		case "model", "provider", "options", "auth", "override":
			// handled below
		case "passthrough":
			if c.Passthrough, err = boolean("passthrough", m.raw); err != nil {
				return nil, err
			}
		case "timeout":
			n, err := integer("timeout", m.raw, 1, MaxTimeoutMS, "must be an integer between 1 and 600000 (ms)")
			if err != nil {
				return nil, err
			}
			c.TimeoutMS = uint32(n)
		case "cluster":
			s, err := str("cluster", m.raw)
			if err != nil || s == "" || hasControl(s) {
				return nil, fieldErr("cluster", "must be a non-empty string")
			}
			c.Cluster = s
		case "forward":
			s, err := str("forward", m.raw)
			if err != nil || (s != string(ForwardCallout) && s != string(ForwardRoute)) {
				return nil, fieldErr("forward", `must be "callout" or "route"`)
			}
			c.Forward = Forward(s)
		case "max_req_body_size":
			n, err := integer("max_req_body_size", m.raw, 1, 1<<53, "must be an integer >= 1 (bytes)")
			if err != nil {
				return nil, err
			}
			c.MaxBodyBytes = int(n)
		default:
			if !ignoredKeys[m.key] {
				return nil, unknownKey("", m.key)
			}
		}
	}
	authRaw, _ = get(top, "auth")
	overrideRaw, _ = get(top, "override")
	providerRaw, haveProvider = get(top, "provider")
	topOptions, haveTopOptions := get(top, "options")

	if seed {
		if haveProvider {
			return nil, fieldErr("provider", "cannot be combined with the model object (use model.provider in the seed form, or the flat form without a model object)")
		}
		if haveTopOptions {
			return nil, fieldErr("options", "cannot be combined with the model object (use model.options)")
		}
		model, err := object("model", modelRaw)
		if err != nil {
			return nil, err
		}
		for _, m := range model {
			switch m.key {
			case "provider":
				providerRaw, haveProvider, providerField = m.raw, true, "model.provider"
			case "name":
				if modelName, err = str("model.name", m.raw); err != nil {
					return nil, err
				}
				modelNameSet, modelNameField = true, "model.name"
			case "options":
				optionsRaw, optionsField = m.raw, "model.options"
			case "override":
				modelOverrideRaw = m.raw
			default:
				return nil, unknownKey("model", m.key)
			}
		}
		if !haveProvider {
			return nil, fieldErr("model.provider", "required")
		}
		if modelOverrideRaw != nil {
			if overrideRaw != nil {
				return nil, fieldErr("model.override", "cannot be combined with override")
			}
			overrideRaw = modelOverrideRaw
		}
	} else {
		if haveModel {
			if modelRaw[0] != '"' {
				return nil, fieldErr("model", "must be an object (seed form) or a string (model name)")
			}
			modelName, _ = rawjson.Unquote(modelRaw)
			modelNameSet, modelNameField = true, "model"
		}
		if !haveProvider {
			return nil, fieldErr("provider", "required")
		}
		if haveTopOptions {
			optionsRaw, optionsField = topOptions, "options"
		}
	}

	// Provider.
	p, err := str(providerField, providerRaw)
	if err != nil {
		return nil, err
	}
	c.Provider = Provider(p)
	known := false
	for _, kp := range providers {
		known = known || kp == c.Provider
	}
	if !known {
		names := make([]string, len(providers))
		for i, kp := range providers {
			names[i] = string(kp)
		}
		return nil, fieldErr(providerField, "unknown provider "+quoteTrunc(p)+" (supported: "+strings.Join(names, ", ")+")")
	}

	// Model and options.
	if modelNameSet && modelName == "" {
		return nil, fieldErr(modelNameField, "must not be empty")
	}
	c.Model = modelName
	if optionsRaw != nil {
		opts, err := object(optionsField, optionsRaw)
		if err != nil {
			return nil, err
		}
		for _, o := range opts {
			f := join(optionsField, o.key)
			switch o.key {
			case "model":
				s, err := str(f, o.raw)
				if err != nil {
					return nil, err
				}
				if s == "" {
					return nil, fieldErr(f, "must not be empty")
				}
				if modelNameSet {
					if !seed {
						return nil, fieldErr("model", "cannot be combined with options.model (set one)")
					}
					continue // seed form: model.name wins
				}
				c.Model = s
				continue
			case "stream":
				if _, err := boolean(f, o.raw); err != nil {
					return nil, err
				}
			}
			c.Options = append(c.Options, Option{Key: o.key, Raw: o.raw})
		}
	}

	// Auth.
	var authQuery [][2]string
	if authRaw != nil {
		auth, err := object("auth", authRaw)
		if err != nil {
			return nil, err
		}
		for _, a := range auth {
			switch a.key {
			case "header":
				if c.AuthHeaders, err = pairs("auth.header", a.raw, true); err != nil {
					return nil, err
				}
			case "query":
				if authQuery, err = pairs("auth.query", a.raw, false); err != nil {
					return nil, err
				}
			default:
				return nil, unknownKey("auth", a.key)
			}
		}
	}
	for _, h := range c.AuthHeaders {
		c.AuthHeaderNames = append(c.AuthHeaderNames, h[0])
	}

	// Endpoint.
	endpoint := c.Provider.DefaultEndpoint()
	if overrideRaw != nil {
		field := "override"
		if modelOverrideRaw != nil {
			field = "model.override"
		}
		ov, err := object(field, overrideRaw)
		if err != nil {
			return nil, err
		}
		for _, o := range ov {
			if o.key != "endpoint" {
				return nil, unknownKey("override", o.key)
			}
			s, err := str(field+".endpoint", o.raw)
			if err != nil {
				return nil, err
			}
			if strings.TrimSpace(s) == "" {
				return nil, fieldErr(field+".endpoint", "must not be empty")
			}
			endpoint = s
		}
	}
	if endpoint == "" {
		return nil, fieldErr("override.endpoint", "required for provider "+strconv.Quote(p))
	}
	field := "override.endpoint"
	if modelOverrideRaw != nil {
		field = "model.override.endpoint"
	}
	if c.Endpoint, err = parseEndpoint(field, endpoint, c.Provider.defaultPath(), authQuery); err != nil {
		return nil, err
	}

	if c.Cluster == "" {
		c.Cluster = hostPort(c.Endpoint.Host, c.Endpoint.Port)
	}
	if c.Passthrough && c.Forward == ForwardRoute {
		return nil, fieldErr("passthrough", `not supported with forward "route" (the route's upstream is the LLM)`)
	}
	return c, nil
}

// pairs parses auth.header or auth.query: names matching ^[a-zA-Z0-9._-]+$,
// string values. Header names are lower-cased and must be unique ignoring
// case, and header values must not hold control characters. The result is
// sorted by name. Messages never include a value.
func pairs(field string, raw []byte, header bool) ([][2]string, error) {
	ms, err := object(field, raw)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(ms))
	for _, m := range ms {
		f := join(field, m.key)
		if !simpleName(m.key) {
			return nil, fieldErr(f, "invalid name (allowed: letters, digits, '.', '_', '-')")
		}
		v, err := str(f, m.raw)
		if err != nil {
			return nil, err
		}
		name := m.key
		if header {
			name = strings.ToLower(name)
			if hasControl(v) {
				return nil, fieldErr(f, "must not contain control characters")
			}
			for _, o := range out {
				if o[0] == name {
					return nil, fieldErr(f, "duplicate header name (names are case-insensitive)")
				}
			}
		}
		out = append(out, [2]string{name, v})
	}
	// Insertion sort: a handful of entries.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j][0] < out[j-1][0]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}
