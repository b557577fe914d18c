// Package apierror is the one place where a failure becomes what the client
// sees: an HTTP status and an OpenAI-style JSON body
//
//	{"error":{"message":"...","type":"...","code":"..."}}
//
// with a stable detail code per Kind (for clients and logs). Messages are
// client-safe: callers pass Message(k) or their own text, never internal error
// strings.
package apierror

import (
	"strconv"

	"ai-proxy/filter/rawjson"
)

// Kind is a class of failure the client is told about.
type Kind uint8

// The kinds. The zero Kind and unknown values behave as Internal.
const (
	InvalidContentType Kind = iota + 1 // 400: the body is not declared as JSON
	EmptyBody                          // 400
	InvalidJSON                        // 400
	NotObject                          // 400: valid JSON, not an object
	BodyTooLarge                       // 413
	LLMUnreachable                     // 502: the call to the LLM failed
	LLMBadResponse                     // 502: the LLM's answer cannot be used
	LLMTimeout                         // 504
	Internal                           // 500
	Unsupported                        // 501
)

type kindInfo struct {
	status        int
	code, typ     string
	message, name string
}

var kinds = [...]kindInfo{
	InvalidContentType: {400, "invalid_content_type", "invalid_request_error", "request body must be JSON (Content-Type: application/json)", "InvalidContentType"},
	EmptyBody:          {400, "empty_body", "invalid_request_error", "request body is empty", "EmptyBody"},
	InvalidJSON:        {400, "invalid_json", "invalid_request_error", "request body is not valid JSON", "InvalidJSON"},
	NotObject:          {400, "body_not_object", "invalid_request_error", "request body must be a JSON object", "NotObject"},
	BodyTooLarge:       {413, "body_too_large", "invalid_request_error", "request body is too large", "BodyTooLarge"},
	LLMUnreachable:     {502, "llm_unreachable", "api_error", "the LLM could not be reached", "LLMUnreachable"},
	LLMBadResponse:     {502, "llm_bad_response", "api_error", "the LLM returned an unusable response", "LLMBadResponse"},
	LLMTimeout:         {504, "llm_timeout", "api_error", "the LLM did not answer in time", "LLMTimeout"},
	Internal:           {500, "internal_error", "server_error", "internal error", "Internal"},
	Unsupported:        {501, "unsupported", "server_error", "not supported", "Unsupported"},
}

func (k Kind) info() *kindInfo {
	if k == 0 || int(k) >= len(kinds) {
		return &kinds[Internal]
	}
	return &kinds[k]
}

// Status is the HTTP status: 400 for the request errors, 413 BodyTooLarge, 502
// LLMUnreachable and LLMBadResponse, 504 LLMTimeout, 500 Internal, 501
// Unsupported.
func (k Kind) Status() int { return k.info().status }

// Code is the stable detail code ("invalid_json", "llm_timeout", ...).
func (k Kind) Code() string { return k.info().code }

// Type is the OpenAI error type: "invalid_request_error" for 4xx, "api_error"
// for 502/504, "server_error" for 500/501.
func (k Kind) Type() string { return k.info().typ }

// String names the kind for logs ("LLMTimeout").
func (k Kind) String() string {
	if k == 0 || int(k) >= len(kinds) {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kinds[k].name
}

// Message is the default client-safe message for k.
func Message(k Kind) string { return k.info().message }

// BodyTooLargeMessage is the message for BodyTooLarge with the limit:
// "request body exceeds N bytes".
func BodyTooLargeMessage(limit int) string {
	return "request body exceeds " + strconv.Itoa(limit) + " bytes"
}

// Body returns {"error":{"message":MESSAGE,"type":k.Type(),"code":k.Code()}}.
// message is JSON-escaped (quotes, backslashes, control characters; invalid
// UTF-8 becomes U+FFFD); "" uses Message(k).
func Body(k Kind, message string) []byte {
	return AppendBody(nil, k, message)
}

// AppendBody appends Body(k, message) to dst.
func AppendBody(dst []byte, k Kind, message string) []byte {
	if message == "" {
		message = Message(k)
	}
	in := k.info()
	dst = append(dst, `{"error":{"message":`...)
	dst = rawjson.AppendString(dst, message)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, in.typ...)
	dst = append(dst, `","code":"`...)
	dst = append(dst, in.code...)
	return append(dst, `"}}`...)
}

// ContentType is the Content-Type of Body.
const ContentType = "application/json"
