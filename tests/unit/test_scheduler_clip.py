"""Whether a diffusers scheduler config clips x0: its own ``clip_sample``, else its class' default."""

import pytest

from repaint_pl.pretrained import diffusion_from_scheduler

pytest.importorskip("diffusers")


@pytest.mark.parametrize(
    "config, clips",
    [
        ({"_class_name": "DDPMScheduler"}, True),  # DDPM and DDIM clip unless told not to
        ({"_class_name": "DDIMScheduler"}, True),
        ({}, True),  # no class: DDPM's default, as before
        ({"_class_name": "EulerDiscreteScheduler"}, False),  # SDXL's: no such option, nothing clipped
        ({"_class_name": "PNDMScheduler"}, False),
        ({"_class_name": "DDPMScheduler", "clip_sample": False}, False),  # the config's own value wins
        ({"_class_name": "EulerDiscreteScheduler", "clip_sample": True, "clip_sample_range": 2.0}, True),
        ({"_class_name": "NoSuchScheduler"}, True),
    ],
)
def test_clip_from_the_config_or_its_class_default(config, clips):
    _, clip = diffusion_from_scheduler(config, 10)
    assert (clip is not None) == clips
    if clips:
        assert clip == config.get("clip_sample_range", 1.0)
