"""DeT in a real in-process ComfyUI on a tiny native Wan: identity at zero init, clone-only patching with the
original parameter paths, the same output as the diffusers placement for the same weights, training through
ComfyUI's own denoiser (only adapters change, cancellable), the nodes, and clear errors."""
import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host
SHAPE = (1, 16, 4, 8, 8)


@pytest.fixture(scope="module")
def env():
    comfy = H.import_comfy()
    pack = H.load_pack()
    from moaw_core.engine.convert import diffusers_to_wan
    from moaw_core.tracking.tracker import build_wan

    diff = build_wan(dim=128, num_layers=2, seed=3).eval()
    p = H.load_native(diffusers_to_wan(diff.state_dict()))
    noise = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(0))
    cond = [[torch.zeros(1, 1, 4096), {}]]
    return comfy, pack, pack.nodes.det_bridge, diff, p, noise, cond


def _sample(comfy, m, noise, cond, steps=1, callback=None):
    return comfy.sample.sample(m, noise, steps, 1.0, "euler", "simple", cond, cond, torch.zeros_like(noise), seed=0,
                               disable_pbar=True, callback=callback)


def _state(p):
    return repr(p.model_options), repr(p.wrappers), dict(p.attachments), dict(p.object_patches)


def _random_adapters(diff, std=0.02):
    from moaw_core.det.pipeline import adapters_for

    a = adapters_for(diff)
    with torch.no_grad():
        for m in a.blocks.values():
            m.conv_out.weight.normal_(std=std)
    return a


def test_zero_init_identical_and_clone_only(env):
    comfy, pack, B, diff, p, noise, cond = env
    from moaw_core.det.pipeline import adapters_for

    plain = _sample(comfy, p, noise, cond)
    before = _state(p)
    m = B.apply_det(p, adapters_for(diff), fraction=1.0)
    assert _state(p) == before and m is not p
    assert torch.equal(plain, _sample(comfy, m, noise, cond))
    changed = _sample(comfy, B.apply_det(p, _random_adapters(diff), fraction=1.0), noise, cond)
    assert not torch.equal(plain, changed)
    assert torch.equal(plain, _sample(comfy, p, noise, cond)) and _state(p) == before


def test_parameter_paths_unchanged_while_patched(env):
    comfy, pack, B, diff, p, noise, cond = env
    keys = set(p.model.state_dict())
    m = B.apply_det(p, _random_adapters(diff), fraction=1.0)
    comfy.model_management.load_models_gpu([m])
    assert type(m.model.diffusion_model.blocks[0].self_attn).__name__ == "DeTAttention"
    assert set(m.model.state_dict()) == keys  # LoRA / weight patches keyed on these paths still apply
    comfy.model_management.load_models_gpu([p])
    assert type(p.model.diffusion_model.blocks[0].self_attn).__name__ == "WanSelfAttention"


def test_same_output_as_diffusers_placement(env):
    comfy, pack, B, diff, p, noise, cond = env
    from moaw_core.det.pipeline import generate_det

    a = _random_adapters(diff)
    for fraction in (1.0, 0.35):
        c = p.model.process_latent_in(_sample(comfy, B.apply_det(p, a, fraction=fraction), noise, cond))
        d = generate_det(diff, a, SHAPE, seed=0, steps=1, fraction=fraction)
        effect = (d - generate_det(diff, None, SHAPE, seed=0, steps=1)).abs().max()
        assert float(effect) > 1e-2  # the adapters matter here ...
        assert float((c - d).abs().max()) < 1e-4  # ... and both hosts agree (fp32, one Euler step from sigma 1)


def test_training_changes_only_adapters_and_cancels(env):
    comfy, pack, B, diff, p, noise, cond = env
    import comfy.model_management as mm
    from moaw_core.det.train import DeTTrainConfig

    base = {k: v.clone() for k, v in p.model.state_dict().items()}
    lat = {"samples": torch.randn(*SHAPE, generator=torch.Generator().manual_seed(4))}
    a, state, _ = B.train_det_comfy(p, lat, cond, DeTTrainConfig(steps=2, lr=1e-2, track_weight=0.0))
    assert state.step == 2 and len(state.losses) == 2
    assert any(float(m.conv_out.weight.abs().max()) > 0 for m in a.blocks.values())
    assert all(torch.equal(base[k], v) for k, v in p.model.state_dict().items())

    def stop(step, total, rec):
        raise mm.InterruptProcessingException()

    plain = _sample(comfy, p, noise, cond)
    with pytest.raises(mm.InterruptProcessingException):
        B.train_det_comfy(p, lat, cond, DeTTrainConfig(steps=5, track_weight=0.0), progress=stop)
    assert torch.equal(plain, _sample(comfy, p, noise, cond))


