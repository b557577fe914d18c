package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		value  float64
		target string
		want   *bool
	}{
		{20, "<= 20", &yes},
		{20.01, "<= 20", &no},
		{19, "<=20", &yes},
		{0.8, ">= 0.8", &yes},
		{0.79, ">= 0.8", &no},
		{4, "< 4", &no},
		{3.99, "< 4", &yes},
		{1, "> 1", &no},
		{1.5, "> 1", &yes},
		{-3, "<= -2", &yes},
		{1.2, "  <= 1.2 ", &yes},
		{2, "<= 1e1", &yes},
		{math.NaN(), "<= 20", &no},
		{math.NaN(), ">= 0", &no},
		{5, "", nil},
		{5, "   ", nil},
	} {
		got, err := Evaluate(tc.value, tc.target)
		if err != nil {
			t.Errorf("Evaluate(%v, %q): %v", tc.value, tc.target, err)
			continue
		}
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("Evaluate(%v, %q) = %v, want %v", tc.value, tc.target, show(got), show(tc.want))
		}
	}
}

func show(b *bool) string {
	if b == nil {
		return "nil"
	}
	if *b {
		return "true"
	}
	return "false"
}

func TestEvaluateBadTargets(t *testing.T) {
	for _, target := range []string{"20", "=< 20", "== 1", "<= ", "<= abc", ">= 0.8x", "<= NaN", "≤ 20"} {
		if _, err := Evaluate(1, target); !errors.Is(err, ErrTarget) {
			t.Errorf("Evaluate(1, %q) = %v, want ErrTarget", target, err)
		}
	}
	var r Report
	if err := r.Add("x", 1, "ms", "about 3"); !errors.Is(err, ErrTarget) || len(r.Figures) != 0 {
		t.Errorf("Add with a bad target: %v, %d figures; want ErrTarget and none added", err, len(r.Figures))
	}
}

func TestWriteFile(t *testing.T) {
	var r Report
	for _, f := range []struct {
		name   string
		value  float64
		unit   string
		target string
	}{
		{"boundary", 12.5, "µs", "<= 20"},
		{"route ratio", 0.7, "ratio", ">= 0.8"},
		{"throughput", 5000, "req/s", ""},
		{"size", 2.9, "MB", "< 4"},
	} {
		if err := r.Add(f.name, f.value, f.unit, f.target); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "sub", "bench.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("bench.json is not a JSON array of objects: %v\n%s", err, data)
	}
	if len(raw) != 4 {
		t.Fatalf("%d objects, want 4", len(raw))
	}
	for i, obj := range raw {
		var keys []string
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"met", "name", "target", "unit", "value"}; !slices.Equal(keys, want) {
			t.Errorf("object %d has keys %v, want %v", i, keys, want)
		}
	}
	want := []struct {
		name, target, met string
		value             float64
	}{
		{"boundary", `"<= 20"`, "true", 12.5},
		{"route ratio", `">= 0.8"`, "false", 0.7},
		{"throughput", `""`, "null", 5000},
		{"size", `"< 4"`, "true", 2.9},
	}
	for i, w := range want {
		var name string
		var value float64
		json.Unmarshal(raw[i]["name"], &name)
		json.Unmarshal(raw[i]["value"], &value)
		if name != w.name || value != w.value || string(raw[i]["target"]) != w.target || string(raw[i]["met"]) != w.met {
			t.Errorf("object %d = name %q value %v target %s met %s; want %q %v %s %s",
				i, name, value, raw[i]["target"], raw[i]["met"], w.name, w.value, w.target, w.met)
		}
	}
	if m := r.Missed(); len(m) != 1 || m[0].Name != "route ratio" {
		t.Errorf("Missed = %+v, want the route ratio only", m)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the temporary file is left: %v", err)
	}
}

func TestEmptyAndNonFinite(t *testing.T) {
	var r Report
	data, err := r.MarshalJSON()
	if err != nil || string(data) != "[]" {
		t.Errorf("empty report = %s, %v; want []", data, err)
	}
	r.Add("broken", math.Inf(1), "ms", "")
	if _, err := r.MarshalJSON(); err == nil {
		t.Error("a figure of +Inf was written")
	}
	if err := r.WriteFile(filepath.Join(t.TempDir(), "bench.json")); err == nil {
		t.Error("WriteFile wrote a figure of +Inf")
	}
}

func TestWriteTable(t *testing.T) {
	var r Report
	r.Add("boundary", 12.5, "µs", "<= 20")
	r.Add("ratio", 0.7, "ratio", ">= 0.8")
	r.Add("count", 100000, "requests", "")
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a header and 3 rows:\n%s", len(lines), buf.String())
	}
	for i, want := range [][]string{
		{"figure", "value", "target", "met"},
		{"boundary", "12.50 µs", "<= 20", "ok"},
		{"ratio", "0.700 ratio", ">= 0.8", "MISSED"},
		{"count", "100000 requests", "-", "-"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{
		100000: "100000", 0: "0", 1234.56: "1234.6", 12.345: "12.35", 0.12345: "0.123", -0.5: "-0.500", -42: "-42",
	} {
		if got := FormatValue(v); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
}
