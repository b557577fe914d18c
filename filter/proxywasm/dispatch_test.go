package proxywasm

import (
	"strconv"
	"testing"
)

// The stream table finds every live stream, whether it holds its id's slot
// or sits in the overflow map because another stream holds it, and forgets
// exactly the stream removed.
func TestStreamTable(t *testing.T) {
	var tab streamTable
	size := uint32(len(tab.slots))
	ids := []uint32{1, 2, 1 + size, 1 + 2*size, size, 2 * size}
	all := map[uint32]*stream{}
	for _, id := range ids {
		s := &stream{id: id}
		tab.put(s)
		all[id] = s
	}
	check := func(when string) {
		t.Helper()
		for id, s := range all {
			if got := tab.get(id); got != s {
				t.Fatalf("%s: get(%d) = %p, want %p", when, id, got, s)
			}
		}
		for _, id := range []uint32{3, 3 + size, 4 * size} {
			if got := tab.get(id); got != nil {
				t.Fatalf("%s: get(%d) of an absent id = %+v", when, id, got)
			}
		}
	}
	check("after put")
	// Remove the slot holder of a collision chain, then an overflow entry.
	for _, id := range []uint32{1, 1 + 2*size, size} {
		tab.remove(all[id])
		delete(all, id)
		if got := tab.get(id); got != nil {
			t.Fatalf("get(%d) after remove = %+v", id, got)
		}
		check("after removing " + strconv.Itoa(int(id)))
	}
	// A new stream takes the freed slot; the overflow one stays found.
	s := &stream{id: 1 + 3*size}
	tab.put(s)
	all[s.id] = s
	check("after reuse")
}
