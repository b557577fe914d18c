package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"sigs.k8s.io/yaml"

	// The typed_config messages the subset uses, so that Any fields resolve.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

// Sentinel errors; every error from Load and Parse is an *Error wrapping one.
var (
	// ErrInvalid: the file is not YAML/JSON, or breaks Envoy's schema.
	ErrInvalid = errors.New("invalid bootstrap")
	// ErrUnsupported: valid for Envoy, but outside the subset the gateway runs.
	ErrUnsupported = errors.New("unsupported bootstrap")
)

// Error is a one-line load error naming the field path where it is known.
type Error struct {
	// Kind is ErrInvalid or ErrUnsupported.
	Kind error
	// Path is the field path in the bootstrap ("static_resources.listeners[0]"), or "".
	Path string
	// Reason says what is wrong, in one line.
	Reason string
}

// Error returns "path: reason" (or the reason alone when there is no path).
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

func invalidf(path, format string, args ...any) error {
	return &Error{Kind: ErrInvalid, Path: path, Reason: oneLine(fmt.Sprintf(format, args...))}
}

func unsupportedf(path, format string, args ...any) error {
	return &Error{Kind: ErrUnsupported, Path: path, Reason: oneLine(fmt.Sprintf(format, args...))}
}

// Load reads the bootstrap file at path and parses it with Parse. Errors are
// prefixed with the file name.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Kind: ErrInvalid, Reason: oneLine(err.Error())}
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads a bootstrap in YAML or JSON with Envoy's schema (unknown fields
// and validation rule violations are ErrInvalid), then extracts the supported
// subset (anything else set is ErrUnsupported). Relative file names (wasm code,
// CA files) are made absolute against the process working directory.
func Parse(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, invalidf("", "%v", err)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, invalidf("", "%v", err)
	}
	root, ok := doc.(map[string]any)
	if !ok || len(root) == 0 {
		return nil, invalidf("", "the bootstrap is empty or not a mapping")
	}
	var bs bootstrapv3.Bootstrap
	if err := checkJSON("", root, bs.ProtoReflect().Descriptor()); err != nil {
		return nil, err
	}
	if err := protojson.Unmarshal(js, &bs); err != nil {
		return nil, invalidf("", "%s", protoMessage(err))
	}
	if err := validate("", &bs); err != nil {
		return nil, err
	}
	return extract(&bs)
}

// checkJSON walks the decoded document along the message descriptor md and
// reports, with its path, the first unknown field, value of the wrong JSON
// type, unknown enum name, or typed_config whose type is not known here.
// protojson does the real parse afterwards; this walk only makes its errors
// name the field.
func checkJSON(path string, v any, md protoreflect.MessageDescriptor) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return invalidf(path, "schema: expected an object for %s", md.FullName())
	}
	for _, k := range sortedKeys(obj) {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		if fd == nil {
			return invalidf(path, "unknown field %q", k)
		}
		fp := join(path, k)
		val := obj[k]
		if val == nil {
			continue // null is the default value
		}
		switch {
		case fd.IsMap():
			m, ok := val.(map[string]any)
			if !ok {
				return invalidf(fp, "schema: expected an object")
			}
			for _, mk := range sortedKeys(m) {
				if err := checkSingular(fp+"["+mk+"]", nil, "", m[mk], fd.MapValue()); err != nil {
					return err
				}
			}
		case fd.IsList():
			arr, ok := val.([]any)
			if !ok {
				return invalidf(fp, "schema: expected a list")
			}
			for i, e := range arr {
				if err := checkSingular(fmt.Sprintf("%s[%d]", fp, i), nil, "", e, fd); err != nil {
					return err
				}
			}
		default:
			if err := checkSingular(fp, obj, path, val, fd); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSingular checks one (non-repeated) value of field fd.
func checkSingular(path string, parent map[string]any, parentPath string, v any, fd protoreflect.FieldDescriptor) error {
	if v == nil {
		return nil
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkValue(path, parent, parentPath, v, fd.Message())
	case protoreflect.EnumKind:
		switch e := v.(type) {
		case json.Number:
			return nil
		case string:
			if fd.Enum().Values().ByName(protoreflect.Name(e)) == nil {
				return invalidf(path, "schema: unknown value %q for enum %s", e, fd.Enum().FullName())
			}
			return nil
		}
		return invalidf(path, "schema: expected an enum name")
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return invalidf(path, "schema: expected true or false")
		}
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return invalidf(path, "schema: expected a string")
		}
	default: // numbers: protojson also accepts them quoted
		return checkNumber(path, v)
	}
	return nil
}

func checkNumber(path string, v any) error {
	switch n := v.(type) {
	case json.Number:
		return nil
	case string:
		if _, err := strconv.ParseFloat(n, 64); err == nil || n == "NaN" || n == "Infinity" || n == "-Infinity" {
			return nil
		}
	}
	return invalidf(path, "schema: expected a number")
}

