#!/bin/bash
# Runs a command with the background model training (train.py) paused, so a benchmark has the
# machine's cores to itself; a watcher also pauses a training run that starts mid-benchmark.
# Every paused process is resumed (by PID) however the command ends.
#   usage: bench/lib/pause-training.sh <command> [args…]
pattern=${PAUSE_PATTERN:-'python.*train\.py'}
list=$(mktemp)
pause_all() {
  for p in $(pgrep -f "$pattern"); do
    # Only Python interpreters: never this script, its watcher or the command it runs.
    case "$(cat "/proc/$p/comm" 2>/dev/null)" in python*) ;; *) continue ;; esac
    if kill -STOP "$p" 2>/dev/null; then echo "$p" >>"$list"; fi
  done
}
resume_all() {
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null && wait "$watcher" 2>/dev/null
  for p in $(sort -u "$list"); do kill -CONT "$p" 2>/dev/null; done
  [ -s "$list" ] && echo "[pause-training] resumed: $(sort -u "$list" | tr '\n' ' ')" >&2
  rm -f "$list"
}
trap resume_all EXIT
trap 'exit 130' INT TERM
pause_all
[ -s "$list" ] && echo "[pause-training] paused: $(sort -u "$list" | tr '\n' ' ')" >&2
( while sleep 1; do pause_all; done ) &
watcher=$!
"$@"
