"""LPIPS/FID backbones: fetched the normal way (torch.hub) on first use; when that fails, one line and the
metric is skipped while the others are still computed.  The network is replaced by a stub: nothing downloads."""

import os
import urllib.error

import pytest
import torch
import torchvision

from repaint_pl import scoring


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty $TORCH_HOME with downloads allowed; returns the list of URLs torch.hub was asked for."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(scoring.NO_DOWNLOAD_ENV, raising=False)
    return []


def offline(asked):
    def download(url, dst, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    return download


def serving_alexnet(asked):
    """A download that works for AlexNet (random weights of the right shapes) and fails for anything else."""

    def download(url, dst, *args, **kwargs):
        asked.append(url)
        if os.path.basename(url) != os.path.basename(scoring.BACKBONE_FILES["alex"]):
            raise urllib.error.URLError("unreachable")
        torch.save(torchvision.models.alexnet().state_dict(), dst)

    return download


def batch():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 32, 32, generator=g)
    keep = torch.ones(2, 1, 32, 32)
    keep[..., 8:24, 8:24] = 0
    return gt, (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1), keep


def test_failed_download_skips_the_metric_in_one_line(empty_hub, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline(empty_hub))
    scorer = scoring.Scorer(("alex",))
    assert [os.path.basename(u) for u in empty_hub] == ["alexnet-owt-7be5be79.pth"]
    folder = os.path.join(os.environ["TORCH_HOME"], "hub", "checkpoints")
    assert len(scorer.notes) == 1 and "\n" not in scorer.notes[0]
    assert scorer.notes[0].startswith("LPIPS-alex skipped: alex weights unavailable (<urlopen error")
    assert scorer.notes[0].endswith(
        f"put alexnet-owt-7be5be79.pth (from {scoring.BACKBONE_FILES['alex']}) into {folder}"
    )
    rows = scorer.score(*batch())
    assert {"psnr", "psnr_fill", "ssim", "ssim_fill"} == set(rows[0])  # the other metrics are computed


def test_backbone_is_fetched_on_first_use(empty_hub, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", serving_alexnet(empty_hub))
    scorer = scoring.Scorer(("alex",))
    assert scorer.notes == [] and len(empty_hub) == 1
    assert os.path.isfile(scoring.backbone_path("alex"))  # cached where torchvision keeps it
    rows = scorer.score(*batch())
    assert all(r["lpips_alex"] > 0 and r["lpips_alex_fill"] > 0 for r in rows)
    scoring.Scorer(("alex",))
    assert len(empty_hub) == 1  # the second time it is read from disk


def test_no_download_switch_and_fid(empty_hub, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline(empty_hub))
    notes = []
    assert scoring.fid_per_type({}, [], [], notes) == {}
    assert len(notes) == 1 and notes[0].startswith("FID/KID skipped: inception weights unavailable (<urlopen")
    monkeypatch.setenv(scoring.NO_DOWNLOAD_ENV, "1")
    asked_before = len(empty_hub)
    scorer = scoring.Scorer(("vgg",))
    assert len(empty_hub) == asked_before  # not even tried
    assert scorer.notes == [
        f"LPIPS-vgg skipped: {scoring.missing_backbone('vgg', 'downloads disabled by REPAINT_NO_DOWNLOAD')}"
    ]
