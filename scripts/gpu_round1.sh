#!/usr/bin/env bash
# Device round 1 (one H100, ~8.5 min): render a 16k-clip pool, then train in parallel the dim-128 and
# dim-256 generators from scratch and a tracker from the shipped generator. Writes to $OUT.
set -u
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
OUT=${OUT:-out/gpu_round1}; mkdir -p "$OUT"
PY=${PY:-python3}
MIN=${MIN:-6.8}
$PY -m moaw_core train --task pool --num-clips 16384 --workers 16 --data-cache runs/data 2>&1 | tail -1
C="--num-clips 16384 --data-cache runs/data --workers 4 --batch-size 32 --lr-schedule cosine --max-minutes $MIN \
   --steps 100000 --save-every 1000 --export-every 1000 --log-every 50 --export-dtype fp16 --warmup 200"
$PY -m moaw_core train --task generate --out-dir runs/g128 --export "$OUT/gen128.safetensors" --dim 128 \
    --num-layers 6 --ffn-dim 256 --lr 5e-4 --loss flow $C > "$OUT/g128.log" 2>&1 &
$PY -m moaw_core train --task generate --out-dir runs/g256 --export "$OUT/gen256.safetensors" --dim 256 \
    --num-layers 6 --ffn-dim 512 --lr 3e-4 --loss flow $C > "$OUT/g256.log" 2>&1 &
$PY -m moaw_core train --task track --init models/generators/moaw_tiny_wan_generator.safetensors \
    --out-dir runs/t_old --export "$OUT/trk_old.safetensors" --loss l1 --loss-weighting codec --proj-init track \
    --sample-steps 1 --lr 5e-4 $C > "$OUT/t_old.log" 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; uptime
wait
for f in "$OUT"/*.log; do echo "== $f"; tail -c 400 "$f"; echo; done
for r in g128 g256 t_old; do cp runs/$r/loss.jsonl "$OUT/$r.loss.jsonl" 2>/dev/null; done
tar -czf "$OUT/logs.tgz" -C "$OUT" $(cd "$OUT" && ls *.log *.jsonl) && rm -f "$OUT"/*.log "$OUT"/*.jsonl
tail -c 600 runs/*/loss.jsonl
ls -la "$OUT"
