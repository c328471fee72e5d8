"""A real ComfyUI server (`main.py --cpu`) on a free loopback port with this pack loaded, shared by the
server tests of a session and always shut down. Its base directory is a temporary folder holding
`custom_nodes/moaw` (a link to this checkout) and tiny random-init models written by the fixture."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from safetensors.torch import save_file

import hosttools as H


class ComfyServer:
    def __init__(self, url: str, log_path: Path, base: Path, proc: subprocess.Popen):
        self.url, self.log_path, self.base, self.proc = url, log_path, base, proc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def post_prompt(self, prompt: dict) -> dict:
        """POST an API-format prompt. Returns the server's JSON (or its JSON error body on HTTP 400)."""
        body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex}).encode()
        req = urllib.request.Request(self.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return {"http_status": e.code, **json.loads(e.read() or b"{}")}

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """Wait until the prompt is in /history; returns its history entry."""
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("ComfyUI server died:\n" + self.log()[-4000:])
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                return hist[prompt_id]
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("status_str") == "error":
                return hist[prompt_id]
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s\n" + self.log()[-4000:])

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        res = self.post_prompt(prompt)
        assert "prompt_id" in res, f"prompt rejected: {json.dumps(res)[:3000]}"
        return self.wait(res["prompt_id"], timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_models(base: Path) -> None:
    d = base / "models" / "diffusion_models"
    d.mkdir(parents=True, exist_ok=True)
    save_file(H.tiny_wan_state_dict(num_layers=2, seed=0), str(d / "tiny_wan_t2v.safetensors"))


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    comfy_dir = H.require_host()
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "custom_nodes").mkdir()
    os.symlink(H.ROOT, base / "custom_nodes" / "moaw")
    for sub in ("input", "output", "user", "temp"):
        (base / sub).mkdir()
    _write_models(base)
    port = _free_port()
    log_path = base / "server.log"
    cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT)
    server = ComfyServer(f"http://127.0.0.1:{port}", log_path, base, proc)
    try:
        end = time.time() + 240
        while True:
            if proc.poll() is not None:
                raise RuntimeError("ComfyUI server exited during start-up:\n" + server.log()[-4000:])
            try:
                server.get("/system_stats")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > end:
                    raise TimeoutError("ComfyUI server did not start in 240 s:\n" + server.log()[-4000:])
                time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
