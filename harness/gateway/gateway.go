// Package gateway is an HTTP proxy that runs proxy-wasm filter chains from an
// Envoy bootstrap (harness/bootstrap) the way Envoy does, on the harness's
// wazero host: one VM per worker and distinct VM, streams pinned to the worker
// of their connection, Envoy's buffering and pause rules, real HTTP/1.1 and TLS
// upstreams, and proxy_http_call served from the bootstrap's clusters.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ai-proxy/harness"
	"ai-proxy/harness/bootstrap"
)

// DefaultStreamIdleTimeout is Envoy's stream_idle_timeout default: how long a
// stream may wait on a paused filter before it is answered 408.
const DefaultStreamIdleTimeout = 5 * time.Minute

// Sentinel errors of New and Start.
var (
	// ErrPluginRejected: a filter's proxy_on_configure returned false. The
	// error text ends "plugin configuration rejected: <the guest's reason>".
	ErrPluginRejected = harness.ErrConfigRejected
	// ErrModule: a wasm file could not be read or compiled.
	ErrModule = errors.New("wasm module")
	// ErrListen: a listener or the admin address could not be bound.
	ErrListen = errors.New("listen")
)

// Options tune a Gateway. The zero value is Envoy's behaviour.
type Options struct {
	// Workers is the number of workers (VM sets); 0 means runtime.GOMAXPROCS(0),
	// as Envoy's --concurrency defaults to the number of cores.
	Workers int
	// Profile is the host profile ("" means harness.ProfileEnvoy).
	Profile harness.Profile
	// Logger receives the filters' proxy_log lines and the gateway's own
	// messages; nil means a text logger on stderr.
	Logger *slog.Logger
	// StreamIdleTimeout bounds the wait on a paused filter; 0 means
	// DefaultStreamIdleTimeout.
	StreamIdleTimeout time.Duration
	// AccessLog, when set, receives one JSON line per downstream request
	// (AccessLogEntry and the filters' llm_* properties), written when the
	// request ends, after the filters' proxy_on_log. nil: no access log.
	// Lines are written whole, one Write each, from many goroutines (one at a
	// time).
	AccessLog io.Writer
}

// Gateway is a running (or ready to start) proxy. Create it with New, then
// Start it; Shutdown stops it and releases the VMs.
type Gateway struct {
	cfg     *bootstrap.Config
	opts    Options
	log     *slog.Logger
	metrics *harness.Metrics

	modules   map[string]*harness.Module // by bootstrap.WasmFilter.CodeKey
	workers   []*worker
	listeners []*listener
	clusters  map[string]*upstream
	direct    *directCaller // apisix profile: http calls to "host:port"

	ctx    context.Context // lives until Shutdown; bounds http calls
	cancel context.CancelFunc
	cut    context.Context // done when Shutdown gives up on in-flight requests
	cutNow context.CancelFunc

	next    atomic.Uint64 // round robin over workers, per connection
	ready   atomic.Bool
	servers []*http.Server
	admin   *http.Server
	adminLn net.Listener
	mu      sync.Mutex
	active  sync.WaitGroup // requests being served
	access  *accessLog     // nil: no access log

	// Gauges of /debug/streams.
	activeRequests   atomic.Int64 // downstream requests being served
	upstreamRequests atomic.Int64 // router requests sent and whose response body is not closed yet
	upstreamConns    atomic.Int64 // open TCP connections to clusters (in use or idle)
	httpCalls        atomic.Int64 // proxy_http_calls in flight
	vmReloads        atomic.Int64 // VMs replaced after a trap
}

// listener is one bootstrap listener at run time.
type listener struct {
	index int
	cfg   *bootstrap.Listener
	g     *Gateway
	ln    net.Listener
	// codes counts the finished requests by code class (see countRequest).
	codes [10]atomic.Uint64
}

// worker holds one VM per distinct VM key and the plugins of every listener's
// filters on them.
type worker struct {
	id int
	// mu guards vms and plugins, which pluginsFor replaces when a VM broke.
	mu      sync.Mutex
	vms     map[string]*harness.VM
	plugins [][]*harness.Plugin // [listener index][filter index]
}

