import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # `moaw_core` importable; appended so ComfyUI's `nodes` can take precedence


_GROUPS = {"comfy": "host (in-process ComfyUI)", "server": "server (real ComfyUI server)",
           "browser": "browser (ComfyUI web UI in headless Chromium)", "unit": "unit"}
_REQUIRED = ("comfy", "server", "browser")


def _group(nodeid: str) -> str:
    parts = nodeid.replace("\\", "/").split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Counts per test group, so a CI log shows that the host and server tests really ran."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for rep in terminalreporter.stats.get(outcome, []):
            if getattr(rep, "when", "call") in ("call", "setup") and hasattr(rep, "nodeid"):
                g = counts.setdefault(_group(rep.nodeid), {})
                g[outcome] = g.get(outcome, 0) + 1
    terminalreporter.section("moaw test groups")
    for key, label in _GROUPS.items():
        c = counts.get(key, {})
        terminalreporter.write_line(f"{label}: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items())) if c
                                    else f"{label}: none ran")


def pytest_sessionfinish(session, exitstatus):
    """With MOAW_REQUIRE_HOST=1 (CI) a skipped host/server/browser test fails the run instead of passing quietly."""
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("MOAW_REQUIRE_HOST") != "1" or reporter is None:
        return
    skipped = [r for r in reporter.stats.get("skipped", []) if _group(getattr(r, "nodeid", "")) in _REQUIRED]
    if skipped:
        reporter.write_line(f"MOAW_REQUIRE_HOST=1: {len(skipped)} host/server/browser tests were skipped", red=True)
        session.exitstatus = 1


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny tensors (mark it `pytest.mark.usefixtures("one_torch_thread")`): on a
    shared 2-core machine thread start-up and spinning cost more than they save. Restored after the module."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory):
    """A folder with tiny random generator / tracker / codec files in the bundled models' formats
    (gen.safetensors, trk.safetensors, codec.safetensors)."""
    import torch

    from moaw_core.engine.checkpoint import save_model
    from moaw_core.tracking.codecs import PATCH_PCA_ID, PatchPCACodec, TrackEncoding
    from moaw_core.data.sources import synthetic_source
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    d = tmp_path_factory.mktemp("tiny_models")
    gen = build_wan(num_layers=2, seed=0)
    save_model(d / "gen.safetensors", gen, "generator", PATCH_PCA_ID)
    trk = MoawTracker.from_generator(gen, 32)
    save_model(d / "trk.safetensors", trk.backbone, "tracker", PATCH_PCA_ID, TrackEncoding(24.0, PATCH_PCA_ID, 16),
               video_channels=16)
    PatchPCACodec.fit(torch.stack([synthetic_source(i).video for i in range(2)]), 16).save(d / "codec.safetensors")
    return d