def test_nodes_train_save_load_apply(env, tmp_path, monkeypatch):
    comfy, pack, B, diff, p, noise, cond = env
    import folder_paths

    N = pack.nodes.det
    video = torch.zeros(4, 32, 32, 3)
    for t in range(4):
        video[t, 8:16, 4 + 2 * t:12 + 2 * t] = 1.0
    lat = {"samples": torch.randn(*SHAPE, generator=torch.Generator().manual_seed(4))}
    out = N.MoawTrainDeT.execute(model=p, latent=lat, positive=cond, steps=2, learning_rate=1e-3, track_weight=0.1,
                                 tracker="lk", points=9, seed=0, fraction=0.5, source_video=video)
    model, det, graph = out.args
    assert graph.shape == (1, 256, 512, 3) and det.state.step == 2 and det.info["tracker"] == "lk"
    assert [r["step"] for r in det.state.losses] == [1, 2]
    monkeypatch.setattr(folder_paths, "get_folder_paths", lambda kind: [str(tmp_path)])
    N.MoawSaveDeT.execute(det=det, name="clip", resumable=True)
    assert (tmp_path / "clip.safetensors").is_file()
    monkeypatch.setattr(folder_paths, "get_full_path_or_raise", lambda kind, name: str(tmp_path / name))
    back = N.MoawLoadDeT.execute(name="clip.safetensors").args[0]
    assert back.state.step == 2 and back.state.optimizer is not None
    m1 = N.MoawApplyDeT.execute(model=p, det=back, fraction=0.5, strength=1.0).args[0]
    torch.testing.assert_close(_sample(comfy, m1, noise, cond), _sample(comfy, model, noise, cond))
    more = N.MoawTrainDeT.execute(model=p, latent=lat, positive=cond, steps=3, learning_rate=1e-3, track_weight=0.0,
                                  tracker="none", points=9, seed=0, fraction=0.5, resume=back).args[1]
    assert more.state.step == 3 and back.state.step == 2  # resumed from step 2; the loaded object untouched
    with pytest.raises(ValueError, match="plain file name"):
        pack.nodes.paths.det_path("../escape")


def test_bad_inputs(env):
    comfy, pack, B, diff, p, noise, cond = env
    from moaw_core.det.adapter import DeTAdapters
    from moaw_core.det.train import DeTTrainConfig

    lat = {"samples": torch.randn(*SHAPE)}
    with pytest.raises(ValueError, match="width 256, this wan model has width 128"):
        B.apply_det(p, DeTAdapters(256, ["block.0"], "wan"))
    with pytest.raises(ValueError, match="trained for a 'cogvideox' model"):
        B.apply_det(p, DeTAdapters(128, ["block.0"], "cogvideox"))
    with pytest.raises(TypeError, match="MOAW_DET"):
        B.apply_det(p, "adapters.safetensors")
    with pytest.raises(TypeError, match="no adapter placement for comfy 'hunyuan_video'"):
        hy = H.tiny_hunyuan_video()
        B.apply_det(hy, DeTAdapters(128, ["double.0"], "hunyuan_video"))
    with pytest.raises(ValueError, match="batch 1"):
        B.train_det_comfy(p, {"samples": torch.randn(2, *SHAPE[1:])}, cond, DeTTrainConfig(steps=1, track_weight=0))
    with pytest.raises(ValueError, match="needs the source frames"):
        B.train_det_node(p, lat, cond, DeTTrainConfig(steps=1), video=None, tracker="lk")
    with pytest.raises(ValueError, match="cannot be the one encoded"):
        B.train_det_node(p, lat, cond, DeTTrainConfig(steps=1), video=torch.rand(2, 32, 32, 3), tracker="lk")


def test_training_on_a_model_loaded_under_inference_mode(env):
    """ComfyUI's loaders and VAEEncode run under torch.inference_mode(): weights, latents and conditioning are
    inference tensors, which autograd refuses unless the trainer works around it (as core's TrainLoraNode does)."""
    comfy, pack, B, diff, p, noise, cond = env
    from moaw_core.engine.convert import diffusers_to_wan
    from moaw_core.det.train import DeTTrainConfig

    with torch.inference_mode():
        q = H.load_native(diffusers_to_wan(diff.state_dict()))
        lat = {"samples": torch.randn(*SHAPE)}
        c = [[torch.zeros(1, 1, 4096), {}]]
    assert any(t.is_inference() for t in q.model.parameters())
    video = torch.zeros(4, 32, 32, 3)
    for t in range(4):
        video[t, 8:16, 4 + 2 * t:12 + 2 * t] = 1.0
    with torch.inference_mode():  # as ComfyUI runs every node: tracks are made under inference mode too
        cfg = DeTTrainConfig(steps=3, lr=1e-2, track_weight=0.1, track_max_t=1.0)
        _, trained, _ = B.train_det_node(q, lat, c, cfg, video, "lk", 9)
    assert trained.state.step == 3 and any(r["tracking"] > 0 for r in trained.state.losses)
    assert any(float(m.conv_out.weight.abs().max()) > 0 for m in trained.adapters.blocks.values())
    assert not q.weight_wrapper_patches  # the wrappers went on the training clone only
