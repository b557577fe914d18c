package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ai-proxy/e2e/mockllm"
)

// mock is one mock LLM (ai-proxy/e2e/mockllm) served on 127.0.0.1 by this
// process.
type mock struct {
	*mockllm.Server
	port     int
	srv      *http.Server
	behavior *mockllm.Behavior
}

// startMock serves a new mock LLM on a free 127.0.0.1 port; b, when not the
// zero Behavior, is its answer to every request.
func startMock(b *mockllm.Behavior) (*mock, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &mock{Server: mockllm.New(), port: ln.Addr().(*net.TCPAddr).Port, behavior: b}
	if b != nil {
		m.Set(*b)
	}
	m.srv = &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go m.srv.Serve(ln)
	return m, nil
}

// forget drops the requests the mock recorded (it records every one, with
// its answer). Call it when no request is in flight.
func (m *mock) forget() {
	m.Server.Reset() // also forgets the behavior: set it again
	if m.behavior != nil {
		m.Set(*m.behavior)
	}
}

func (m *mock) close() { m.srv.Close() }

// sseChunk is one OpenAI stream chunk carrying content.
func sseChunk(content string) []byte {
	return []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1734252460,"model":"gpt-4","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n")
}

// sseTail is the end of a stream: the finish chunk, a usage chunk and [DONE].
func sseTail(completion int) [][]byte {
	return [][]byte{
		[]byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1734252460,"model":"gpt-4","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"),
		[]byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1734252460,"model":"gpt-4","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":` + strconv.Itoa(completion) + `,"total_tokens":` + strconv.Itoa(3+completion) + `}}` + "\n\n"),
		[]byte("data: [DONE]\n\n"),
	}
}

// bigStream is an SSE answer of at least size bytes in content chunks of
// 16 KiB, then the tail.
func bigStream(size int) [][]byte {
	word := strings.Repeat("x", 16<<10)
	var chunks [][]byte
	total := 0
	for total < size {
		c := sseChunk(word)
		chunks = append(chunks, c)
		total += len(c)
	}
	return append(chunks, sseTail(len(chunks))...)
}

// streamSize is the number of bytes of chunks.
func streamSize(chunks [][]byte) int64 {
	var n int64
	for _, c := range chunks {
		n += int64(len(c))
	}
	return n
}
