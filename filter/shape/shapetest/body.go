// Package shapetest builds request bodies for tests and benchmarks.
package shapetest

import (
	"bytes"
	"strconv"
)

// ChatBody builds a chat request of about n bytes shaped like real traffic: a
// system prompt and alternating user/assistant turns whose content is prose
// with a line break (the two-byte JSON escape \n) every 80 or so bytes and the
// odd quoted word and non-ASCII letter.
func ChatBody(n int) []byte {
	const line = `The gateway forwards each request to the provider and records the usage it reports.\n`
	const quoted = `She said \"use the cache\" before the café closed.\n`
	var b bytes.Buffer
	b.Grow(n + 1024)
	b.WriteString(`{"model":"client-model","stream":false,"messages":[{"role":"system","content":"You are a helpful assistant."}`)
	for i := 0; b.Len() < n-600; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		b.WriteString(`,{"role":"` + role + `","content":"Turn ` + strconv.Itoa(i) + `: `)
		for j := 0; j < 5; j++ {
			b.WriteString(line)
		}
		b.WriteString(quoted + `"}`)
	}
	b.WriteString(`],"temperature":0.2}`)
	return b.Bytes()
}
