// Package report holds the figures of a benchmark run: each a named value
// with a unit and an optional target such as "<= 20" or ">= 0.8", evaluated
// when the figure is added. It writes them as build/bench.json (a JSON array)
// and as a table for people.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
)

// ErrTarget: a target string is not "OP NUMBER" with OP one of <=, <, >=, >.
var ErrTarget = errors.New("report: bad target")

// Figure is one measured value, as written to bench.json.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Target is "" (none) or "OP NUMBER", OP one of <=, <, >=, >.
	Target string `json:"target"`
	// Met is whether Value meets Target; null when there is no target.
	Met *bool `json:"met"`
}

// Evaluate reports whether value meets target. It returns nil (no verdict)
// for an empty target, and ErrTarget for one it cannot read. A NaN value
// meets no target.
func Evaluate(value float64, target string) (*bool, error) {
	target = strings.TrimSpace(target)
	if target == "" {
		return nil, nil
	}
	var op string
	for _, o := range []string{"<=", ">=", "<", ">"} { // two-byte operators first
		if strings.HasPrefix(target, o) {
			op = o
			break
		}
	}
	if op == "" {
		return nil, fmt.Errorf("%w %q: no operator", ErrTarget, target)
	}
	limit, err := strconv.ParseFloat(strings.TrimSpace(target[len(op):]), 64)
	if err != nil || math.IsNaN(limit) {
		return nil, fmt.Errorf("%w %q: %q is not a number", ErrTarget, target, strings.TrimSpace(target[len(op):]))
	}
	var met bool
	switch op {
	case "<=":
		met = value <= limit
	case "<":
		met = value < limit
	case ">=":
		met = value >= limit
	case ">":
		met = value > limit
	}
	return &met, nil
}

// Report is an ordered list of figures. The zero value is ready to use.
type Report struct {
	Figures []Figure
}

// Add appends a figure, evaluating its target. An unreadable target is a
// programming error: Add returns it and does not add the figure.
func (r *Report) Add(name string, value float64, unit, target string) error {
	met, err := Evaluate(value, target)
	if err != nil {
		return fmt.Errorf("figure %q: %w", name, err)
	}
	r.Figures = append(r.Figures, Figure{Name: name, Value: value, Unit: unit, Target: strings.TrimSpace(target), Met: met})
	return nil
}

// Missed returns the figures whose target is not met.
func (r *Report) Missed() []Figure {
	var out []Figure
	for _, f := range r.Figures {
		if f.Met != nil && !*f.Met {
			out = append(out, f)
		}
	}
	return out
}

// MarshalJSON is the figures as a JSON array ([] when there are none).
func (r *Report) MarshalJSON() ([]byte, error) {
	figs := r.Figures
	if figs == nil {
		figs = []Figure{}
	}
	for _, f := range figs {
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			return nil, fmt.Errorf("report: figure %q has no finite value (%v)", f.Name, f.Value)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // targets read "<= 20", not "\u003c= 20"
	enc.SetIndent("", "  ")
	if err := enc.Encode(figs); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// WriteFile writes the figures as a JSON array to path (its directory is
// created), through a temporary file renamed into place.
func (r *Report) WriteFile(path string) error {
	data, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteTable writes the figures as an aligned text table: name, value with
// its unit, target, and "ok", "MISSED" or "-" (no target).
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\tmet")
	for _, f := range r.Figures {
		verdict := "-"
		if f.Met != nil {
			verdict = "ok"
			if !*f.Met {
				verdict = "MISSED"
			}
		}
		target := f.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\n", f.Name, FormatValue(f.Value), f.Unit, target, verdict)
	}
	return tw.Flush()
}

// FormatValue prints v with about three significant digits (integers as
// they are).
func FormatValue(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}
