package harness

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// errnoNOSYS is WASI's ENOSYS, what V8-based hosts answer for WASI calls they
// do not provide.
const errnoNOSYS = 52

// strictENOSYS lists the WASI functions ProfileStrictWASI answers with ENOSYS.
// The choice follows proxy-wasm-cpp-host as shipped with Envoy up to 1.36
// (before proxy-wasm-cpp-host#533): it provided args, environ, clocks,
// random_get, fd_write/fd_read/fd_seek/fd_close/fd_fdstat_get, fd_prestat_*
// and proc_exit; PR #427 (Envoy 1.33) added sched_yield, poll_oneoff and
// fd_fdstat_set_flags only as stubs, with poll_oneoff and fd_fdstat_set_flags
// answering ENOSYS (the cause of golang/go#78513). Here sched_yield answers
// ENOSYS too, which is what hosts before 1.33 effectively did, so a guest
// that depends on any of them is caught. Filesystem, socket and signal calls
// answer ENOSYS as they do there.
var strictENOSYS = []string{
	"poll_oneoff",
	"sched_yield",
	"fd_fdstat_set_flags",
	"fd_fdstat_set_rights",
	"fd_advise",
	"fd_allocate",
	"fd_datasync",
	"fd_sync",
	"fd_filestat_get",
	"fd_filestat_set_size",
	"fd_filestat_set_times",
	"fd_pread",
	"fd_pwrite",
	"fd_readdir",
	"fd_renumber",
	"fd_tell",
	"path_create_directory",
	"path_filestat_get",
	"path_filestat_set_times",
	"path_link",
	"path_open",
	"path_readlink",
	"path_remove_directory",
	"path_rename",
	"path_symlink",
	"path_unlink_file",
	"proc_raise",
	"sock_accept",
	"sock_recv",
	"sock_send",
	"sock_shutdown",
}

// instantiateStrictWASI builds an anonymous WASI host module: wazero's
// implementation with the functions of strictENOSYS replaced by stubs that
// answer ENOSYS. The stubs copy their signatures from wazero's own WASI
// definitions, so they always match what guests import.
func instantiateStrictWASI(ctx context.Context, rt wazero.Runtime) (api.Module, error) {
	full, err := wasi_snapshot_preview1.NewBuilder(rt).Compile(ctx)
	if err != nil {
		return nil, err
	}
	defs := full.ExportedFunctions()
	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	for _, name := range strictENOSYS {
		def, ok := defs[name]
		if !ok {
			return nil, fmt.Errorf("wasi function %s not found", name)
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
				stack[0] = errnoNOSYS
			}), def.ParamTypes(), def.ResultTypes()).
			WithName(name).
			Export(name)
	}
	compiled, err := b.Compile(ctx)
	if err != nil {
		return nil, err
	}
	return rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName(""))
}
