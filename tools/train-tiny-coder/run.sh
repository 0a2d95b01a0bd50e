#!/bin/sh
# Starts / stops / inspects the background training of models/tiny-coder.
#   tools/train-tiny-coder/run.sh start   # (re)builds corpus+tokenizer if missing, trains (resumes from work/ckpt.pt)
#   tools/train-tiny-coder/run.sh stop    # SIGTERM: checkpoint saved, `start` resumes
#   tools/train-tiny-coder/run.sh status  # last log lines
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
WORK="$HERE/work"
mkdir -p "$WORK"
case "${1:-}" in
  start)
    if [ -f "$WORK/train.pid" ] && kill -0 "$(cat "$WORK/train.pid")" 2>/dev/null; then
      echo "already running (pid $(cat "$WORK/train.pid"))"; exit 1
    fi
    nohup sh -c "
      set -e
      [ -f '$WORK/train.u16' ] || { $PY '$HERE/corpus.py' && $PY '$HERE/bpe.py'; }
      exec $PY '$HERE/train.py'
    " >> "$WORK/train.log" 2>&1 &
    echo $! > "$WORK/train.pid"
    echo "started pid $(cat "$WORK/train.pid"); log: $WORK/train.log"
    ;;
  stop)
    kill -TERM "$(cat "$WORK/train.pid")" && echo "stop requested; waits for the current step and saves a checkpoint"
    ;;
  status)
    tail -n 5 "$WORK/train.log"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2; exit 2
    ;;
esac
