#!/usr/bin/env bash
# A CI job: run a chain, follow it in the log, check its result, fail the job if it failed;
# and/or run a workflow file the same way (a workflow step).
#
#   examples/ci.sh                                              # math_chain --numbers 1 2 3
#   examples/ci.sh math_chain --numbers 2 10 --operation power  # any `taskchain submit` args
#   CHAIN="data_chain --input sales.csv --steps clean analyze" examples/ci.sh
#   WORKFLOW=examples/workflows/fanout.yaml examples/ci.sh      # the workflow step only
#   WORKFLOW=nightly.yaml examples/ci.sh math_chain --numbers 1 2  # the chain, then the workflow
#
# Environment:
#   CHAIN          chain type and flags when no arguments are given
#   WORKFLOW       a workflow file: `taskchain run FILE --wait`, its jobs' progress in the log;
#                  the job fails when a job of the workflow fails. With WORKFLOW and neither
#                  arguments nor CHAIN, only the workflow runs.
#   WORKFLOW_ID    optional id for the workflow, as CHAIN_ID is for the chain
#   CHAIN_ID       optional id for the chain (e.g. "build-$CI_PIPELINE_ID"): a retried job
#                  then follows the chain it already started instead of running it twice
#   EXPECT         optional: the result the job requires (compared as text, e.g. 6)
#   WATCH_TIMEOUT  how long to wait for the chain, or the workflow (default 30m; then exit
#                  124, and the chain or workflow goes on)
#   TASKCHAIN      the command to run (default `taskchain`)
#   TASKCHAIN_*    where the broker and store are, as for any taskchain command
#
# Exit status: 0 when the chain (and the workflow) COMPLETED (with the EXPECTed result), 1 when
# one failed or was cancelled (or the result differs), else taskchain's own code (2 bad input,
# 4 unreachable, 124 timeout).
set -euo pipefail

read -r -a taskchain <<<"${TASKCHAIN:-taskchain}"

field() { # a top-level field of $json as text (strings bare, the rest as JSON)
  if command -v jq >/dev/null 2>&1; then
    jq -r --arg key "$1" '.[$key] | if type == "string" then . else tojson end' <<<"$json"
  else
    python3 -c 'import json, sys
value = json.loads(sys.argv[1])[sys.argv[2]]
print(value if isinstance(value, str) else json.dumps(value))' "$json" "$1"
  fi
}

chain_step() {
  id_option=()
  if [ -n "${CHAIN_ID:-}" ]; then
    id_option=(--id "$CHAIN_ID")
  fi

  # -q: stdout is the id and nothing else. In embedded mode submit also runs the chain and
  # exits 1 if it fails; the checks below report that, so do not stop on it here.
  submitted=0
  id=$("${taskchain[@]}" submit "${chain[@]}" ${id_option[@]+"${id_option[@]}"} -q) || submitted=$?
  if [ -z "$id" ]; then
    echo "ci: submit failed (exit $submitted)" >&2
    exit "$submitted"
  fi
  echo "ci: chain $id: ${chain[*]}"

  # Not a terminal (or CI set): one plain line per step, then a summary line.
  watched=0
  "${taskchain[@]}" watch "$id" --timeout "${WATCH_TIMEOUT:-30m}" || watched=$?
  if [ "$watched" -ne 0 ] && [ "$watched" -ne 1 ]; then
    echo "ci: watch ended with exit $watched" >&2
    exit "$watched"
  fi

  # The record, as JSON: {"id", "status", "result", "error", ...}. Exit 1 only says the chain
  # failed, which its status below reports; any other code is an error of its own.
  answered=0
  json=$("${taskchain[@]}" result "$id" --json) || answered=$?
  if [ "$answered" -gt 1 ]; then
    echo "ci: result ended with exit $answered" >&2
    exit "$answered"
  fi

  status=$(field status)
  if [ "$status" != "COMPLETED" ]; then
    echo "ci: chain $id $status: $(field error)" >&2
    exit 1
  fi
  result=$(field result)
  if [ -n "${EXPECT:-}" ] && [ "$result" != "$EXPECT" ]; then
    echo "ci: chain $id result $result, expected $EXPECT" >&2
    exit 1
  fi
  echo "ci: chain $id COMPLETED: result $result"
}

# The workflow step: `run --wait` follows it to its end (not a terminal: a plain line per job
# change on stderr), and exits 1 when a job failed (the jobs that needed it are skipped).
workflow_step() {
  local id_option=() ran=0 workflow
  if [ -n "${WORKFLOW_ID:-}" ]; then
    id_option=(--id "$WORKFLOW_ID")
  fi
  workflow=$("${taskchain[@]}" run "$WORKFLOW" ${id_option[@]+"${id_option[@]}"} --wait \
    --timeout "${WATCH_TIMEOUT:-30m}") || ran=$?
  if [ -z "$workflow" ]; then
    echo "ci: workflow $WORKFLOW: run failed (exit $ran)" >&2
    exit "$ran"
  fi
  if [ "$ran" -ne 0 ] && [ "$ran" -ne 1 ]; then
    echo "ci: workflow $workflow: run ended with exit $ran" >&2
    exit "$ran"
  fi
  # {"id", "status", "result": {job: {output: value}}, "error"}
  local answered=0
  json=$("${taskchain[@]}" result "$workflow" --json) || answered=$?
  if [ "$answered" -gt 1 ]; then
    echo "ci: result ended with exit $answered" >&2
    exit "$answered"
  fi
  if [ "$(field status)" != "COMPLETED" ]; then
    echo "ci: workflow $workflow $(field status): $(field error)" >&2
    exit 1
  fi
  echo "ci: workflow $workflow COMPLETED: outputs $(field result)"
}

if [ "$#" -gt 0 ]; then
  chain=("$@")
elif [ -n "${CHAIN:-}" ] || [ -z "${WORKFLOW:-}" ]; then
  read -r -a chain <<<"${CHAIN:-math_chain --numbers 1 2 3}"
else
  chain=()
fi
if [ "${#chain[@]}" -gt 0 ]; then
  chain_step
fi
if [ -n "${WORKFLOW:-}" ]; then
  workflow_step
fi
