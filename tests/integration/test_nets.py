"""ADM networks: released architectures, strict checkpoint round trips, one-line errors, fp16 semantics."""

import pytest
import torch
from conftest import TINY, randomize

from repaint_pl.nets import CheckpointError, ClassifierConfig, UNetConfig, load_weights, read_checkpoint

# Parameter tensors and parameters of guided-diffusion's create_model / create_classifier with the
# released flags (counted with the original code; the key names and shapes were compared one by one).
RELEASED = {
    "celeba256": (566, 552_814_086),
    "places256": (566, 552_814_086),
    "imagenet256": (567, 553_838_086),
    "imagenet256_uncond": (566, 552_814_086),
    "imagenet64": (541, 295_904_454),
}


@pytest.mark.parametrize("preset", sorted(RELEASED))
def test_released_unet_architectures(preset):
    with torch.device("meta"):
        state = UNetConfig(preset=preset).build().state_dict()
    assert (len(state), sum(v.numel() for v in state.values())) == RELEASED[preset]
    assert ("label_emb.weight" in state) == UNetConfig(preset=preset).flags()["class_cond"]
    assert state["out.2.weight"].shape[0] == 6  # learned variance: ε and v for 3 channels


@pytest.mark.parametrize("preset,tensors", [("imagenet256", 249), ("imagenet64", 307)])
def test_released_classifier_architectures(preset, tensors):
    with torch.device("meta"):
        state = ClassifierConfig(preset=preset).build().state_dict()
    assert len(state) == tensors and state["out.2.c_proj.weight"].shape[0] == 1000


@pytest.mark.parametrize("preset", sorted(RELEASED))
def test_strict_round_trip_at_reduced_width(preset, tmp_path):
    cfg = UNetConfig(preset=preset, num_channels=64, use_fp16=False)
    net = randomize(cfg.build())
    path = str(tmp_path / "w.pt")
    torch.save(net.state_dict(), path)
    fresh = cfg.build()
    load_weights(fresh, read_checkpoint(path), path)
    for (k, a), b in zip(net.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k


def test_mismatched_file_gives_one_line_error(tmp_path):
    path = str(tmp_path / "celeba_small.pt")
    torch.save(UNetConfig(preset="celeba256", num_channels=64).build().state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_weights(UNetConfig(preset="imagenet256", num_channels=64).build(), read_checkpoint(path), path)
    msg = str(err.value)
    assert "\n" not in msg and path in msg and "missing keys label_emb.weight" in msg
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(UNetConfig(preset="celeba256", num_channels=128).build(), read_checkpoint(path), path)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt: not a readable PyTorch checkpoint"):
        read_checkpoint(str(bad))
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(str(tmp_path / "none.pt"))


def test_fp16_torso_like_guided_diffusion():
    net = randomize(UNetConfig(**TINY, use_fp16=True).build())
    assert net.input_blocks[0][0].weight.dtype == torch.float16
    assert net.input_blocks[1][0].emb_layers[1].weight.dtype == torch.float32  # linear layers stay fp32
    assert net.input_blocks[1][0].in_layers[0].weight.dtype == torch.float32  # so do norms
    assert net.out[2].weight.dtype == torch.float32
    out = net(torch.randn(2, 3, 32, 32), torch.tensor([3, 900]))
    assert out.dtype == torch.float32 and out.shape == (2, 6, 32, 32)


def test_sdpa_attention_matches_einsum():
    net = randomize(UNetConfig(preset="tiny", use_new_attention_order=True).build())
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 500])
    with torch.no_grad():
        ref = net(x, t)
        net.set_attention_backend("sdpa")
        torch.testing.assert_close(net(x, t), ref, atol=1e-4, rtol=1e-4)


def test_class_conditional_net_needs_labels():
    net = UNetConfig(**TINY, class_cond=True).build()
    with pytest.raises(ValueError, match="class-conditional"):
        net(torch.randn(1, 3, 32, 32), torch.tensor([1]))
    assert net(torch.randn(2, 3, 32, 32), torch.tensor([1, 2]), torch.tensor([5, 999])).shape == (2, 6, 32, 32)


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="net.preset: unknown preset 'celeb'"):
        UNetConfig(preset="celeb").build()
