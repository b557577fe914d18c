// Package testutil holds what the repository's tests share: the repository
// root and the artifacts of make build, the go command and the builds of test
// modules for wasip1, addresses on 127.0.0.1, and a gateway process watched for
// its address and ready lines.
//
// Tests import it, and so does the benchmark runner (harness/cmd/aibench),
// for the gateway process and the bare benchmark modules. Its helpers that take a testing.TB fail the test
// (they never skip it); the others return errors for TestMain and sync.Once.
package testutil
