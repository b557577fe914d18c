package proxywasm_test

import (
	"context"
	"strings"
	"testing"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness"
	"ai-proxy/harness/testutil"
)

// buildPanicker compiles testdata/panicker with the binding under test.
func buildPanicker(t *testing.T) *harness.Module {
	t.Helper()
	wasm, err := testutil.BuildWasmBytes("./testdata/panicker")
	if err != nil {
		t.Fatalf("building the test module: %v", err)
	}
	m, err := harness.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func headers(mode string) []abi.Header {
	return []abi.Header{{":method", "GET"}, {":path", "/"}, {":authority", "x"}, {"x-mode", mode}}
}

// A panicking callback answers its stream with the filter's 500 and the VM
// keeps serving other streams.
func TestPanicIsRecoveredAndVMKeepsServing(t *testing.T) {
	m := buildPanicker(t)
	vm, err := m.NewVM(context.Background(), harness.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(context.Background())
	if _, err := vm.StartPlugin(harness.PluginConfig{Configuration: []byte("reject")}); err == nil {
		t.Fatal("a rejected configuration started")
	}
	p, err := vm.StartPlugin(harness.PluginConfig{Configuration: []byte("ok")})
	if err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 3; i++ {
		s := p.NewStream()
		if a := s.SendRequestHeaders(headers("panic"), true); a != abi.ActionPause {
			t.Errorf("panicking callback returned %v, want pause", a)
		}
		lr := s.LocalResponse()
		if lr == nil || lr.Status != 500 || !strings.Contains(string(lr.Body), "internal_error") {
			t.Fatalf("local response after panic: %+v\nlogs: %v", lr, vm.Logs())
		}
		s.Done()
	}
	if vm.Broken() {
		t.Fatal("VM marked broken after a recovered panic")
	}
	found := false
	for _, l := range vm.Logs() {
		if l.Level == abi.LogCritical && strings.Contains(l.Message, "assignment to entry in nil map") {
			found = true
		}
	}
	if !found {
		t.Errorf("panic not logged: %v", vm.Logs())
	}

	// A panic inside an http call response callback is recovered too.
	s := p.NewStream()
	s.SendRequestHeaders(headers("call"), true)
	calls := vm.PendingCalls()
	if len(calls) != 1 {
		t.Fatalf("pending calls %d", len(calls))
	}
	if err := vm.RespondCall(calls[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	if lr := s.LocalResponse(); lr == nil || lr.Status != 500 {
		t.Fatalf("local response after a panic in the call response: %+v", lr)
	}
	s.Done()

	// The VM still serves a normal stream.
	s = p.NewStream()
	if a := s.SendRequestHeaders(headers("plain"), true); a != abi.ActionContinue {
		t.Fatalf("normal stream action %v", a)
	}
	if harness.HeaderValue(s.RequestHeaders(), "x-seen") != "1" {
		t.Fatalf("headers %v", s.RequestHeaders())
	}
	s.Done()
}

// A call answered after its stream ended is dropped, and streams are freed.
func TestCallAfterStreamEndIsDropped(t *testing.T) {
	m := buildPanicker(t)
	vm, err := m.NewVM(context.Background(), harness.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(context.Background())
	p, err := vm.StartPlugin(harness.PluginConfig{Configuration: []byte("ok")})
	if err != nil {
		t.Fatal(err)
	}
	s := p.NewStream()
	s.SendRequestHeaders(headers("call"), true)
	calls := vm.PendingCalls()
	s.Done()
	if err := vm.RespondCall(calls[0].ID, &harness.CallResponse{Headers: []abi.Header{{":status", "200"}}, Body: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	if lr := s.LocalResponse(); lr != nil {
		t.Fatalf("a finished stream got a response: %+v", lr)
	}
	for _, l := range vm.Logs() {
		if l.Level >= abi.LogError {
			t.Errorf("unexpected log: %v", l)
		}
	}
}
