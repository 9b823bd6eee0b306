#!/usr/bin/env bash
# The quality predictor, end to end: discovery -> LOSO training and the gate per codec ->
# retrain of passing codecs on the full corpus -> ONNX (checked against PyTorch) -> cards
# and report.json. The corpus comes from the environment:
#   CORPUS=path/to/corpus.jsonl          one file
#   CORPUS_ROOTS="dir1 dir2"             every *.jsonl under them (missing roots skipped)
#   ALLOW_EMPTY=1                        no rows is a diagnostic run (missing-rows), not an error
# Arguments go to `modelyard predictor train` (--codec, --epochs, --report-out,
# --synthetic-smoke). Exit status: 0 when every codec passes, 2 when some did not, 1 or 3 when
# the run could not start.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELYARD=${MODELYARD:-.venv/bin/modelyard}

smoke=0
for arg in "$@"; do [[ $arg == --synthetic-smoke ]] && smoke=1; done
if [[ $smoke == 0 ]]; then
    echo "== discovery"
    if ! "$MODELYARD" predictor discover; then
        [[ ${ALLOW_EMPTY:-} == 1 ]] || exit 3
        echo "ALLOW_EMPTY=1: going on to a diagnostic run"
    fi
fi
echo "== LOSO training, gate, retrain of passing codecs, ONNX, cards"
exec "$MODELYARD" predictor train "$@"
