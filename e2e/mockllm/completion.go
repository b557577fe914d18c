package mockllm

import (
	"encoding/json"
	"strings"
)

// Usage is the token accounting of a completion. The mock counts words
// (strings.Fields): prompt tokens over every message's text, completion
// tokens over the answer.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Completion is one deterministic answer.
type Completion struct {
	ID      string
	Model   string
	Content string
	Usage   Usage
}

// Answer is the mock's reply to a user message: "1+1 equals 2." for the
// seed's "What is 1+1?", otherwise "Mock answer to: <message>".
func Answer(lastUser string) string {
	if strings.TrimSpace(lastUser) == "What is 1+1?" {
		return "1+1 equals 2."
	}
	return "Mock answer to: " + lastUser
}

// Complete computes the completion of messages for model (DefaultModel when
// empty). The ID is left for the caller.
func Complete(messages []Message, model string) Completion {
	if model == "" {
		model = DefaultModel
	}
	last := ""
	prompt := 0
	for _, m := range messages {
		t := m.Text()
		prompt += len(strings.Fields(t))
		if m.Role == "user" {
			last = t
		}
	}
	content := Answer(last)
	done := len(strings.Fields(content))
	return Completion{
		Model:   model,
		Content: content,
		Usage:   Usage{PromptTokens: prompt, CompletionTokens: done, TotalTokens: prompt + done},
	}
}

type jsonMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

type jsonChoice struct {
	Index        int         `json:"index"`
	Message      jsonMessage `json:"message"`
	Logprobs     *string     `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

type jsonCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []jsonChoice `json:"choices"`
	Usage             Usage        `json:"usage"`
	SystemFingerprint *string      `json:"system_fingerprint"`
}

// JSON is the chat.completion object, as OpenAI answers it.
func (c Completion) JSON() []byte {
	out, err := json.Marshal(jsonCompletion{
		ID:      c.ID,
		Object:  "chat.completion",
		Created: Created,
		Model:   c.Model,
		Choices: []jsonChoice{{
			Message:      jsonMessage{Role: "assistant", Content: c.Content},
			FinishReason: "stop",
		}},
		Usage: c.Usage,
	})
	if err != nil {
		panic(err) // plain structs: cannot fail
	}
	return out
}

type jsonDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type jsonChunkChoice struct {
	Index        int       `json:"index"`
	Delta        jsonDelta `json:"delta"`
	Logprobs     *string   `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type jsonChunk struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Created           int64             `json:"created"`
	Model             string            `json:"model"`
	SystemFingerprint *string           `json:"system_fingerprint"`
	Choices           []jsonChunkChoice `json:"choices"`
	Usage             *Usage            `json:"usage,omitempty"`
}

// SSE is the streamed form of the completion: one "data: {chunk}\n\n" event
// for the role, one per word of the content, one with finish_reason "stop",
// then, when includeUsage is set, a chunk with empty choices and the usage,
// and finally "data: [DONE]\n\n".
func (c Completion) SSE(includeUsage bool) [][]byte {
	chunk := func(ch []jsonChunkChoice, u *Usage) []byte {
		b, err := json.Marshal(jsonChunk{
			ID: c.ID, Object: "chat.completion.chunk", Created: Created, Model: c.Model,
			Choices: ch, Usage: u,
		})
		if err != nil {
			panic(err)
		}
		return append(append([]byte("data: "), b...), '\n', '\n')
	}
	str := func(s string) *string { return &s }

	var out [][]byte
	out = append(out, chunk([]jsonChunkChoice{{Delta: jsonDelta{Role: "assistant", Content: str("")}}}, nil))
	for i, w := range strings.Fields(c.Content) {
		if i > 0 {
			w = " " + w
		}
		out = append(out, chunk([]jsonChunkChoice{{Delta: jsonDelta{Content: str(w)}}}, nil))
	}
	out = append(out, chunk([]jsonChunkChoice{{FinishReason: str("stop")}}, nil))
	if includeUsage {
		u := c.Usage
		out = append(out, chunk([]jsonChunkChoice{}, &u))
	}
	return append(out, []byte("data: [DONE]\n\n"))
}
