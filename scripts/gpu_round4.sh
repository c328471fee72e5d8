#!/usr/bin/env bash
# Next device round (planned, not yet run; one H100, ~8.5 min): make the shipped tracker robust to real
# footage. Continues models/trackers/moaw_tiny_wan_tracker.safetensors in parallel on a fresh procedural pool
# with photometric jitter (A) and on a pool with half real-frame textures plus jitter (B); then evaluates
# both on held-out synthetic clips (Sintel needs ../shared, which does not travel: evaluate back here).
# Copy ../shared/data/clips to .gpu/clips and carry .whl and .gpu (see docs/TRAINING.md).
set -u
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
OUT=${OUT:-out/gpu_round4}; mkdir -p "$OUT"
PY=${PY:-python3}; MIN=${MIN:-6.3}; TEX=${TEX:-.gpu/clips}
TRK=${TRK:-models/trackers/moaw_tiny_wan_tracker.safetensors}
$PY -m moaw_core train --task pool --num-clips 16384 --workers 16 --data-cache runs/data --data-seed 2000 2>&1 | tail -1
$PY -m moaw_core train --task pool --num-clips 16384 --workers 16 --data-cache runs/data --data-seed 2000 \
    --texture-dir "$TEX" 2>&1 | tail -1
C="--num-clips 16384 --data-cache runs/data --data-seed 2000 --workers 6 --batch-size 32 --lr-schedule cosine \
   --max-minutes $MIN --steps 100000 --save-every 1000 --export-every 1000 --log-every 50 --export-dtype fp16 --warmup 200"
T="--task track --init $TRK --loss l1 --loss-weighting codec --sample-steps 1 --lr 2e-4 --photometric 0.8"
$PY -m moaw_core train $T --out-dir runs/tP --export "$OUT/trkP.safetensors" $C > "$OUT/tP.log" 2>&1 &
$PY -m moaw_core train $T --texture-dir "$TEX" --out-dir runs/tPT --export "$OUT/trkPT.safetensors" $C > "$OUT/tPT.log" 2>&1 &
wait
for t in trkP trkPT; do $PY -m moaw_core eval --tracker "$OUT/$t.safetensors" --methods tracker zero --out "$OUT/eval_$t" \
    2>&1 | grep "^| tracker\|^| zero"; done
for f in "$OUT"/*.log; do echo "== $f"; tail -c 300 "$f"; echo; done
for r in tP tPT; do cp runs/$r/loss.jsonl "$OUT/$r.loss.jsonl" 2>/dev/null; done
tar -czf "$OUT/logs.tgz" -C "$OUT" $(cd "$OUT" && ls *.log *.jsonl *.md *.json 2>/dev/null) && rm -f "$OUT"/*.log "$OUT"/*.jsonl "$OUT"/*.md "$OUT"/eval_*.json
ls -la "$OUT"
