#!/usr/bin/env bash
# Device round 3 (one H100, ~7 min): continue tracker A (TRK_A, fine-tuned from GEN_R1) and, in parallel,
# a flow-matching (multi-step) tracker C from GEN_R1.
set -u
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
OUT=${OUT:-out/gpu_round3}; mkdir -p "$OUT"
PY=${PY:-python3}; MIN=${MIN:-5.6}
GEN_R1=${GEN_R1:-.gpu/gen256_r1.safetensors}; TRK_A=${TRK_A:-.gpu/trkA.safetensors}
$PY -m moaw_core train --task pool --num-clips 16384 --workers 16 --data-cache runs/data --data-seed 1000 2>&1 | tail -1
C="--num-clips 16384 --data-cache runs/data --workers 6 --batch-size 32 --lr-schedule cosine --max-minutes $MIN \
   --steps 100000 --save-every 1000 --export-every 1000 --log-every 50 --export-dtype fp16 --warmup 200 --data-seed 1000"
$PY -m moaw_core train --task track --init "$TRK_A" --loss l1 --loss-weighting codec --sample-steps 1 --lr 2e-4 \
    --out-dir runs/tA2 --export "$OUT/trkA2.safetensors" $C > "$OUT/tA2.log" 2>&1 &
$PY -m moaw_core train --task track --init "$GEN_R1" --loss flow --timestep-sampling uniform --loss-weighting codec \
    --proj-init track --sample-steps 4 --lr 3e-4 --out-dir runs/tC --export "$OUT/trkC.safetensors" $C > "$OUT/tC.log" 2>&1 &
wait
for f in "$OUT"/*.log; do echo "== $f"; tail -c 300 "$f"; echo; done
for r in tA2 tC; do cp runs/$r/loss.jsonl "$OUT/$r.loss.jsonl" 2>/dev/null; done
tar -czf "$OUT/logs.tgz" -C "$OUT" $(cd "$OUT" && ls *.log *.jsonl) && rm -f "$OUT"/*.log "$OUT"/*.jsonl
ls -la "$OUT"
