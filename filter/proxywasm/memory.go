package proxywasm

import "unsafe"

// Memory the host writes into comes from proxy_on_memory_allocate. Two kinds:
//
//   - scratch: one reusable buffer for results that the wrapper consumes before
//     it returns (header maps decoded into strings, property values copied).
//     Reusing it keeps a request from allocating once per host call.
//   - owned: a fresh slice handed to the caller (body bytes it may keep).
//
// The VM is single-threaded and a host call allocates at most once, so a flag
// set by the wrapper around the host call tells allocate which kind to give.
var (
	scratch    []byte
	useScratch bool
	lastAlloc  []byte // keeps the latest owned allocation reachable until the caller takes it
)

func allocate(size uint32) *byte {
	n := int(size)
	if n == 0 {
		n = 1
	}
	if useScratch {
		if cap(scratch) < n {
			c := 2 * cap(scratch)
			if c < n {
				c = n
			}
			if c < 4096 {
				c = 4096
			}
			scratch = make([]byte, c)
		}
		return &scratch[:n][0]
	}
	lastAlloc = make([]byte, n)
	return &lastAlloc[0]
}

// hostBytes turns the (pointer, length) pair the host wrote into a slice.
func hostBytes(ptr *byte, n uint32) []byte {
	lastAlloc = nil
	if ptr == nil || n == 0 {
		return nil
	}
	return unsafe.Slice(ptr, int(n))
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

func stringPtr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

// Result slots the host writes a returned (pointer, length) pair or an id
// into. A local passed to a host call by address escapes to the heap: two
// allocations per call. The VM runs one host call at a time, so one set of
// slots serves every call.
var (
	retPtr *byte
	retLen uint32
	retID  uint32
)

// retSlots clears the (pointer, length) slots and returns their addresses.
func retSlots() (ptr, n unsafe.Pointer) {
	retPtr, retLen = nil, 0
	return unsafe.Pointer(&retPtr), unsafe.Pointer(&retLen)
}

// returned takes the (pointer, length) pair the host wrote.
func returned() (*byte, uint32) {
	p, n := retPtr, retLen
	retPtr = nil
	return p, n
}

// beginScratch starts a host call whose result goes to scratch memory: it
// clears the result slots and returns their addresses. scratchResult ends it.
func beginScratch() (ptr, n unsafe.Pointer) {
	useScratch = true
	return retSlots()
}

// scratchResult ends a host call begun with beginScratch, given its status:
// the bytes the host wrote into scratch memory (nil when none), valid until
// the next host call that returns data, or the call's error.
func scratchResult(st uint32) ([]byte, error) {
	useScratch = false
	ptr, n := returned()
	if err := statusErr(st); err != nil {
		return nil, err
	}
	if ptr == nil || n == 0 {
		return nil, nil
	}
	return unsafe.Slice(ptr, int(n)), nil
}
