#!/bin/sh
# Runs the three curl commands of the APISIX ai-proxy documentation against
# the docker-compose setup (e2e/docker-compose.yaml) and checks the answers:
#
#   sh e2e/compose-test.sh               # compose up --build, the curls, compose down
#   sh e2e/compose-test.sh --no-compose  # the curls only, against what already runs
#
# Needs make build first (build/ai-proxy.wasm is mounted into Envoy), curl,
# and, without --no-compose, Docker with the compose plugin. KEEP=1 leaves
# the setup running. The URLs can be changed with OPENAI_URL (default
# http://127.0.0.1:9080), AZURE_URL (:9081), PASSTHROUGH_URL (:9082) and
# ADMIN_URL (:9901). It prints one line per example and ends with
# "N passed, N failed"; the exit status is 0 only when all passed.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
openai="${OPENAI_URL:-http://127.0.0.1:9080}"
azure="${AZURE_URL:-http://127.0.0.1:9081}"
passthrough="${PASSTHROUGH_URL:-http://127.0.0.1:9082}"
admin="${ADMIN_URL:-http://127.0.0.1:9901}"

compose=1
case "${1:-}" in
--no-compose) compose=0 ;;
"") ;;
*)
	echo "usage: sh e2e/compose-test.sh [--no-compose]" >&2
	exit 2
	;;
esac

if [ "$compose" = 1 ]; then
	if [ ! -s "$here/../build/ai-proxy.wasm" ]; then
		echo "compose-test: build/ai-proxy.wasm is missing: run make build first" >&2
		exit 2
	fi
	docker compose -f "$here/docker-compose.yaml" up -d --build || exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"; [ "$compose" = 1 ] && [ "${KEEP:-0}" != 1 ] && docker compose -f "$here/docker-compose.yaml" down' EXIT

# Wait for Envoy: the admin's /ready says LIVE once the listeners are up.
i=0
until curl -fsS "$admin/ready" 2>/dev/null | grep -q LIVE; do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		echo "compose-test: Envoy is not ready at $admin/ready after 60s" >&2
		[ "$compose" = 1 ] && docker compose -f "$here/docker-compose.yaml" logs envoy >&2
		exit 1
	fi
	sleep 1
done

passed=0
failed=0

# check NAME FILE STATUS WANT...: the answer of example NAME (body in FILE,
# HTTP status STATUS) must be 200 and contain every WANT, as fixed strings;
# a WANT starting with ! must not be in it.
check() {
	name="$1" file="$2" status="$3"
	shift 3
	ok=1
	if [ "$status" != 200 ]; then
		echo "FAIL: $name: HTTP status $status, want 200" >&2
		ok=0
	fi
	for want in "$@"; do
		case "$want" in
		!*)
			if grep -qF -- "${want#!}" "$file"; then
				echo "FAIL: $name: the answer contains ${want#!}" >&2
				ok=0
			fi
			;;
		*)
			if ! grep -qF -- "$want" "$file"; then
				echo "FAIL: $name: the answer has no $want" >&2
				ok=0
			fi
			;;
		esac
	done
	if [ "$ok" = 1 ]; then
		echo "PASS: $name"
		passed=$((passed + 1))
	else
		echo "--- answer of $name:" >&2
		cat "$file" >&2
		echo >&2
		failed=$((failed + 1))
	fi
}

# The body of examples 1 and 3: the documentation's math question.
math='{
"messages": [
{ "role": "system", "content": "You are a mathematician" },
{ "role": "user", "content": "What is 1+1?" }
]
}'

# 1. Proxy to OpenAI: the client gets the LLM's completion.
status=$(curl -sS -o "$tmp/1" -w '%{http_code}' "$openai/anything" -X POST \
	-H "Content-Type: application/json" \
	-H "Host: api.openai.com:443" \
	-d "$math")
check "proxy to OpenAI" "$tmp/1" "$status" '"object":"chat.completion"' '"model":"gpt-4"' '"content":"1+1 equals 2."'

# 2. Proxy to Azure OpenAI: the completion of the Azure deployment.
status=$(curl -sS -o "$tmp/2" -w '%{http_code}' "$azure/anything" -X POST \
	-H "Content-Type: application/json" \
	-d '{
"messages": [
{
"role": "system",
"content": "You are an AI assistant that helps people find information."
},
{
"role": "user",
"content": "Write me a 50-word introduction for Apache APISIX."
}
],
"max_tokens": 800,
"temperature": 0.7,
"frequency_penalty": 0,
"presence_penalty": 0,
"top_p": 0.95,
"stop": null
}')
check "proxy to Azure OpenAI" "$tmp/2" "$status" '"object":"chat.completion"' '"content":"Mock answer to: Write me a 50-word introduction for Apache APISIX."'

# 3. Forward the LLM response upstream: the echo describes a POST /anything
# whose body is the LLM's completion; the credential never reaches it.
status=$(curl -sS -o "$tmp/3" -w '%{http_code}' "$passthrough/anything" -X POST \
	-H "Content-Type: application/json" \
	-H "Host: api.openai.com:443" \
	-d "$math")
check "forward LLM response to upstream" "$tmp/3" "$status" '"method": "POST"' '"url": "http://api.openai.com:443/anything"' \
	'\"object\":\"chat.completion\"' '\"content\":\"1+1 equals 2.\"' '"Content-Type": "application/json"' \
	'!sk-compose-openai-key' '!"Authorization"'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
