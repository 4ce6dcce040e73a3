"""The benchmark: every sampler on every prior, size and mask type, against the exact posterior.

``benchmark`` runs the (prior, size) settings in sequence or in a pool of processes; the rows do not
depend on the number of processes (each setting's samples come from its own seeds).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from repaint_pl.diffusion import DiffusionConfig, NoiseProcess
from repaint_pl.flow import FlowConfig
from repaint_pl.masks import keep_mask
from repaint_pl.sampling import (
    CoarseTravelSampler,
    DDIMRePaintSampler,
    DDNMSampler,
    DiffPIRSampler,
    LanPaintSampler,
    RePaintSampler,
    Sampler,
    SMCSampler,
)
from repaint_pl.schedules import JumpSchedule

from .posterior import posterior, score
from .priors import ALL_PRIORS, BatchNoise, ExactDenoiser

PROCESSES = ("ddpm", "flow")  # the model families: a DDPM (ε output) or the rectified flow (velocity output)


@dataclass(frozen=True)
class Contender:
    """One point of the benchmark: a sampler, the respaced steps it runs on and its RePaint time table."""

    family: str
    sampler: Sampler
    steps: int = 250
    jump_length: int = 1
    jump_n_sample: int = 1
    name: str = ""  # a label that replaces the generated one
    variance: str = "fixed_small"  # of p(x_{t-1} | x_t): σ̃² (fixed_small) or β (fixed_large)

    def diffusion(self, process: str = "ddpm") -> NoiseProcess:
        """The noise process: the released models' (linear β over 1000 steps) respaced to ``steps``, or
        (``process="flow"``) the rectified flow of SD3 on ``steps`` levels (unshifted σ grid from 1)."""
        if process == "flow":
            return FlowConfig(steps=self.steps).build()
        return DiffusionConfig(
            steps=1000, noise_schedule="linear", timestep_respacing=str(self.steps), variance=self.variance
        ).build()

    def runs_on(self, process: str) -> bool:
        """Whether this point exists for ``process`` (the flow has one reverse variance: no σ²=β variant)."""
        return process == "ddpm" or self.variance == "fixed_small"

    def times(self) -> list[int]:
        return JumpSchedule(jump_length=self.jump_length, jump_n_sample=self.jump_n_sample).times(self.steps)

    @property
    def calls(self) -> int:
        return self.sampler.network_calls(self.times())

    @property
    def label(self) -> str:
        if self.name:
            return f"{self.family} ({self.name})"
        travel = f", jumps {self.jump_length}×{self.jump_n_sample}" if self.jump_n_sample > 1 else ""
        return f"{self.family} ({self.steps} steps{travel})"


PAPER = Contender("RePaint", RePaintSampler(), 250, 10, 10)
FAST = Contender("CoarseTravel (ours)", CoarseTravelSampler(), name="13 levels q², jumps 1×40")


def contenders() -> list[Contender]:
    """The samplers compared, from cheap to the paper's 2410 calls."""
    coarse_only = CoarseTravelSampler(50, 2, 10, spacing=1.0, variance="posterior")
    return [
        PAPER,
        Contender("RePaint σ²=β", RePaintSampler(), 250, 10, 10, variance="fixed_large"),
        Contender("RePaint", RePaintSampler(), 250, 10, 5),
        Contender("RePaint", RePaintSampler(), 250, 10, 2),
        Contender("no resampling", RePaintSampler(), 50),
        Contender("no resampling", RePaintSampler(), 250),
        Contender("no resampling", RePaintSampler(), 1000),  # the unrespaced chain: is σ̃² narrow only on coarse grids?
        Contender("DDIM-RePaint η=0", DDIMRePaintSampler(eta=0.0), 100, 5, 5),
        Contender("DDNM", DDNMSampler(), 250),
        Contender("DDNM", DDNMSampler(), 100, 5, 5),
        Contender("DiffPIR", DiffPIRSampler(), 100),
        Contender("DiffPIR", DiffPIRSampler(), 480),
        Contender("coarse grid only", coarse_only, name="50 even levels, jumps 2×10, σ̃²"),
        Contender("CoarseTravel (ours)", CoarseTravelSampler(jump_n_sample=20), name="13 levels q², jumps 1×20"),
        FAST,
        Contender(
            "CoarseTravel, analytic var. at every level",
            CoarseTravelSampler(25, 1, 20, analytic_min_alpha_bar=0.0),
            name="25 levels q², jumps 1×20",
        ),
        Contender(
            "CoarseTravel, analytic var. at every level",
            CoarseTravelSampler(analytic_min_alpha_bar=0.0),
            name="13 levels q², jumps 1×40",
        ),
        Contender("LanPaint", LanPaintSampler(steps=50), name="50 levels × (1 + 5 thinking)"),
        Contender("LanPaint", LanPaintSampler(steps=80, thinking=5), name="80 levels × (1 + 5 thinking)"),
        Contender("LanPaint", LanPaintSampler(steps=80, thinking=14), name="80 levels × (1 + 14 thinking)"),
        Contender("LanPaint", LanPaintSampler(steps=240, thinking=9), name="240 levels × (1 + 9 thinking)"),
        Contender("SMC", SMCSampler(), name="8 particles, 50 levels"),
        Contender("SMC", SMCSampler(particles=16, steps=150), name="16 particles, 150 levels"),
        Contender("SMC twisted", SMCSampler(twist=True), name="8 particles, 50 levels"),
        Contender(
            "SMC twisted",
            SMCSampler(particles=16, steps=150, variance="analytic", twist=True),
            name="16 particles, 150 levels, analytic var.",
        ),
    ]


