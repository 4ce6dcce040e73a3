"""What scoring writes besides the numbers: result grids (a header naming the columns over rows of original |
masked | result, each picture enlarged by an integer factor between 2-pixel white borders), the summary's note on
`seconds`, and the note when FID/KID's optional package is missing."""

import os

import numpy as np
from PIL import Image

from repaint_pl.scoring import GRID_COLUMNS, GRID_PADDING, output_dirs, write_grids

SIDE, ZOOM = 32, 4  # 32² pictures are enlarged 4× (to 128, repaint_pl.callbacks.writer.enlarge)


def results_folder(root: str, names: list[str]) -> dict[str, np.ndarray]:
    """Random pictures under every output kind; returns {kind/name: [H, W, 3] uint8}."""
    rng, pictures = np.random.default_rng(0), {}
    for kind, folder in output_dirs(root).items():
        for name in names:
            os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
            pictures[f"{kind}/{name}"] = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
            Image.fromarray(pictures[f"{kind}/{name}"]).save(os.path.join(folder, name))
    return pictures


def test_grid_rows_hold_the_pictures_under_a_labelled_header(tmp_path):
    names = ["thick/a.png", "thick/b.png"]
    pictures = results_folder(str(tmp_path), names)
    written = write_grids(output_dirs(str(tmp_path)), names, str(tmp_path))
    grid = np.asarray(Image.open(written["thick"]).convert("RGB"))
    tile, step = SIDE * ZOOM, SIDE * ZOOM + GRID_PADDING
    body = len(names) * step + GRID_PADDING
    header = grid.shape[0] - body
    assert grid.shape[1] == len(GRID_COLUMNS) * step + GRID_PADDING and header > 10
    for r, name in enumerate(names):
        for c, (kind, _) in enumerate(GRID_COLUMNS):
            y, x = header + GRID_PADDING + r * step, GRID_PADDING + c * step
            enlarged = np.kron(pictures[f"{kind}/{name}"], np.ones((ZOOM, ZOOM, 1), dtype=np.uint8))
            np.testing.assert_array_equal(grid[y : y + tile, x : x + tile], enlarged)
    # the header: dark text over each column, nothing over the borders, a different word per column
    labels = [grid[:header, GRID_PADDING + c * step : GRID_PADDING + c * step + tile] for c in range(3)]
    assert all((label < 100).any() for label in labels)
    assert (grid[:header, :GRID_PADDING] == 255).all() and (grid[:header, tile + 2 : tile + 4] == 255).all()
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])


def test_summary_says_what_seconds_measure():
    from repaint_pl.scoring import SECONDS_NOTE, markdown_table, summarize

    rows = [{"name": f"thick/{n}.png", "mask_type": "thick", "psnr": 20.0, "seconds": 1.5} for n in "ab"]
    assert SECONDS_NOTE in markdown_table(summarize(rows, []))
    assert SECONDS_NOTE not in markdown_table(summarize([{**r, "seconds": ""} for r in rows], []))


def test_fid_without_torch_fidelity_is_a_note_naming_the_extra(tmp_path, monkeypatch):
    """FID/KID is optional (the ``fid`` extra): without torch-fidelity the run notes how to install it."""
    import torchmetrics.image.fid

    from repaint_pl import scoring

    monkeypatch.delenv(scoring.NO_DOWNLOAD_ENV, raising=False)
    monkeypatch.setattr(torchmetrics.image.fid, "_TORCH_FIDELITY_AVAILABLE", False)
    notes: list[str] = []
    assert scoring.fid_per_type({}, [], [], notes) == {}
    assert notes == [f"FID/KID skipped: {scoring.FID_EXTRA}"]
