"""The one flow-Euler sampler (`schedule.flow_sample`) and its schedule (`schedule.flow_sigmas`): diffusers'
FlowMatchEulerDiscreteScheduler, with a start index (denoise < 1) and a before-step hook."""
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from moaw_core.engine.schedule import flow_sample, flow_sigmas


def _velocity(x, t, i, sigma):
    return torch.sin(x * 3.0 + float(t) / 300.0) + 0.1 * i  # any smooth field


def _diffusers_loop(x, steps, shift, begin=0):
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    sched.set_begin_index(begin)
    for i, t in enumerate(sched.timesteps[begin:]):
        x = sched.step(_velocity(x, t, i, None), t, x, return_dict=False)[0]
    return x


@pytest.mark.parametrize("steps,shift,begin", [(1, 1.0, 0), (4, 1.0, 0), (12, 3.0, 0), (14, 1.0, 2)])
def test_flow_sample_is_diffusers_flow_match_euler(steps, shift, begin):
    x = torch.randn(1, 2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    assert torch.equal(flow_sigmas(steps, shift), sched.sigmas)
    ours = flow_sample(_velocity, x, flow_sigmas(steps, shift), begin=begin)
    assert torch.equal(ours, _diffusers_loop(x, steps, shift, begin))


def test_one_step_schedule_and_hooks():
    assert flow_sigmas(1).tolist() == [1.0, 0.0]
    x = torch.ones(2, 3)
    assert torch.equal(flow_sample(lambda x, t, i, s: x, x, flow_sigmas(1)), torch.zeros(2, 3))  # x0 = x - v
    seen, done = [], []
    flow_sample(lambda x, t, i, s: torch.zeros_like(x), x, flow_sigmas(4), begin=1,
                before_step=lambda x, i, s, t: (seen.append((i, round(s, 3), float(t))), x)[1],
                callback=lambda d, n: done.append((d, n)))
    assert seen == [(0, 0.667, pytest.approx(667.0)), (1, 0.334, pytest.approx(334.0)), (2, 0.001, pytest.approx(1.0))]
    assert done == [(1, 3), (2, 3), (3, 3)]


def test_bad_inputs():
    with pytest.raises(ValueError, match="steps"):
        flow_sigmas(0)
    with pytest.raises(ValueError, match="shift"):
        flow_sigmas(2, -1.0)
    with pytest.raises(ValueError, match="descending schedule ending at 0"):
        flow_sample(_velocity, torch.zeros(1), [1.0, 0.5])
    with pytest.raises(ValueError, match="begin"):
        flow_sample(_velocity, torch.zeros(1), flow_sigmas(2), begin=2)