// pluginsFor returns the worker's plugins of listener li. A VM that trapped
// (a Go runtime fatal error in the module, an out-of-bounds access) answers
// every stream with a 500 for good, so the worker's VMs are first replaced by
// fresh ones with the same plugins, as Envoy's failure_policy FAIL_RELOAD
// does. The old VMs serve their last streams and are closed when those end.
func (g *Gateway) pluginsFor(wk *worker, li int) []*harness.Plugin {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	broken := false
	for _, vm := range wk.vms {
		if vm.Broken() {
			broken = true
			break
		}
	}
	if broken {
		fresh, err := g.newWorker(wk.id)
		if err != nil {
			g.log.Error("a VM trapped and could not be replaced", "worker", wk.id, "err", err)
		} else {
			old := wk.vms
			wk.vms, wk.plugins = fresh.vms, fresh.plugins
			g.vmReloads.Add(1)
			g.log.Error("a VM trapped; replaced it with a fresh one", "worker", wk.id)
			go g.closeWhenIdle(old)
		}
	}
	return wk.plugins[li]
}

// closeWhenIdle closes replaced VMs once their last streams are done (or
// the gateway stops).
func (g *Gateway) closeWhenIdle(vms map[string]*harness.VM) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		idle := true
		for _, vm := range vms {
			if vm.LiveStreams() > 0 {
				idle = false
			}
		}
		if idle {
			break
		}
		select {
		case <-t.C:
		case <-g.ctx.Done():
		}
		if g.ctx.Err() != nil {
			break
		}
	}
	for _, vm := range vms {
		vm.Close(context.Background())
	}
}

