#!/bin/sh
# Creates (or replaces) the APISIX route of the first example of the APISIX
# ai-proxy documentation, with the ai-proxy wasm plugin (deploy/apisix/
# config.yaml) instead of the Lua ai-proxy:
#
#   ADMIN_API_KEY=... OPENAI_API_KEY=sk-... sh deploy/apisix/route.sh
#   curl http://127.0.0.1:9080/anything -X POST -H 'Content-Type: application/json' \
#     -d '{"messages":[{"role":"system","content":"You are a mathematician"},{"role":"user","content":"What is 1+1?"}]}'
#
# APISIX_ADMIN is the Admin API's base URL (default http://127.0.0.1:9180).
set -eu

: "${ADMIN_API_KEY:?set ADMIN_API_KEY to the APISIX Admin API key}"
: "${OPENAI_API_KEY:?set OPENAI_API_KEY to the OpenAI API key}"
admin="${APISIX_ADMIN:-http://127.0.0.1:9180}"
here="$(cd "$(dirname "$0")" && pwd)"

case "$OPENAI_API_KEY" in
*[!A-Za-z0-9_-]*)
	echo "route.sh: OPENAI_API_KEY has characters other than letters, digits, - and _" >&2
	exit 2
	;;
esac

sed "s|sk-your-openai-api-key|$OPENAI_API_KEY|" "$here/route.json" |
	curl -sS --fail-with-body "$admin/apisix/admin/routes" -X PUT \
		-H "X-API-KEY: $ADMIN_API_KEY" -H "Content-Type: application/json" \
		--data-binary @-
echo
