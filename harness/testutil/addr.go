package testutil

import (
	"net"
	"testing"
)

// FreeAddr returns a host:port on 127.0.0.1 that was free a moment ago:
// nobody listens on it, so it refuses connections until someone binds it.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return freeTCPAddr(tb).String()
}

// FreePort is the port of a FreeAddr.
func FreePort(tb testing.TB) int {
	tb.Helper()
	return freeTCPAddr(tb).Port
}

func freeTCPAddr(tb testing.TB) *net.TCPAddr {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr)
}