NOTHING_KNOWN = "none"  # the mask with no known pixel: the samplers must reproduce the prior


def mask_for(kind: str, shape: Sequence[int], seed: int) -> Tensor:
    """The keep mask ``shape`` (1 = known) of a paper mask type scaled to the size, or ``none``."""
    if kind == NOTHING_KNOWN:
        return torch.zeros(tuple(shape))
    return keep_mask(kind, shape[-1], seed=seed, image_id=0).expand(tuple(shape)).contiguous()


@dataclass
class Setting:
    """A prior at one size, one known image (a prior draw) and mask types scaled to the size, for one model
    family (``process``: ddpm or flow).  ``prior`` and ``keeps`` replace the named prior and masks (the GMM)."""

    prior_name: str
    size: int
    masks: Sequence[str]
    seed: int = 0
    process: str = "ddpm"
    prior: object = None
    keeps: Optional[list[Tensor]] = None
    nll: bool = True  # the excess NLL (a secondary column: its entropy costs 8000 log densities per mask)

    def __post_init__(self):
        if self.prior is None:
            self.prior = ALL_PRIORS[self.prior_name](self.size)
        self.image = self.prior.sample(1, torch.Generator().manual_seed(self.seed))[0].float()  # [C, H, W]
        if self.keeps is None:
            self.keeps = [mask_for(kind, self.prior.shape, self.seed) for kind in self.masks]
        self.posteriors = [posterior(self.prior, self.image, keep) for keep in self.keeps]
        g = torch.Generator().manual_seed(self.seed + 1)
        self.entropies = [post.entropy(g) if self.nll else float("nan") for post in self.posteriors]

    @property
    def label(self) -> str:
        """The prior's name in the tables (flow settings marked)."""
        return self.prior_name if self.process == "ddpm" else f"{self.prior_name} (flow)"

    def unknown(self, samples: Tensor, j: int) -> Tensor:
        """The unknown pixels ``[N, m]`` of samples ``[N, C, H, W]`` under mask ``j``."""
        return samples.flatten(1)[:, self.keeps[j].flatten() < 0.5]

    def run(self, contender: Contender, n: int, seed: int) -> tuple[list[Tensor], float]:
        """``n`` samples per mask type from one sampler (all masks in one batch); and the seconds taken."""
        d = contender.diffusion(self.process)
        model_fn, _ = ExactDenoiser(self.prior, d).bind()
        x0 = self.image.expand(len(self.masks) * n, -1, -1, -1).contiguous()
        keep = torch.stack(self.keeps).repeat_interleave(n, dim=0)
        start = time.perf_counter()
        with torch.no_grad():
            out = contender.sampler(model_fn, x0, keep, contender.times(), d, BatchNoise(seed, len(x0)), clip_x0=False)
        return list(out.split(n)), time.perf_counter() - start

    def exact_samples(self, j: int, n: int, seed: int) -> Tensor:
        return self.posteriors[j].sample(n, torch.Generator().manual_seed(seed))

    def reference(self, j: int, n: int) -> Tensor:
        """The exact draws that the sample-based divergences compare with (seeds no other draws use)."""
        return self.exact_samples(j, n, 7919 * (self.seed + 1) + j)

    def row(self, j: int, name: str, family: str, calls: int, samples_u: Tensor, seconds: float) -> dict:
        ref = self.reference(j, samples_u.shape[0])
        metrics = score(samples_u, self.posteriors[j], self.entropies[j], ref)
        return dict(
            prior=self.label,
            process=self.process,
            size=self.size,
            mask=self.masks[j],
            sampler=name,
            family=family,
            calls=calls,
            seconds=round(seconds, 2),
            samples=samples_u.shape[0],
            unknown=samples_u.shape[1],
            mode_weights=" ".join(f"{w:.3f}" for w in self.posteriors[j].log_weights.exp().tolist()),
            **metrics,
        )


