package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"ai-proxy/harness/bootstrap"
	"ai-proxy/harness/gateway"
	"ai-proxy/harness/testutil"
)

// bootstrapYAML is the benchmark's bootstrap: every listener and the admin
// on 127.0.0.1 port 0 (the gateway picks free ports and prints them), routes
// without a timeout so that slow streams are not cut.
func bootstrapYAML(wasm string, listeners []bootstrap.ListenerSpec, clusters []bootstrap.ClusterSpec) []byte {
	for i := range listeners {
		listeners[i].Timeout = "0s"
	}
	return bootstrap.Spec{Listeners: listeners, Clusters: clusters, WasmFile: wasm}.YAML()
}

// gw is the gateway under test: the build/gateway process, or (-inprocess,
// for profiling) a harness/gateway.Gateway in this process.
type gw struct {
	addrs map[string]string // listener name → "host:port"
	admin string            // admin "host:port"
	pid   int               // the process whose RSS is measured

	proc *testutil.Proc
	lib  *gateway.Gateway
}

// errGateway: the gateway did not start or stopped.
var errGateway = errors.New("gateway")

// startProcess runs bin -config FILE -workers N -access-log off, waits for
// its ready line and reads the addresses of the named listeners and of the
// admin from its stderr.
func startProcess(bin, config string, workers int, listeners []string) (*gw, error) {
	cmd := exec.Command(bin, "-config", config, "-workers", strconv.Itoa(workers), "-access-log", "off", "-log-level", "warn")
	cmd.Stdout = io.Discard
	p, err := testutil.StartProc(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errGateway, err)
	}
	if err := p.WaitReady(2 * time.Minute); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%w: %v: %s", errGateway, err, p.Output())
	}
	g := &gw{addrs: map[string]string{}, pid: cmd.Process.Pid, proc: p}
	for _, name := range listeners {
		if addr, ok := p.Addr("listener " + name); ok {
			g.addrs[name] = addr
		}
	}
	g.admin, _ = p.Addr("admin")
	return g, nil
}

// startInProcess runs the gateway in this process (harness/gateway).
func startInProcess(ctx context.Context, config []byte, workers int) (*gw, error) {
	cfg, err := bootstrap.Parse(config)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lib, err := gateway.New(cfg, gateway.Options{Workers: workers, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := lib.Start(ctx); err != nil {
		lib.Shutdown(context.Background())
		return nil, err
	}
	g := &gw{addrs: map[string]string{}, pid: os.Getpid(), lib: lib}
	for _, name := range lib.Listeners() {
		g.addrs[name] = lib.ListenerAddr(name).String()
	}
	if a := lib.AdminAddr(); a != nil {
		g.admin = a.String()
	}
	return g, nil
}

// url is the base URL of a listener.
func (g *gw) url(listener string) string { return "http://" + g.addrs[listener] }

// alive reports an error when the gateway process has exited.
func (g *gw) alive() error {
	if g.proc == nil || g.proc.Running() {
		return nil
	}
	return fmt.Errorf("%w exited: %s", errGateway, g.proc.Output())
}

// collect asks the gateway to collect garbage and return freed memory to the
// OS (GET /debug/memory?gc=1), so that RSS shows what is held rather than
// garbage not yet collected; in process, it does it itself.
func (g *gw) collect() {
	if g.lib != nil {
		debug.FreeOSMemory()
		return
	}
	if g.admin == "" {
		return
	}
	resp, err := http.Get("http://" + g.admin + "/debug/memory?gc=1")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// rss is a field of /proc/PID/status in bytes: "VmRSS" or "VmHWM" (peak).
func (g *gw) rss(field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(g.pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status %q: %v", g.pid, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, g.pid)
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpu is the CPU time (user + system) the gateway process has used so far.
func (g *gw) cpu() (time.Duration, error) { return procCPU(g.pid) }

// procCPU is the CPU time (user + system) process pid has used so far, from
// /proc/PID/stat, in clock ticks of 10 ms.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces), from field 3.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// settledRSS collects garbage and reads VmRSS.
func (g *gw) settledRSS() (int64, error) {
	g.collect()
	time.Sleep(50 * time.Millisecond)
	return g.rss("VmRSS")
}

// resetPeak resets the process's peak RSS (VmHWM) to its current RSS.
func (g *gw) resetPeak() error {
	return os.WriteFile("/proc/"+strconv.Itoa(g.pid)+"/clear_refs", []byte("5"), 0)
}

// stop stops the gateway: SIGTERM, then SIGKILL after 15 s.
func (g *gw) stop() {
	if g.lib != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		g.lib.Shutdown(ctx)
		return
	}
	if g.proc != nil {
		_ = g.proc.Stop(15 * time.Second)
	}
}

// writeConfig writes the bootstrap to dir/bench-gateway.yaml.
func writeConfig(dir string, data []byte) (string, error) {
	path := filepath.Join(dir, "bench-gateway.yaml")
	return path, os.WriteFile(path, data, 0o644)
}
