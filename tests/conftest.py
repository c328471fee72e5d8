import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # `moaw_core` importable; appended so ComfyUI's `nodes` can take precedence