// New compiles every distinct wasm module once (a local file, or remote code
// fetched once through its cluster and checked against its sha256, see
// fetchRemote), creates the workers with their VMs and starts each filter's
// plugin on every worker. A plugin that rejects
// its configuration fails New with "listener L: filter F: plugin
// configuration rejected: reason".
func New(cfg *bootstrap.Config, opts Options) (*Gateway, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Profile == "" {
		opts.Profile = harness.ProfileEnvoy
	}
	switch opts.Profile {
	case harness.ProfileEnvoy, harness.ProfileAPISIX, harness.ProfileStrictWASI:
	default:
		return nil, fmt.Errorf("unknown profile %q (envoy, apisix or strict-wasi)", opts.Profile)
	}
	if opts.StreamIdleTimeout <= 0 {
		opts.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cut, cutNow := context.WithCancel(context.Background())
	g := &Gateway{
		cut:      cut,
		cutNow:   cutNow,
		cfg:      cfg,
		opts:     opts,
		log:      opts.Logger,
		metrics:  harness.NewMetrics(),
		modules:  map[string]*harness.Module{},
		clusters: map[string]*upstream{},
		ctx:      ctx,
		cancel:   cancel,
	}
	if opts.AccessLog != nil {
		g.access = &accessLog{w: opts.AccessLog}
	}
	ok := false
	defer func() {
		if !ok {
			g.close()
		}
	}()
	for _, c := range cfg.Clusters {
		u, err := newUpstream(c)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		u.conns = &g.upstreamConns
		g.clusters[c.Name] = u
	}
	g.direct = newDirectCaller()
	for i, l := range cfg.Listeners {
		g.listeners = append(g.listeners, &listener{index: i, cfg: l, g: g})
		for _, f := range l.Filters {
			if _, done := g.modules[f.CodeKey()]; done {
				continue
			}
			var wasm []byte
			var err error
			if f.RemoteCode != nil {
				wasm, err = g.fetchRemote(ctx, f.RemoteCode)
				if err != nil {
					return nil, fmt.Errorf("listener %s: filter %s: %w %s: %w", l.Name, filterName(f), ErrModule, f.RemoteCode.URI, err)
				}
			} else if wasm, err = os.ReadFile(f.CodePath); err != nil {
				return nil, fmt.Errorf("listener %s: filter %s: %w: %v", l.Name, filterName(f), ErrModule, err)
			}
			m, err := harness.Compile(ctx, wasm)
			if err != nil {
				return nil, fmt.Errorf("listener %s: filter %s: %w %s: %v", l.Name, filterName(f), ErrModule, f.CodeName(), err)
			}
			g.modules[f.CodeKey()] = m
		}
	}
	for w := 0; w < opts.Workers; w++ {
		wk, err := g.newWorker(w)
		if err != nil {
			return nil, err
		}
		g.workers = append(g.workers, wk)
	}
	ok = true
	return g, nil
}

func filterName(f *bootstrap.WasmFilter) string {
	if f.PluginName != "" {
		return f.PluginName
	}
	return f.Name
}

// vmListeners names the listeners whose filters run on the VM key, for logs.
func (g *Gateway) vmListeners(key string) []string {
	var names []string
	for _, l := range g.cfg.Listeners {
		for _, f := range l.Filters {
			if f.VMKey() == key {
				names = append(names, l.Name)
				break
			}
		}
	}
	return names
}

func (g *Gateway) newWorker(id int) (*worker, error) {
	wk := &worker{id: id, vms: map[string]*harness.VM{}}
	for _, l := range g.listeners {
		plugins := make([]*harness.Plugin, len(l.cfg.Filters))
		for fi, f := range l.cfg.Filters {
			key := f.VMKey()
			vm := wk.vms[key]
			if vm == nil {
				var err error
				vm, err = g.newVM(id, f, key)
				if err != nil {
					return nil, fmt.Errorf("listener %s: filter %s: %w", l.cfg.Name, filterName(f), err)
				}
				wk.vms[key] = vm
			}
			p, err := vm.StartPlugin(harness.PluginConfig{
				Name:          f.PluginName,
				RootID:        f.RootID,
				VMConfig:      f.VMConfiguration,
				Configuration: f.Configuration,
			})
			if err != nil {
				if errors.Is(err, harness.ErrConfigRejected) || errors.Is(err, harness.ErrVMStartRejected) {
					return nil, fmt.Errorf("listener %s: filter %s: %w", l.cfg.Name, filterName(f), err)
				}
				return nil, fmt.Errorf("listener %s: filter %s: plugin failed to start: %w", l.cfg.Name, filterName(f), err)
			}
			plugins[fi] = p
		}
		wk.plugins = append(wk.plugins, plugins)
	}
	return wk, nil
}

// newVM instantiates the filter's module with an Env wired to the gateway.
func (g *Gateway) newVM(worker int, f *bootstrap.WasmFilter, key string) (*harness.VM, error) {
	logger := g.log.With("vm_id", f.VMID, "worker", worker)
	if ls := g.vmListeners(key); len(ls) == 1 {
		logger = logger.With("listener", ls[0])
	} else {
		logger = logger.With("listeners", strings.Join(ls, ","))
	}
	var vmReady = make(chan struct{})
	var vmRef atomic.Pointer[harness.VM]
	env := harness.Env{
		Profile: g.opts.Profile,
		Metrics: g.metrics,
		Log: func(e harness.LogEntry) {
			logger.Log(context.Background(), slogLevel(e.Level), e.Message)
		},
		HTTPCall: func(call harness.HTTPCall) bool {
			do := g.callFunc(call)
			if do == nil {
				return false
			}
			g.httpCalls.Add(1)
			go func() {
				defer g.httpCalls.Add(-1)
				resp := do(g.ctx)
				select {
				case <-vmReady:
				case <-g.ctx.Done():
					return
				}
				if err := vmRef.Load().RespondCall(call.ID, resp); err != nil {
					logger.Debug("http call response not delivered", "callout_id", call.ID, "err", err)
				}
			}()
			return true
		},
	}
	vm, err := g.modules[f.CodeKey()].NewVM(g.ctx, env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModule, err)
	}
	vmRef.Store(vm)
	close(vmReady)
	return vm, nil
}