def core_contenders() -> list[Contender]:
    """The paper's schedule, the fast sampler, one point of each other family, and every point of a family
    added since (for large sizes and quick runs)."""
    keep = (
        "RePaint (250 steps, jumps 10×10)",
        "no resampling (250 steps)",
        "DDNM (100 steps, jumps 5×5)",
        "DiffPIR (100 steps)",
        FAST.label,
    )
    known = {"RePaint", "RePaint σ²=β", "no resampling", "DDIM-RePaint η=0", "DDNM", "DiffPIR", "coarse grid only",
             "CoarseTravel (ours)", "CoarseTravel, analytic var. at every level"}
    return [c for c in contenders() if c.label in keep or c.family not in known]  # new families: always


def sample_count(setting: "Setting", n: int, w2_factor: float) -> int:
    """Samples per mask for ``setting``: ``n``, raised for a Gaussian prior to ``w2_factor`` × the largest
    number d of unknown pixels (and at least d + 1), so the sample covariance behind the KL and W2 estimates
    has full rank.  The estimate's upward bias grows like d/N; below N = d it swamps the differences between
    samplers, above it shrinks (it never vanishes: the "exact posterior" rows show it)."""
    if setting.prior.components > 1 or not w2_factor:
        return n
    unknown = max(int((keep.flatten() < 0.5).sum()) for keep in setting.keeps)
    return max(n, math.ceil(w2_factor * unknown), unknown + 1)


def benchmark_setting(
    size: int,
    prior_name: str,
    masks: Sequence[str],
    n: int,
    seed: int = 0,
    chosen: Optional[Sequence[Contender]] = None,
    log=print,
    core_from: int = 0,
    w2_factor: float = 1.5,
    process: str = "ddpm",
) -> list[dict]:
    """The rows of one (prior, size, process): the exact posterior's own samples (the Monte Carlo floor) and
    each sampler."""
    setting = Setting(prior_name, size, masks, seed, process)
    default = core_contenders() if core_from and size >= core_from else contenders()
    return setting_rows(setting, sample_count(setting, n, w2_factor), chosen or default, seed, log)


TOLERANCE_METRICS = ("kl", "sw", "energy", "mean_err")  # the floor's Monte Carlo tolerance: ``<metric>_tol``
FLOOR_REPLICATES = 16  # independent sets of exact draws behind each tolerance
# one-sided 99.9% prediction bound for one more set from R = 16 (Student t, 15 degrees of freedom):
# t_0.999(15)·√(1 + 1/16); an exact sampler exceeds a metric's tolerance with probability 0.1%
PREDICTION_FACTOR = 3.7328 * (1 + 1 / FLOOR_REPLICATES) ** 0.5


