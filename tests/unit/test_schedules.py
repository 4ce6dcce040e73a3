"""RePaint time tables, beta schedules and respacing: invariants and hand-checked cases."""

import math

import numpy as np
import pytest

from repaint_pl.schedules import (
    ExplicitTimes,
    JumpSchedule,
    ProfileSchedule,
    check_times,
    cosine_betas,
    count_transitions,
    jump_times,
    jumps_per_point_times,
    linear_betas,
    plot_times,
    profile_jump_counts,
    respace_betas,
    space_timesteps,
)


def assert_valid(times, t_T):
    assert times[0] == t_T - 1 and times[-1] == -1
    assert all(abs(a - b) == 1 for a, b in zip(times[:-1], times[1:]))
    assert min(times) == -1 and max(times) <= t_T - 1


def test_paper_schedule_counts():
    times = jump_times(t_T=250, n_sample=1, jump_length=10, jump_n_sample=10)
    assert_valid(times, 250)
    assert count_transitions(times) == (2410, 2160)
    assert len(times) - 1 == 4570


def test_hand_checked_single_level():
    # jump points {0, 2}, one jump each, two steps up
    assert jump_times(t_T=5, jump_length=2, jump_n_sample=2) == [4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]


def test_hand_checked_n_sample():
    # one-step back-and-forth after each reverse step once t+1 < t_T-1
    assert jump_times(t_T=3, n_sample=2, jump_length=1, jump_n_sample=1) == [2, 1, 0, 1, 0, -1]


def test_hand_checked_nested_levels():
    # level 2 (1 step, 1 jump per point) refilled after the level-1 jump of 4 steps from t=0
    expected = [5, 4, 5, 4, 3, 4, 3, 2, 3, 2, 1, 2, 1, 0, 1, 0, 1, 2, 3, 4, 3, 4, 3, 2, 3, 2, 1, 2, 1, 0, 1, 0, -1]
    assert jump_times(t_T=6, jump_length=4, jump_n_sample=2, jump2_length=1, jump2_n_sample=2) == expected


def test_start_resampling_limits_jumps_to_low_t():
    times = jump_times(t_T=50, jump_length=5, jump_n_sample=3, start_resampling=20)
    assert_valid(times, 50)
    forward_from = [a for a, b in zip(times[:-1], times[1:]) if b > a]
    assert max(forward_from) <= 20 and len(forward_from) > 0


def test_no_resampling_is_plain_descent():
    assert jump_times(t_T=10, jump_length=1, jump_n_sample=1) == list(range(9, -2, -1))


def test_jumps_per_point_generalises_uniform_schedule():
    uniform = {j: 9 for j in range(0, 240, 10)}
    assert jumps_per_point_times(250, 10, uniform) == jump_times(250, 1, 10, 10)


@pytest.mark.parametrize("profile", ["early", "late", "uniform"])
def test_profile_schedules_cost_the_same(profile):
    sched = ProfileSchedule(jump_length=10, jump_n_sample=10, profile=profile)
    assert_valid(sched.times(250), 250)
    assert sched.network_calls(250) == 2410


def test_profiles_put_resampling_where_asked():
    early = profile_jump_counts(250, 10, 10, "early")
    late = profile_jump_counts(250, 10, 10, "late")
    high, low = max(early), min(early)
    assert early[high] > early[low] and late[low] > late[high]
    assert sum(early.values()) == sum(late.values()) == 24 * 9


def test_explicit_times_validated():
    assert ExplicitTimes([2, 1, 2, 1, 0, -1]).network_calls(3) == 4
    with pytest.raises(ValueError, match="t_T=3 must lie in"):
        ExplicitTimes([2, 1, 0, -1]).times(2)
    with pytest.raises(ValueError, match="±1"):
        ExplicitTimes([3, 1, 0, -1])
    with pytest.raises(ValueError, match="end at -1"):
        check_times([3, 2, 1], 4)


def test_jump_schedule_object_matches_function():
    assert JumpSchedule().times(250) == jump_times()
    assert JumpSchedule().network_calls(250) == 2410
    assert JumpSchedule().times(50) == jump_times(t_T=50)  # t_T defaults to every respaced step
    assert JumpSchedule(t_T=20).times(50)[0] == 19


