package apierror

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestKinds(t *testing.T) {
	tests := []struct {
		k                  Kind
		status             int
		code, typ, message string
		name               string
		body               string
	}{
		{InvalidContentType, 400, "invalid_content_type", "invalid_request_error", "request body must be JSON (Content-Type: application/json)", "InvalidContentType",
			`{"error":{"message":"request body must be JSON (Content-Type: application/json)","type":"invalid_request_error","code":"invalid_content_type"}}`},
		{EmptyBody, 400, "empty_body", "invalid_request_error", "request body is empty", "EmptyBody",
			`{"error":{"message":"request body is empty","type":"invalid_request_error","code":"empty_body"}}`},
		{InvalidJSON, 400, "invalid_json", "invalid_request_error", "request body is not valid JSON", "InvalidJSON",
			`{"error":{"message":"request body is not valid JSON","type":"invalid_request_error","code":"invalid_json"}}`},
		{NotObject, 400, "body_not_object", "invalid_request_error", "request body must be a JSON object", "NotObject",
			`{"error":{"message":"request body must be a JSON object","type":"invalid_request_error","code":"body_not_object"}}`},
		{BodyTooLarge, 413, "body_too_large", "invalid_request_error", "request body is too large", "BodyTooLarge",
			`{"error":{"message":"request body is too large","type":"invalid_request_error","code":"body_too_large"}}`},
		{LLMUnreachable, 502, "llm_unreachable", "api_error", "the LLM could not be reached", "LLMUnreachable",
			`{"error":{"message":"the LLM could not be reached","type":"api_error","code":"llm_unreachable"}}`},
		{LLMBadResponse, 502, "llm_bad_response", "api_error", "the LLM returned an unusable response", "LLMBadResponse",
			`{"error":{"message":"the LLM returned an unusable response","type":"api_error","code":"llm_bad_response"}}`},
		{LLMTimeout, 504, "llm_timeout", "api_error", "the LLM did not answer in time", "LLMTimeout",
			`{"error":{"message":"the LLM did not answer in time","type":"api_error","code":"llm_timeout"}}`},
		{Internal, 500, "internal_error", "server_error", "internal error", "Internal",
			`{"error":{"message":"internal error","type":"server_error","code":"internal_error"}}`},
		{Unsupported, 501, "unsupported", "server_error", "not supported", "Unsupported",
			`{"error":{"message":"not supported","type":"server_error","code":"unsupported"}}`},
		// Unknown kinds are internal errors.
		{0, 500, "internal_error", "server_error", "internal error", "Kind(0)",
			`{"error":{"message":"internal error","type":"server_error","code":"internal_error"}}`},
		{200, 500, "internal_error", "server_error", "internal error", "Kind(200)",
			`{"error":{"message":"internal error","type":"server_error","code":"internal_error"}}`},
	}
	for _, tc := range tests {
		if got := tc.k.Status(); got != tc.status {
			t.Errorf("%v.Status() = %d, want %d", tc.k, got, tc.status)
		}
		if got := tc.k.Code(); got != tc.code {
			t.Errorf("%v.Code() = %q, want %q", tc.k, got, tc.code)
		}
		if got := tc.k.Type(); got != tc.typ {
			t.Errorf("%v.Type() = %q, want %q", tc.k, got, tc.typ)
		}
		if got := Message(tc.k); got != tc.message {
			t.Errorf("Message(%v) = %q, want %q", tc.k, got, tc.message)
		}
		if got := tc.k.String(); got != tc.name {
			t.Errorf("String() = %q, want %q", got, tc.name)
		}
		body := Body(tc.k, "")
		if string(body) != tc.body {
			t.Errorf("Body(%v, \"\") =\n%s\nwant\n%s", tc.k, body, tc.body)
		}
		checkBody(t, body, tc.message, tc.typ, tc.code)
	}
}

// checkBody parses body as the OpenAI error shape and checks its fields.
func checkBody(t *testing.T, body []byte, message, typ, code string) {
	t.Helper()
	var got struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body %q does not parse: %v", body, err)
	}
	if got.Error.Message != message || got.Error.Type != typ || got.Error.Code != code {
		t.Errorf("body %s = %+v, want message %q type %q code %q", body, got.Error, message, typ, code)
	}
}

func TestBodyEscapesMessage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`bad "quote" \ slash`, `bad "quote" \ slash`},
		{"line1\nline2\ttab\r\x00\x1b", "line1\nline2\ttab\r\x00\x1b"},
		{"non-utf8 \xff\xfe end", "non-utf8 \ufffd\ufffd end"},
		{"é 😀 </script>", "é 😀 </script>"},
		{"\u2028", "\u2028"},
	} {
		body := Body(LLMBadResponse, tc.in)
		if !json.Valid(body) {
			t.Fatalf("Body(%q) is not valid JSON: %q", tc.in, body)
		}
		checkBody(t, body, tc.want, "api_error", "llm_bad_response")
	}
}

func TestBodyTooLargeMessage(t *testing.T) {
	msg := BodyTooLargeMessage(67108864)
	if msg != "request body exceeds 67108864 bytes" {
		t.Errorf("BodyTooLargeMessage = %q", msg)
	}
	checkBody(t, Body(BodyTooLarge, msg), msg, "invalid_request_error", "body_too_large")
}

func TestAppendBody(t *testing.T) {
	got := AppendBody([]byte("x"), EmptyBody, "")
	if string(got) != `x{"error":{"message":"request body is empty","type":"invalid_request_error","code":"empty_body"}}` {
		t.Errorf("AppendBody = %s", got)
	}
}
