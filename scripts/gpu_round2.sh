#!/usr/bin/env bash
# Device round 2 (one H100, ~8.5 min): continue the dim-256 generator (GEN_R1 -> gen256_r2) and, in
# parallel, fine-tune two trackers from GEN_R1: procedural textures (A) and half real-frame textures (B).
set -u
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
OUT=${OUT:-out/gpu_round2}; mkdir -p "$OUT"
PY=${PY:-python3}; MIN=${MIN:-6.6}
GEN_R1=${GEN_R1:-.gpu/gen256_r1.safetensors}; TEX=${TEX:-.gpu/clips}
$PY -m moaw_core train --task pool --num-clips 16384 --workers 16 --data-cache runs/data 2>&1 | tail -1
$PY -m moaw_core train --task pool --num-clips 16384 --workers 16 --data-cache runs/data --texture-dir "$TEX" 2>&1 | tail -1
C="--num-clips 16384 --data-cache runs/data --workers 4 --batch-size 32 --lr-schedule cosine --max-minutes $MIN \
   --steps 100000 --save-every 1000 --export-every 1000 --log-every 50 --export-dtype fp16 --warmup 200"
T="--task track --init $GEN_R1 --loss l1 --loss-weighting codec --proj-init track --sample-steps 1 --lr 3e-4"
$PY -m moaw_core train --task generate --init "$GEN_R1" --out-dir runs/g256r2 --export "$OUT/gen256_r2.safetensors" \
    --lr 3e-4 --loss flow $C > "$OUT/g256r2.log" 2>&1 &
$PY -m moaw_core train $T --out-dir runs/tA --export "$OUT/trkA.safetensors" $C > "$OUT/tA.log" 2>&1 &
$PY -m moaw_core train $T --texture-dir "$TEX" --out-dir runs/tB --export "$OUT/trkB.safetensors" $C > "$OUT/tB.log" 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; uptime
wait
for f in "$OUT"/*.log; do echo "== $f"; tail -c 300 "$f"; echo; done
for r in g256r2 tA tB; do cp runs/$r/loss.jsonl "$OUT/$r.loss.jsonl" 2>/dev/null; done
tar -czf "$OUT/logs.tgz" -C "$OUT" $(cd "$OUT" && ls *.log *.jsonl) && rm -f "$OUT"/*.log "$OUT"/*.jsonl
ls -la "$OUT"