def test_plot_writes_png(tmp_path):
    path = tmp_path / "t.png"
    plot_times(jump_times(t_T=20, jump_length=5, jump_n_sample=3), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_linear_and_cosine_betas():
    b = linear_betas(1000)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    assert linear_betas(250)[-1] == pytest.approx(0.08)  # scaled to span the same process
    c = cosine_betas(1000)
    alpha_bar = np.cumprod(1 - c)
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert alpha_bar[499] == pytest.approx(f(0.5) / f(0.0), rel=1e-6)
    assert c.max() <= 0.999


def test_respacing_even_and_sections():
    kept = space_timesteps(1000, "250")
    assert len(kept) == 250 and kept[0] == 0 and kept[-1] == 999
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    sections = space_timesteps(300, "10,15,20")
    assert len(sections) == 45
    assert sum(s < 100 for s in sections) == 10 and sum(100 <= s < 200 for s in sections) == 15
    assert space_timesteps(1000, "") == list(range(1000))
    with pytest.raises(ValueError, match="cannot divide"):
        space_timesteps(10, "20")


def guided_diffusion_space_timesteps(num_steps, counts):
    """Independent transcription of guided-diffusion's respace.space_timesteps (section lists):
    equal sections (the first num_steps % len(counts) one longer), in each a float position that
    starts at 0 and grows by (size-1)/(count-1) per kept step, rounded half to even."""
    kept, offset = set(), 0
    for i, count in enumerate(counts):
        size = num_steps // len(counts) + (1 if i < num_steps % len(counts) else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        step = (size - 1) / (count - 1) if count > 1 else 1
        position, taken = 0.0, 0
        while taken < count:
            kept.add(offset + round(position))
            position = position + step
            taken += 1
        offset += size
    return sorted(kept)


def test_respacing_equals_guided_diffusion_for_every_count():
    mismatches = [
        k for k in range(1, 1001) if space_timesteps(1000, str(k)) != guided_diffusion_space_timesteps(1000, [k])
    ]
    assert mismatches == []
    # counts where round(k * stride) picks other steps than the accumulated stride does
    assert space_timesteps(1000, "21") == guided_diffusion_space_timesteps(1000, [21])
    assert space_timesteps(1000, 21) == space_timesteps(1000, [21]) == space_timesteps(1000, "21")


@pytest.mark.parametrize(
    "sections", ["10,15,20", "7,33", "1,2,3,4", "21,23,31,35", "250,250", "100,1,333", "3,5,7,9,11"]
)
@pytest.mark.parametrize("num_steps", [1000, 300, 4000, 997])
def test_respacing_section_lists_equal_guided_diffusion(sections, num_steps):
    counts = [int(c) for c in sections.split(",")]
    if max(counts) > num_steps // len(counts):  # a section too short for its count: both refuse
        with pytest.raises(ValueError, match="cannot divide"):
            guided_diffusion_space_timesteps(num_steps, counts)
        with pytest.raises(ValueError, match="cannot divide"):
            space_timesteps(num_steps, sections)
    else:
        assert space_timesteps(num_steps, sections) == guided_diffusion_space_timesteps(num_steps, counts)


def test_ddim_respacing_is_the_smallest_constant_stride():
    for count in range(1, 1001):
        strides = [s for s in range(1, 1000) if -(-1000 // s) == count]  # ceil(1000 / s) steps
        if strides:
            assert space_timesteps(1000, f"ddim{count}") == list(range(0, 1000, strides[0]))
        else:
            with pytest.raises(ValueError, match="evenly strided"):
                space_timesteps(1000, f"ddim{count}")


def test_respaced_betas_keep_alpha_bar():
    base = linear_betas(1000)
    kept = space_timesteps(1000, "25")
    betas, tmap = respace_betas(base, kept)
    assert tmap == kept
    np.testing.assert_allclose(np.cumprod(1 - betas), np.cumprod(1 - base)[kept], rtol=1e-12)


def test_schedule_command_reads_the_eval_configs(tmp_path, capsys):
    import os

    from repaint_pl.schedules import main

    config = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "schedule", "late.yaml")
    times = main(["--config", config, "--plot", str(tmp_path / "late.png")])
    assert count_transitions(times) == (2410, 2160) and (tmp_path / "late.png").exists()
    assert "2410 network calls" in capsys.readouterr().out
