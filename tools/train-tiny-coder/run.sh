#!/bin/sh
# Starts / stops / inspects the background training of models/tiny-coder.
#   tools/train-tiny-coder/run.sh start       # stage 1: (re)builds corpus+tokenizer if missing, trains (resumes from work/ckpt.pt)
#   tools/train-tiny-coder/run.sh start fim   # stage 2 (hparams-fim.json): FIM continuation from work/base.safetensors;
#                                              # builds the FIM rows if missing, resumes from work/ckpt-fim.pt
#   tools/train-tiny-coder/run.sh stop    # SIGTERM: checkpoint saved, `start` resumes
#   tools/train-tiny-coder/run.sh status  # last log lines
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
WORK="$HERE/work"
mkdir -p "$WORK"
case "${1:-}" in
  start)
    ARGS=""
    if [ "${2:-}" = fim ]; then
      [ -f "$WORK/base.safetensors" ] || cp "$HERE/../../models/tiny-coder/model.safetensors" "$WORK/base.safetensors"
      [ -f "$WORK/fim-train.u16" ] || { $PY "$HERE/corpus.py" && $PY "$HERE/bpe.py" --from "$HERE/../../models/tiny-coder/tokenizer.json" && $PY "$HERE/fim.py" "$HERE/hparams-fim.json"; }
      ARGS="--hparams hparams-fim.json"
    fi
    if [ -f "$WORK/train.pid" ] && kill -0 "$(cat "$WORK/train.pid")" 2>/dev/null; then
      echo "already running (pid $(cat "$WORK/train.pid"))"; exit 1
    fi
    nohup sh -c "
      set -e
      [ -f '$WORK/train.u16' ] || { $PY '$HERE/corpus.py' && $PY '$HERE/bpe.py'; }
      exec $PY '$HERE/train.py' $ARGS
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
    echo "usage: $0 start [fim]|stop|status" >&2; exit 2
    ;;
esac
