#!/usr/bin/env bash
# Same weights before and after a change that must not change behaviour (a refactor): short runs of
# every training path with explicit flags, then the sha256 of every saved weights file.
#
#   benchmarks/same_weights.sh [CHECKOUT] > hashes.txt      # CHECKOUT: default this one
#   diff base.txt hashes.txt                               # no output: byte-identical weights
#
# The runs: pretraining (30 steps), `finetune classify` (default: last block + head) and with --train
# lora, `finetune instruct` (default: every layer), and the same pretraining on 2 processes
# (mpiexec -n 2). Each takes seconds. Data: a slice of The Verdict (../shared/data) when present, else
# the default corpus; fine-tuning data from `make-data`. Everything goes to a temporary folder (the token
# cache too), removed at the end. Compare only runs made on the same machine with the same NumPy.
set -euo pipefail
checkout=$(cd "${1:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TINYTENSOR_CACHE="$tmp/cache" PYTHONPATH="$checkout" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cd "$tmp"
quiet() { "$@" > "$tmp/last.log" 2>&1 || { cat "$tmp/last.log"; echo "FAILED: $*" >&2; exit 1; }; }

verdict="$checkout/../shared/data/the-verdict.txt"
if [ -f "$verdict" ]; then data=(--data "$verdict"); else data=(); fi
model=(--vocab-size 300 --context-length 32 --emb-dim 32 --n-layers 2 --n-heads 2 --batch-size 4
       --max-steps 30 --eval-every 10 --eval-batches 2 --save-every 15 --sample-tokens 4 --seed 7 --lr 3e-3)
quiet python -m gpt train "${data[@]}" "${model[@]}" --out pre
quiet python -m gpt make-data classify --out cls.tsv --n-per-class 30 --seed 1
quiet python -m gpt finetune classify --data cls.tsv --init pre --out cls --epochs 1 --batch-size 4 --seed 3
quiet python -m gpt finetune classify --data cls.tsv --init pre --out lora --epochs 1 --batch-size 4 --seed 3 \
      --train lora --lora-rank 2
quiet python -m gpt make-data instruct --out sft.json --n 40 --seed 1
quiet python -m gpt finetune instruct --data sft.json --init pre --out sft --epochs 1 --batch-size 4 --seed 3 \
      --max-new-tokens 4 --max-test 2
quiet mpiexec -n 2 python -m gpt train "${data[@]}" "${model[@]}" --out two

for run in pre cls lora sft two; do
  for f in "$run"/*.safetensors "$run"/tokenizer.bpe; do
    [ -f "$f" ] && echo "$(sha256sum "$f" | cut -c1-64)  $f"
  done
done
