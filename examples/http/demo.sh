#!/usr/bin/env bash
# examples/http end to end (`make demo-http`): the two services and `interlock serve` on
# free loopback ports, a few CloudEvents posted with curl (binary, structured, a batch, a
# duplicate), their receipts, what the services saw, and a retry; then a second router
# whose payments token is wrong: a 401, given up at once, a dead letter. Everything it
# started is stopped when it ends, failed or not. Exit 0 when all was as expected.
#
# BIN: where python and interlock are (default .venv/bin, from the repository's root).

set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
WORK=$(mktemp -d)
PIDS=()
FAILURES=0

cleanup() {
  if ((${#PIDS[@]})); then
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

# start NAME COMMAND...: run in the background, stdout and stderr to $WORK/NAME.log
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}

# wait_for NAME COMMAND...: until COMMAND succeeds (at most 20 s); fail with NAME's log
wait_for() {
  local name=$1
  shift
  for _ in $(seq 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$name did not get ready within 20 s; its log:" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}

# count PATTERN NAME: the lines of NAME's log that match PATTERN (a grep regex)
count() { grep -c -- "$1" "$WORK/$2.log" || true; }
paid_at_least() { [ "$(count '-> 200' payments)" -ge "$1" ]; }
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/readyz")" = 200 ]; }

# check WHAT JSON EXPRESSION: EXPRESSION (Python, on the parsed JSON `r`) must be true
check() {
  if "$BIN/python" -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(not eval(sys.argv[2]))' "$2" "$3"; then
    echo "   ok: $1"
  else
    echo "   NOT AS EXPECTED: $1 ($3)"
    FAILURES=$((FAILURES + 1))
  fi
}

# post CONTENT-TYPE BODY [HEADER...]: POST /events with curl, shown as it is sent; the answer in $RECEIPT
post() {
  local type=$1 body=$2
  shift 2
  local args=(-X POST "$INGEST/events" -H "Content-Type: $type")
  for header in "$@"; do args+=(-H "$header"); done
  local shown="curl -X POST $INGEST/events" arg
  for arg in "${args[@]:3}"; do [ "$arg" = -H ] && shown+=" -H" || shown+=" '$arg'"; done
  echo "\$ $shown -d '$body'"
  RECEIPT=$(curl -sS "${args[@]}" -d "$body")
  echo "$RECEIPT"
}

read -r INGEST_PORT PAYMENTS_PORT FRAUD_PORT OTHER_PORT < <("$BIN/python" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
INGEST=http://127.0.0.1:$INGEST_PORT

say "starting the payments service (:$PAYMENTS_PORT), the fraud service (:$FRAUD_PORT) and interlock serve (:$INGEST_PORT)"
start payments "$BIN/python" -u examples/http/payments_service.py --port "$PAYMENTS_PORT" --token demo-secret
start fraud "$BIN/python" -u examples/http/fraud_service.py --port "$FRAUD_PORT"
export PAYMENTS_URL=http://127.0.0.1:$PAYMENTS_PORT/payments
export PAYMENTS_TOKEN="Bearer demo-secret"
export FRAUD_URL=http://127.0.0.1:$FRAUD_PORT/score
start serve "$BIN/interlock" serve examples/http --store memory:// --port "$INGEST_PORT"
wait_for payments grep -q listening "$WORK/payments.log"
wait_for fraud grep -q listening "$WORK/fraud.log"
wait_for serve ready "$INGEST"
echo "all three ready"

binary() {  # binary content mode: the attributes as ce-* headers, the data as the body
  local id=$1 body=$2
  post application/json "$body" "ce-specversion: 1.0" "ce-type: order.placed" "ce-source: checkout" "ce-id: $id"
}

say "a small order, binary content mode: payments only"
binary e-1 '{"id": "o-1", "amount": 25, "currency": "EUR", "customer": "c-1"}'
check "routed to payments alone" "$RECEIPT" 'r["targets"] == ["payments"] and r["replies"] == {}'

say "an order of 1250 EUR: fraud (sync) answers inside the request; payments answers 503 the first time"
binary e-2 '{"id": "o-2", "amount": 1250, "currency": "EUR", "customer": "c-2"}'
check "routed to fraud and payments" "$RECEIPT" 'r["targets"] == ["fraud", "payments"]'
check "the fraud service's score is the reply" "$RECEIPT" 'r["replies"]["fraud"] == {"score": 0.25, "decision": "accept"}'

STRUCTURED='{"specversion": "1.0", "id": "e-3", "type": "order.placed", "source": "checkout",
  "data": {"id": "o-3", "amount": 180, "currency": "USD", "customer": "c-3"}}'
say "structured content mode: the whole CloudEvent as the body"
post application/cloudevents+json "$STRUCTURED"
check "routed to fraud and payments, with a score" "$RECEIPT" \
  'r["targets"] == ["fraud", "payments"] and r["replies"]["fraud"]["score"] == 0.04'

say "a batch: an order and an event no route takes"
post application/cloudevents-batch+json '[
  {"specversion": "1.0", "id": "e-4", "type": "order.placed", "source": "checkout",
   "data": {"id": "o-4", "amount": 40, "currency": "EUR", "customer": "c-1"}},
  {"specversion": "1.0", "id": "e-5", "type": "order.shipped", "source": "warehouse", "data": {"id": "o-1"}}]'
check "one receipt per event, in order" "$RECEIPT" '[x["id"] for x in r["receipts"]] == ["e-4", "e-5"]'
check "the order goes to payments" "$RECEIPT" 'r["receipts"][0]["targets"] == ["payments"]'
check "order.shipped is unrouted" "$RECEIPT" 'r["receipts"][1]["unrouted"] is True'

say "e-3 posted again: a duplicate, delivered once"
post application/cloudevents+json "$STRUCTURED"
check "a duplicate, routed nowhere again" "$RECEIPT" 'r["duplicate"] is True and r["targets"] == []'

say "waiting for the payments service to take the four payments (e-2 after its retry, a second later)"
wait_for payments paid_at_least 4
echo "--- payments service"
cat "$WORK/payments.log"
echo "--- fraud service"
cat "$WORK/fraud.log"
echo "--- interlock serve (without httpx's line per request)"
grep -v ' httpx: ' "$WORK/serve.log" || true
check "four payments taken" "$(count '-> 200' payments)" 'r == 4'
check "e-2 refused once (503), then taken on attempt 2" \
  "[$(count 'ce-id=e-2 attempt=1 .* -> 503' payments), $(count 'ce-id=e-2 attempt=2 .* -> 200' payments)]" 'r == [1, 1]'
check "the router logged the retry it scheduled" "$(count 'payments failed (http.503' serve)" 'r == 1'

say "a second router whose payments token is wrong: 401, given up at once, a dead letter"
INGEST=http://127.0.0.1:$OTHER_PORT
start wrong_token env PAYMENTS_TOKEN="Bearer not-the-token" "$BIN/interlock" serve examples/http --store memory:// --port "$OTHER_PORT"
wait_for wrong_token ready "$INGEST"
binary e-6 '{"id": "o-6", "amount": 60, "currency": "EUR", "customer": "c-6"}'
check "accepted: the target's failure comes later" "$RECEIPT" 'r["targets"] == ["payments"] and r["errors"] == {}'
wait_for wrong_token grep -q 'gave up on e-6' "$WORK/wrong_token.log"
echo "--- payments service"
grep 'ce-id=e-6' "$WORK/payments.log"
echo "--- interlock serve"
grep 'e-6' "$WORK/wrong_token.log"
check "one attempt, a 401" "$(count 'ce-id=e-6 attempt=1 -> 401' payments)" 'r == 1'
check "given up on by give_up_on [http.4xx], into payments_dlq" \
  "$(count 'gave up on e-6 (`http.4xx` is in give_up_on); dead letter payments_dlq' wrong_token)" 'r == 1'
check "the token never shows in the log" "$(count 'not-the-token' wrong_token)" 'r == 0'

echo
if ((FAILURES)); then
  echo "demo-http: $FAILURES check(s) NOT as expected"
  exit 1
fi
echo "demo-http: everything as expected"
