package harness

import (
	"strings"
	"testing"
	"time"

	"ai-proxy/filter/proxywasm/abi"
)

func hasLog(vm *VM, msg string) bool {
	for _, e := range vm.Logs() {
		if e.Message == msg {
			return true
		}
	}
	return false
}

func TestProfileDifferences(t *testing.T) {
	tests := []struct {
		name    string
		profile Profile
		// statuses reported by the guest
		setBody, lateCall, shared, callCluster, callHostPort string
	}{
		{"envoy", ProfileEnvoy, "0", "0", "0,0,8,0,v1", "0", "0"},
		{"strict-wasi", ProfileStrictWASI, "0", "0", "0,0,8,0,v1", "0", "0"},
		// APISIX: set_buffer_bytes and shared data UNIMPLEMENTED (12), http
		// calls in the response phase BAD_ARGUMENT (2), upstream must be host:port.
		{"apisix", ProfileAPISIX, "12", "2", "12,12,12,12,", "2", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vm := newTestVM(t, Env{Profile: tc.profile})
			p := startPlugin(t, vm, "{}")
			drive := func(mode string, body bool) *Stream {
				s := p.NewStream()
				t.Cleanup(s.Done)
				s.SendRequestHeaders(request(mode), !body)
				if body {
					s.SendRequestBody([]byte("ab"), false)
					s.SendRequestBody([]byte("cd"), true)
				}
				return s
			}
			s := drive("buffer", true)
			wantHeader(t, s.RequestHeaders(), "x-set-body-status", tc.setBody)
			wantHeader(t, s.RequestHeaders(), "x-body-size", "4")

			s = drive("late", false)
			s.SendResponseHeaders([]abi.Header{{":status", "200"}}, true)
			wantHeader(t, s.ResponseHeaders(), "x-late-call-status", tc.lateCall)

			s = drive("shared", false)
			wantHeader(t, s.RequestHeaders(), "x-shared-status", tc.shared)

			s = drive("call", false)
			wantHeader(t, s.RequestHeaders(), "x-call-status", tc.callCluster)
			s = drive("call-hostport", false)
			wantHeader(t, s.RequestHeaders(), "x-call-status", tc.callHostPort)
		})
	}
}

func TestAPISIXBodyDelivery(t *testing.T) {
	_, s := newTestStream(t, Env{Profile: ProfileAPISIX}, "{}")
	s.SendRequestHeaders(request("buffer"), false)
	// APISIX gives the guest the whole body once: earlier chunks pause
	// without a call.
	if a := s.SendRequestBody([]byte("ab"), false); a != abi.ActionPause {
		t.Fatalf("first chunk = %v", a)
	}
	if h := HeaderValue(s.RequestHeaders(), "x-body-size"); h != "" {
		t.Fatalf("guest called before the end of the body (size %s)", h)
	}
	if a := s.SendRequestBody([]byte("cd"), true); a != abi.ActionContinue {
		t.Fatalf("last chunk = %v", a)
	}
	wantHeader(t, s.RequestHeaders(), "x-body-size", "4")
	if got := string(s.TakeRequestBody()); got != "abcd" {
		t.Fatalf("body = %q: APISIX cannot replace bodies", got)
	}
}

func TestAPISIXCallResumesRequest(t *testing.T) {
	vm, s := newTestStream(t, Env{Profile: ProfileAPISIX}, "{}")
	s.SendRequestHeaders(request("call-hostport"), true)
	calls := vm.PendingCalls()
	if len(calls) != 1 || calls[0].Upstream != "api.example.com:443" {
		t.Fatalf("calls = %+v", calls)
	}
	if err := vm.RespondCall(calls[0].ID, &CallResponse{Headers: []abi.Header{{":status", "200"}}, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if !s.Resumed(abi.StreamHTTPRequest) {
		t.Fatal("request not resumed after the call response")
	}
	wantHeader(t, s.RequestHeaders(), "x-call-result", "200:x")
}

func TestTicks(t *testing.T) {
	tests := []struct {
		profile    Profile
		wantLog    string
		wantPeriod time.Duration
		wantTicks  int64
	}{
		{ProfileEnvoy, "tick status 0", 10 * time.Millisecond, 2},
		{ProfileAPISIX, "tick status 12", 0, 0},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			m := NewMetrics()
			vm := newTestVM(t, Env{Profile: tc.profile, Metrics: m})
			p := startPlugin(t, vm, "tick")
			if !hasLog(vm, tc.wantLog) {
				t.Fatalf("log %q missing: %v", tc.wantLog, vm.Logs())
			}
			if got := vm.TickPeriod(p); got != tc.wantPeriod {
				t.Fatalf("TickPeriod = %v, want %v", got, tc.wantPeriod)
			}
			vm.Tick(p)
			vm.Tick(p)
			if v, _ := m.Value("guest.ticks"); v != tc.wantTicks {
				t.Fatalf("ticks = %d, want %d", v, tc.wantTicks)
			}
		})
	}
}

// TestStrictWASI: a guest that sleeps needs poll_oneoff, which strict-wasi
// answers with ENOSYS; the Go runtime then dies, as it does in V8 hosts.
func TestStrictWASI(t *testing.T) {
	tests := []struct {
		profile    Profile
		wantBroken bool
	}{
		{ProfileEnvoy, false},
		{ProfileStrictWASI, true},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			vm, s := newTestStream(t, Env{Profile: tc.profile}, "{}")
			s.SendRequestHeaders(request("sleep"), true)
			if vm.Broken() != tc.wantBroken {
				t.Fatalf("Broken = %v, want %v; logs %v", vm.Broken(), tc.wantBroken, vm.Logs())
			}
			if tc.wantBroken {
				found := false
				for _, e := range vm.Logs() {
					found = found || strings.Contains(e.Message, "poll_oneoff")
				}
				if !found {
					t.Fatalf("no poll_oneoff failure in logs: %v", vm.Logs())
				}
			}
		})
	}
}

func TestValidHostPort(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"api.openai.com:443", true},
		{"127.0.0.1:8080", true},
		{"[::1]:443", true},
		{"llm_upstream:80", true},
		{"api.openai.com", false}, // the port is required
		{"[::1]", false},
		{"llm", false},
		{"", false},
		{"llm_cluster:", false},
		{"https://api.openai.com", false},
		{"api.openai.com:443/v1", false},
		{"outbound|443||api.openai.com", false},
		{"host:99999", false},
		{"host:0", false},
		{"host:+80", false},
		{"a:b:c", false},
		{"[]:443", false},
		{":443", false},
	}
	for _, tc := range tests {
		if got := validHostPort(tc.in); got != tc.want {
			t.Errorf("validHostPort(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestAPISIXBodyNeedsProperty: without a non-empty wasm_process_req_body
// (the guest sets it; the test empties it), APISIX never calls the body callback.
func TestAPISIXBodyNeedsProperty(t *testing.T) {
	vm, s := newTestStream(t, Env{Profile: ProfileAPISIX}, "{}")
	s.SendRequestHeaders(request("buffer"), false)
	vm.mu.Lock()
	s.props.set("wasm_process_req_body", nil)
	vm.mu.Unlock()
	if a := s.SendRequestBody([]byte("ab"), true); a != abi.ActionContinue {
		t.Fatalf("action = %v, want Continue without a guest call", a)
	}
	if h := HeaderValue(s.RequestHeaders(), "x-body-size"); h != "" {
		t.Fatalf("body callback ran (x-body-size %s)", h)
	}
}