def floor_tolerance(setting: Setting, j: int, n: int, replicates: int = FLOOR_REPLICATES) -> dict[str, float]:
    """``<metric>_tol`` for mask ``j``: the one-sided 99.9% prediction bound (mean + ``PREDICTION_FACTOR`` standard
    deviations) of each metric over ``replicates`` sets of ``n`` independent exact draws (seeds no other draws
    use), scored against the same reference as every sampler: one more set of exact draws stays below it with
    probability 0.999.  A sampler at or below it cannot be told from exact draws by that metric."""
    values: dict[str, list[float]] = {m: [] for m in TOLERANCE_METRICS}
    for k in range(replicates):
        draws = setting.exact_samples(j, n, 104729 * (setting.seed + 1) + 101 * (k + 1) + j)
        row = setting.row(j, "", "exact", 0, draws, 0.0)
        for m in TOLERANCE_METRICS:
            values[m].append(float(row[m]))
    return {f"{m}_tol": _prediction_bound(v) for m, v in values.items()}


def _prediction_bound(values: list[float]) -> float:
    """Mean + ``PREDICTION_FACTOR`` sample standard deviations; inf or nan when a value is (KL of fewer draws
    than pixels: inf)."""
    if any(math.isinf(v) or math.isnan(v) for v in values):
        return math.inf if any(math.isinf(v) for v in values) else math.nan
    return float(np.mean(values) + PREDICTION_FACTOR * np.std(values, ddof=1))


def setting_rows(setting: Setting, n: int, chosen: Sequence[Contender], seed: int, log=print) -> list[dict]:
    """``n`` exact draws per mask (the floor: independent of the reference draws), then each contender that
    runs on the setting's process; every row carries its mask's floor tolerance (``floor_tolerance``)."""
    rows = []
    tolerances = [floor_tolerance(setting, j, n) for j in range(len(setting.keeps))]
    for j in range(len(setting.keeps)):
        exact = setting.exact_samples(j, n, seed + 2 + j)
        rows.append(dict(setting.row(j, "exact posterior", "exact", 0, exact, 0.0), **tolerances[j]))
    for c in chosen:
        if not c.runs_on(setting.process):
            continue
        samples, seconds = setting.run(c, n, seed + 3)
        for j in range(len(setting.keeps)):
            row = setting.row(j, c.label, c.family, c.calls, setting.unknown(samples[j], j), seconds)
            rows.append(dict(row, **tolerances[j]))
        size = f"{setting.size}²" if isinstance(setting.size, int) else setting.size
        log(f"{setting.label} {size}  {c.label}: {c.calls} calls, {n} samples per mask, {seconds:.1f} s")
    return rows


def _setting_job(job: tuple[tuple, dict, int]) -> list[dict]:
    """One (prior, size) in a worker process (the rows are the same as in sequence with as many threads)."""
    args, extra, threads = job
    torch.set_num_threads(threads)
    return benchmark_setting(*args, log=lambda line: print(line, flush=True), **extra)


def benchmark(
    sizes: Sequence[int],
    priors: Sequence[str],
    masks: Sequence[str],
    n: int,
    seed: int = 0,
    chosen: Optional[Sequence[Contender]] = None,
    log=print,
    core_from: int = 0,
    w2_factor: float = 1.5,
    jobs: int = 1,
    processes: Sequence[str] = ("ddpm",),
) -> list[dict]:
    """All rows, per (prior, size, process) in the order of ``sizes``, ``priors`` then ``processes``; ``jobs``
    > 1 runs the settings in that many processes, each with this process's number of torch threads
    (each setting's samples come from its own seeds, so the rows do not depend on ``jobs``; the workers
    print their progress instead of calling ``log``)."""
    work = [(size, p, masks, n, seed, chosen) for size in sizes for p in priors]
    extra = [dict(core_from=core_from, w2_factor=w2_factor, process=pr) for pr in processes]
    work, extras = [w for w in work for _ in extra], [e for _ in work for e in extra]
    if jobs <= 1:
        return [row for args, e in zip(work, extras) for row in benchmark_setting(*args, log=log, **e)]
    import multiprocessing

    # the longest settings first, so the pool does not end with one process working alone
    order = sorted(range(len(work)), key=lambda k: -work[k][0])
    threads = torch.get_num_threads()
    with multiprocessing.get_context("spawn").Pool(min(jobs, len(work))) as pool:
        results = pool.map(_setting_job, [(work[k], extras[k], threads) for k in order], chunksize=1)
    by_index = dict(zip(order, results))
    return [row for k in range(len(work)) for row in by_index[k]]