// checkWellKnown checks the JSON form of the google.protobuf types with a
// special mapping.
func checkWellKnown(path string, v any, md protoreflect.MessageDescriptor) error {
	switch md.Name() {
	case "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value":
		return checkNumber(path, v)
	case "BoolValue":
		if _, ok := v.(bool); !ok {
			return invalidf(path, "schema: expected true or false")
		}
	case "StringValue", "BytesValue", "Duration", "Timestamp", "FieldMask":
		if _, ok := v.(string); !ok {
			return invalidf(path, "schema: expected a string")
		}
	case "Struct":
		if _, ok := v.(map[string]any); !ok {
			return invalidf(path, "schema: expected an object")
		}
	case "ListValue":
		if _, ok := v.([]any); !ok {
			return invalidf(path, "schema: expected a list")
		}
	}
	return nil
}

// checkValue checks one message value at path; parent and parentPath locate the
// object holding it (used to name an Any's extension), parent may be nil.
func checkValue(path string, parent map[string]any, parentPath string, v any, md protoreflect.MessageDescriptor) error {
	if md.FullName() != "google.protobuf.Any" {
		if isWellKnown(md) {
			return checkWellKnown(path, v, md)
		}
		return checkJSON(path, v, md)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	url, _ := obj["@type"].(string)
	if url == "" {
		return nil // protojson reports it
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if err != nil {
		if parent == nil {
			return unsupportedf(path, "unsupported type %q", url)
		}
		return unsupportedf(parentPath, "%s", unsupportedExtension(parentPath, parent, url))
	}
	if isWellKnown(mt.Descriptor()) {
		if val, ok := obj["value"]; ok && val != nil {
			return checkWellKnown(path+".value", val, mt.Descriptor())
		}
		return nil
	}
	rest := make(map[string]any, len(obj))
	for k, e := range obj {
		if k != "@type" {
			rest[k] = e
		}
	}
	return checkJSON(path, rest, mt.Descriptor())
}

// unsupportedExtension words the refusal of a typed_config by where it sits.
func unsupportedExtension(path string, obj map[string]any, typeURL string) string {
	name, _ := obj["name"].(string)
	kind := "extension"
	seg := path
	if i := strings.LastIndexByte(seg, '.'); i >= 0 {
		seg = seg[i+1:]
	}
	if i := strings.IndexByte(seg, '['); i >= 0 {
		seg = seg[:i]
	}
	switch seg {
	case "filters":
		kind = "network filter"
	case "http_filters", "httpFilters":
		kind = "http filter"
	case "transport_socket", "transportSocket":
		kind = "transport socket"
	case "listener_filters", "listenerFilters":
		kind = "listener filter"
	}
	if name == "" {
		return fmt.Sprintf("unsupported %s (type %s)", kind, typeURL)
	}
	return fmt.Sprintf("unsupported %s %q (type %s)", kind, name, typeURL)
}

// isWellKnown reports the messages whose JSON form is not an object of fields.
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	if md.ParentFile() == nil || md.ParentFile().Package() != "google.protobuf" {
		return false
	}
	switch md.Name() {
	case "Any":
		return false
	case "Empty":
		return false
	}
	return true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// protoMessage cleans a protojson error: no "proto:" prefix, no JSON line/column
// (the positions are in the converted JSON, not in the user's file), plain spaces.
func protoMessage(err error) string {
	s := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	s = strings.TrimPrefix(s, "proto: ")
	if strings.HasPrefix(s, "(line ") {
		if i := strings.Index(s, "): "); i >= 0 {
			s = s[i+3:]
		}
	}
	return "schema: " + s
}

// pgvError is the shape of the errors protoc-gen-validate generates.
type pgvError interface {
	error
	Field() string
	Reason() string
	Cause() error
}

// validate runs the message's ValidateAll and turns the first violation into
// an ErrInvalid naming the field path (path is the message's own path).
func validate(path string, m interface{ ValidateAll() error }) error {
	err := m.ValidateAll()
	if err == nil {
		return nil
	}
	p := path
	reason := ""
	for err != nil {
		if multi, ok := err.(interface{ AllErrors() []error }); ok {
			all := multi.AllErrors()
			if len(all) == 0 {
				break
			}
			err = all[0]
			continue
		}
		v, ok := err.(pgvError)
		if !ok {
			reason = err.Error()
			break
		}
		p = join(p, snakeField(v.Field()))
		if c := v.Cause(); c != nil {
			err = c
			continue
		}
		reason = v.Reason()
		break
	}
	return invalidf(p, "schema: %s", reason)
}

// snakeField turns a generated Go field name ("PortValue", "Listeners[0]") into
// the proto field name ("port_value", "listeners[0]").
func snakeField(s string) string {
	var b strings.Builder
	suffix := ""
	if i := strings.IndexByte(s, '['); i >= 0 {
		s, suffix = s[:i], s[i:]
	}
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String() + suffix
}

// oneLine folds any line breaks so that an error stays on one line.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\u00a0", " ")
	return strings.Join(strings.Fields(s), " ")
}