// Start binds every listener and the admin address and serves them. It
// returns when every listener accepts connections (or with the first bind
// error, having released what it bound).
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var lc net.ListenConfig
	var bound []net.Listener
	fail := func(err error) error {
		for _, ln := range bound {
			ln.Close()
		}
		for _, l := range g.listeners {
			l.ln = nil
		}
		return err
	}
	for _, l := range g.listeners {
		ln, err := lc.Listen(ctx, "tcp", l.cfg.Address)
		if err != nil {
			return fail(fmt.Errorf("listener %s: %w %s: %v", l.cfg.Name, ErrListen, l.cfg.Address, err))
		}
		l.ln = ln
		bound = append(bound, ln)
	}
	if a := g.cfg.Admin; a != nil {
		ln, err := lc.Listen(ctx, "tcp", a.Address)
		if err != nil {
			return fail(fmt.Errorf("admin: %w %s: %v", ErrListen, a.Address, err))
		}
		g.adminLn = ln
	}
	for _, l := range g.listeners {
		srv := &http.Server{
			Handler:           l,
			ReadHeaderTimeout: time.Minute,
			ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, workerKey{}, g.pickWorker())
			},
			ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		g.servers = append(g.servers, srv)
		go srv.Serve(l.ln)
	}
	if g.adminLn != nil {
		g.admin = &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: time.Minute}
		go g.admin.Serve(g.adminLn)
	}
	g.ready.Store(true)
	return nil
}

type workerKey struct{}

func (g *Gateway) pickWorker() *worker {
	n := g.next.Add(1) - 1
	return g.workers[n%uint64(len(g.workers))]
}

// ListenerAddr is the bound address of the named listener, nil before Start
// or for an unknown name.
func (g *Gateway) ListenerAddr(name string) net.Addr {
	for _, l := range g.listeners {
		if l.cfg.Name == name && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// Listeners returns the listener names in bootstrap order.
func (g *Gateway) Listeners() []string {
	names := make([]string, len(g.listeners))
	for i, l := range g.listeners {
		names[i] = l.cfg.Name
	}
	return names
}

// AdminAddr is the bound admin address, nil without admin or before Start.
func (g *Gateway) AdminAddr() net.Addr {
	if g.adminLn == nil {
		return nil
	}
	return g.adminLn.Addr()
}

// Metrics is the metric store the VMs share.
func (g *Gateway) Metrics() *harness.Metrics { return g.metrics }

// Shutdown stops accepting and waits for in-flight requests until ctx is
// done; then it closes the remaining connections (their streams end as
// client resets: on_log, on_done and on_delete still run) and returns
// ctx's error. Either way it then cancels pending http calls and closes the
// VMs and modules; the Gateway cannot be restarted.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ready.Store(false)
	servers := append([]*http.Server{}, g.servers...)
	if g.admin != nil {
		servers = append(servers, g.admin)
	}
	var wg sync.WaitGroup
	var cut atomic.Bool
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				cut.Store(true)
				g.cutNow() // streams waiting on a filter give up
				s.Close()
			}
		}()
	}
	wg.Wait()
	g.servers, g.admin = nil, nil
	// Handlers of closed connections see their context canceled and end
	// promptly; wait for them before the VMs go away.
	handlers := make(chan struct{})
	go func() { g.active.Wait(); close(handlers) }()
	select {
	case <-handlers:
	case <-time.After(5 * time.Second):
		g.log.Warn("gateway: requests still running at shutdown")
	}
	g.close()
	if cut.Load() {
		return fmt.Errorf("in-flight requests cut: %w", ctx.Err())
	}
	return nil
}

// close releases the VMs, modules and transports.
func (g *Gateway) close() {
	g.cutNow()
	g.cancel()
	for _, wk := range g.workers {
		wk.mu.Lock()
		keys := make([]string, 0, len(wk.vms))
		for k := range wk.vms {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			wk.vms[k].Close(context.Background())
		}
		wk.mu.Unlock()
	}
	g.workers = nil
	for _, m := range g.modules {
		m.Close(context.Background())
	}
	g.modules = map[string]*harness.Module{}
	for _, u := range g.clusters {
		u.transport.CloseIdleConnections()
	}
	if g.direct != nil {
		g.direct.transport.CloseIdleConnections()
	}
}

// oneLine folds line breaks so that an error stays on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
