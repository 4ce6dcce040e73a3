"""Samplers whose answer converges to the exact conditional: LanPaint's Langevin "thinking" and a sequential
Monte Carlo sampler, step policies over the one table walk (``loop.walk``) like every other sampler.

* ``LanPaintSampler`` (Zheng, Lan & Wang, TMLR 2025): at every level, a few underdamped Langevin iterations
  on x_t before the reverse step.  The unknown pixels follow the model's score; the known pixels follow the
  paper's bidirectional guided (BiG) score, pulled to the noised known image and pushed away from the model's
  opinion of them, so that the unknown part is driven to agree with the known one.  Without known pixels the
  iterations leave the model's marginal p_t invariant (exactly for a Gaussian prior with the ideal denoiser).
* ``SMCSampler``: K particles per picture (MCGdiff-style, Cardoso et al., ICLR 2024, for noiseless
  inpainting): the target at level t is p_t(x_t)·g_t(x_t) with g_t = q(x_t^known | known image) the known
  pixels' forward marginal; proposals from the reverse step fused with g_t, weights from the known pixels'
  predictive likelihood, systematic resampling when the effective sample size drops.  As K grows the picked
  particle is a draw from the model's p(x_0 | known pixels).

Both walk ``steps`` evenly spaced levels of the respaced process by default (the model's time table and its
jumps are ignored; ``steps=None`` walks the table's levels), and both read the network through
``steps.predict`` (any ``NoiseProcess``, pixels or latents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional, Sequence

import torch
from torch import Tensor

from ..diffusion import Decoded, NoiseProcess
from ..schedules import count_network_calls
from .loop import Sampler, StepHook, walk
from .policies import coarse_grid
from .steps import (
    Problem,
    ddim_step,
    inject_known,
    known_in_x0,
    posterior_std,
    predict,
    x0_variance,
)  # fmt: skip


def even_levels(steps: Optional[int], times: Sequence[int], process: Optional[NoiseProcess]):
    """(table, level map) of ``steps`` evenly spaced levels walked straight down (at most the table's levels),
    or, for ``steps=None``, the table itself."""
    if steps is None:
        return list(times), None
    count = min(steps, max(times) + 1)
    table = list(range(count - 1, -2, -1))
    return table, (None if process is None else coarse_grid(process.num_timesteps, count, 1.0))


def _check_steps(steps: Optional[int]) -> None:
    if steps is not None and steps < 1:
        raise ValueError(f"sampler.steps={steps} must be a positive number of levels (or null: the time table)")


# --------------------------------------------------------------------------
# LanPaint
# --------------------------------------------------------------------------


class LanPaintSampler(Sampler):
    """LanPaint: Langevin "thinking" iterations at every level, then a reverse step from the x0 prediction
    with the known pixels written in (as DDNM does).

    At level t (x_t = a·x0 + s·ε) the model's score is −ε̂/s.  The Langevin force is, per pixel,
    unknown: −ε̂/s (the model's score); known: (1+λ)·(a·y − x_t)/s² + λ·ε̂/s (the BiG score: the known pixels'
    forward marginal q(x_t | y) with weight 1 + λ, minus λ times the model's score), with y the known image.
    Integrator: BAOAB (Leimkuhler & Matthews) with unit mass, step h = ``step_size``·s (× ``beta`` on the
    known pixels), fresh velocities at each level and friction γ = ``friction``/s (the velocity keeps
    exp(−``friction``·``step_size``) of itself per iteration).  BAOAB samples a Gaussian target's positions
    exactly at any stable step, so without known pixels and with the ideal denoiser of a Gaussian prior the
    iterations leave p_t exactly invariant.  The known region is first injected at level t (RePaint's
    replacement), then ``thinking`` iterations, then a DDIM step with noise scale ``eta`` (0: the ODE step the
    paper uses) from x̂0 with the known pixels written in.

    Network calls per level: 1 + ``thinking`` (the force at the start, one per iteration; the last one also
    gives the reverse step's x0): 80 × (1 + 5) = 480 with the defaults, the smallest of the benchmark's points
    that reproduces every prior with nothing known (50 levels were too narrow on the DDPM Gaussian prior).
    ``steps``: levels walked, evenly spaced (None: the model's time table,
    with its jumps).
    """

    def __init__(
        self,
        steps: Optional[int] = 80,
        thinking: int = 5,
        lambda_: float = 4.0,
        step_size: float = 0.5,
        friction: float = 0.5,
        beta: float = 1.0,
        eta: float = 0.0,
    ):
        _check_steps(steps)
        if thinking < 0:
            raise ValueError(f"sampler.thinking={thinking} must be ≥ 0 (Langevin iterations per level)")
        if not 0 < step_size < 2 or not 0 < beta * step_size * math.sqrt(1 + max(lambda_, 0)) < 2:
            raise ValueError(
                f"sampler.step_size={step_size}, beta={beta}, lambda_={lambda_}: need 0 < step_size < 2 and "
                f"beta·step_size·√(1+λ) < 2 (the Langevin steps' stability)"
            )
        if friction < 0 or lambda_ < 0 or not 0 <= eta <= 1:
            raise ValueError(f"sampler: friction={friction} and lambda_={lambda_} must be ≥ 0, eta={eta} in [0, 1]")
        self.steps, self.thinking, self.lambda_, self.step_size = steps, thinking, lambda_, step_size
        self.friction, self.beta, self.eta = friction, beta, eta

    def grid(self, times: Sequence[int], process: Optional[NoiseProcess]) -> tuple[list[int], Optional[list[int]]]:
        return even_levels(self.steps, times, process)

    def network_calls(self, times: Sequence[int]) -> int:
        return count_network_calls(self.grid(times, None)[0]) * (1 + self.thinking)

    def force(self, p: Problem, x: Tensor, t: int) -> tuple[Tensor, Decoded]:
        """The Langevin force at x_t (the model's score on unknown pixels, the BiG score on known ones) and
        the network's prediction there (one call)."""
        out = predict(p, x, t)
        a, s = p.process.scales(t)
        model_score = -out.eps / s
        known_score = (1 + self.lambda_) * (a * p.x0 - x) / s**2 - self.lambda_ * model_score
        return p.keep_mask * known_score + (1 - p.keep_mask) * model_score, out

    def think(self, p: Problem, x: Tensor, t: int) -> tuple[Tensor, Decoded]:
        """``thinking`` BAOAB iterations at level t: (x_t after them, the prediction at that point)."""
        _, s = p.process.scales(t)
        h = self.step_size * s * (p.keep_mask * self.beta + (1 - p.keep_mask))
        keep = torch.exp(-self.friction * h / s)  # velocity kept by the O step
        force, out = self.force(p, x, t)
        v = p.randn()
        for _ in range(self.thinking):
            v = v + 0.5 * h * force  # B
            x = x + 0.5 * h * v  # A
            v = keep * v + (1 - keep**2).sqrt() * p.randn()  # O
            x = x + 0.5 * h * v  # A
            force, out = self.force(p, x, t)
            v = v + 0.5 * h * force  # B
        return x, out

    def reverse(self, p: Problem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        d = p.process
        x = inject_known(d, x, p.x0, p.keep_mask, t, p.randn())  # RePaint: the known region at level t
        x, out = self.think(p, x, t)
        hat = known_in_x0(out, d, x, t, p.x0, p.keep_mask)
        return ddim_step(d, hat, t, t_prev, self.eta, p.randn()), out.x0


# --------------------------------------------------------------------------
# Sequential Monte Carlo
# --------------------------------------------------------------------------


def gaussian_log_density(x: Tensor, mean: Tensor, var: Any, where: Tensor) -> Tensor:
    """Σ over the pixels at ``where`` of log N(x; mean, var), per particle: ``[B, K]`` for ``x`` or ``mean``
    ``[B, K, C, H, W]`` and ``where`` ``[B, 1, C, H, W]``; ``var`` broadcasts to them (a number, one per particle
    ``[B, K, 1, 1, 1]``, or one per pixel)."""
    var = torch.as_tensor(var, dtype=torch.float32, device=x.device)
    terms = (x - mean) ** 2 / var + torch.log(2 * math.pi * var)
    return -0.5 * torch.where(where > 0, terms, torch.zeros_like(terms)).flatten(2).sum(-1)


def incremental_log_weight(
    d: NoiseProcess, x_t: Tensor, mean: Tensor, std: Tensor, y: Tensor, known: Tensor, t: int, t_prev: int,
    noise_var: Any = 0.0,
) -> Tensor:  # fmt: skip
    """log of ∫ p(x_{t'} | x_t) g_{t'}(x_{t'}) dx_{t'} / g_t(x_t) per particle, ``[B, K]`` (t' = ``t_prev``).

    p(x_{t'} | x_t) = N(mean, std²) (the reverse step), g_t(x) = N(x^known; a_t·y, s_t² + a_t²·r²) (what the
    forward process makes of the known values y, observed with noise variance r² = ``noise_var``, 0 for exact
    known pixels): the predictive likelihood of the known values at t' over their likelihood at t.
    ``x_t``, ``mean``: ``[B, K, C, H, W]``; ``y``, ``known``: ``[B, 1, C, H, W]``.
    """
    (a, s), (a_prev, s_prev) = d.scales(t), d.scales(t_prev)
    predictive = gaussian_log_density(a_prev * y, mean, std**2 + s_prev**2 + a_prev**2 * noise_var, known)
    return predictive - gaussian_log_density(x_t, a * y, s**2 + a**2 * noise_var, known)


def inverse_cdf(log_w: Tensor, points: Tensor) -> Tensor:
    """The particle ``[B, J]`` whose interval of the cumulative normalised weights ``log_w`` ``[B, K]`` holds each
    of the ``points`` ``[B, J]`` in [0, 1)."""
    cdf = torch.softmax(log_w.double(), dim=1).cumsum(1)
    points = points.double().to(cdf.device).clamp(max=cdf[:, -1:] * (1 - 1e-12))
    return torch.searchsorted(cdf, points, right=True).clamp(max=log_w.shape[1] - 1)


def systematic_resample(log_w: Tensor, u: Tensor) -> Tensor:
    """Ancestor indices ``[B, K]`` by systematic resampling of the weights ``log_w`` ``[B, K]`` with one uniform
    ``u`` ``[B]`` in [0, 1) per row: particle k is picked for the points (u + j)/K in its cumulative weight."""
    K = log_w.shape[1]
    return inverse_cdf(log_w, (u.double()[:, None] + torch.arange(K, dtype=torch.float64, device=u.device)) / K)


def effective_sample_size(log_w: Tensor) -> Tensor:
    """ESS = 1 / Σ w_k² of the normalised weights, per row ``[B]``."""
    return 1 / torch.softmax(log_w.double(), dim=1).pow(2).sum(1)


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """Rows of particles ``x`` ``[B, K, …]`` picked by ``index`` ``[B, J]``: ``[B, J, …]``."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index.to(x.device)]


@dataclass
class ParticleProblem(Problem):
    """A ``Problem`` with the particle filter's state: K particles per picture and their log weights."""

    particles: int = 1
    log_w: Optional[Tensor] = None  # [B, K]; None until the first reverse step
    ancestors: Optional[Tensor] = None  # [B, K]: the particles the last level's proposals start from
    log_twist: Optional[Tensor] = None  # [B, K]: log h_t of each particle at the last level (twisted SMC)

    @property
    def known(self) -> Tensor:
        """Where the pixels are known, ``[B, 1, C, H, W]`` (soft masks: known where keep > 0.5)."""
        return (self.keep_mask > 0.5).to(self.x0.dtype)[:, None]

    def particle_noise(self) -> Tensor:
        """Standard normal noise ``[B, K, C, H, W]``: sample i's particles from sample i's generator."""
        return self.noise.randn((self.particles, *self.shape))

    def uniform(self) -> Tensor:
        """One uniform number in (0, 1) per picture ``[B]``, from its generator."""
        return torch.special.ndtr(self.noise.randn(()))


TWIST_VARIANCE_FLOOR = 0.01  # twisted SMC: the least x0 variance in ĝ, as a fraction of (s/a)²


class SMCSampler(Sampler):
    """Sequential Monte Carlo inpainting: ``particles`` chains per picture, reweighted by the known pixels.

    Targets π_t(x_t) ∝ p_t(x_t)·g_t(x_t), g_t = N(x_t^known; a_t·y, s_t² + a_t²·r²) (what the forward process
    makes of the known image y, observed with noise std r = ``observation_noise``: 0 for exact known pixels, or
    a number, or one per pixel ``[C, H, W]``), down to level 0, whose s_0 is the smallest noise; the last step
    returns the x0 prediction with y written in (r > 0: reweighted by N(y; x̂0, r²) instead, as MCGdiff's noisy
    linear problems need; ``repaint_pl.apps.exact gmm --noisy`` runs them in the basis of A's SVD).
    Per level, for every particle: one network call gives the reverse step
    N(μ, σ²) (the DDPM posterior mean at the predicted x0, any ``NoiseProcess``; σ² = σ̃², or with
    ``variance="analytic"`` σ̃² + the x0 uncertainty the step carries, see ``kernel``); the
    weight gains the known pixels' predictive likelihood N(a_{t'}·y; μ, σ² + s_{t'}²) over g_t(x_t)
    (``incremental_log_weight``); where the effective sample size falls below ``ess_threshold``·K the
    particles are resampled (systematic, ancestors drawn with μ); the new particle takes the unknown pixels
    from N(μ, σ²) and the known ones from N(μ, σ²)·g_{t'} (the locally optimal proposal, closed form).  At
    the end one particle per picture is drawn by weight.  All random numbers of picture i, its K particles'
    included, come from picture i's generator, so results do not depend on batch size or device count.

    The model function was bound for the B pictures (its conditioning has B rows), so each level calls it
    K times on batches of B (particle k of every picture): ``network_calls`` = K × levels per picture.  A
    branch started from a saved state (``x_start`` ``[B, C, H, W]``) starts all K particles there; step hooks
    see the particle of largest weight.  ``steps``: levels walked, evenly spaced (None: the levels of the
    model's time table, straight down; its jumps are dropped).
    """

    def __init__(
        self,
        particles: int = 8,
        steps: Optional[int] = 50,
        ess_threshold: float = 0.5,
        variance: Literal["posterior", "analytic"] = "posterior",
        observation_noise: Any = 0.0,
        twist: bool = False,
    ):
        _check_steps(steps)
        if not isinstance(twist, bool):
            raise ValueError(f"sampler.twist={twist!r}: expected true or false")
        noise = torch.as_tensor(observation_noise, dtype=torch.float32)
        if not bool(torch.isfinite(noise).all()) or bool((noise < 0).any()):
            raise ValueError(
                f"sampler.observation_noise={observation_noise}: must be ≥ 0 (the known values' noise std)"
            )
        if variance not in ("posterior", "analytic"):
            raise ValueError(f"sampler.variance={variance!r}: expected 'posterior' or 'analytic'")
        if particles < 1:
            raise ValueError(f"sampler.particles={particles} must be ≥ 1")
        if not 0 <= ess_threshold <= 1:
            raise ValueError(f"sampler.ess_threshold={ess_threshold} must lie in [0, 1] (a fraction of the particles)")
        self.particles, self.steps, self.ess_threshold, self.variance = particles, steps, ess_threshold, variance
        self.noise_var = noise**2  # r², a number or one per pixel ([C, H, W]: broadcasts to the pictures)
        self.noisy = bool((noise > 0).any())
        self.twist = twist

    def grid(self, times: Sequence[int], process: Optional[NoiseProcess]) -> tuple[list[int], Optional[list[int]]]:
        if self.steps is None:
            return sorted(set(times), reverse=True), None
        return even_levels(self.steps, times, process)

    def network_calls(self, times: Sequence[int]) -> int:
        return count_network_calls(self.grid(times, None)[0]) * self.particles

    def predict_particles(self, p: ParticleProblem, x: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """(x0, ε) predictions ``[B, K, C, H, W]``: K calls on batches of B (the conditioning's rows)."""
        outs = [predict(p, x[:, k], t) for k in range(x.shape[1])]
        return torch.stack([o.x0 for o in outs], 1), torch.stack([o.eps for o in outs], 1)

    def kernel(self, d: NoiseProcess, x0_pred: Tensor, eps: Tensor, t: int, t_prev: int) -> tuple[Tensor, Tensor]:
        """The reverse step N(μ, σ²) of every particle: μ ``[B, K, C, H, W]``, σ ``[]`` or ``[B, K, 1, 1, 1]``.

        μ is the DDPM posterior mean at the predicted x0; σ² is its variance σ̃² (``variance="posterior"``) or
        σ̃² + c²·Var[x0 | x_t] (``"analytic"``, the x0 uncertainty a long step carries, from ε̂: ``x0_variance``).
        """
        flat = Decoded(x0_pred.flatten(0, 1), eps.flatten(0, 1))
        mean = ddim_step(d, flat, t, t_prev, 1.0, torch.zeros_like(flat.x0)).view_as(x0_pred)
        small = posterior_std(d, t, t_prev) ** 2
        if self.variance == "posterior":
            return mean, small.sqrt()
        (a, s), (a_prev, s_prev) = d.scales(t), d.scales(t_prev)
        c = a_prev - (s_prev**2 - small).clamp(min=0).sqrt() * a / s  # the x0 coefficient of μ at fixed x_t
        x0_var = x0_variance(d, flat.eps, t).view(*x0_pred.shape[:2], 1, 1, 1)
        # pure noise (a flow's first level, a = 0): Tweedie's x0 variance is undefined there; σ̃² alone
        x0_var = torch.where(torch.as_tensor(a).flatten()[0] > 0, x0_var, torch.zeros_like(x0_var))
        return mean, (small + c**2 * x0_var).sqrt()

    def log_twist(self, p: ParticleProblem, x: Tensor, x0_pred: Tensor, eps: Tensor, t: int) -> Tensor:
        """log h_t = log ĝ_t(x_t) − log g_t(x_t) per particle ``[B, K]``: ĝ_t = N(y; x̂0^known, v_t + r²) (v_t the
        x0 variance from ε̂, the mean over the picture's particles), g_t = N(x_t^known; a·y, s² + a²·r²)."""
        d, y, r2 = p.process, p.x0[:, None], self.noise_var.to(x.device)
        (a, s) = d.scales(t)
        # Tweedie's x0 variance, averaged over the picture's particles and floored at 1% of (s/a)² (x0's variance
        # under a flat prior): one particle's estimate from few pixels scatters down to 0, and a ĝ that sharp
        # makes the weights degenerate (a biased answer at any affordable K on a two-pixel problem)
        v = x0_variance(d, eps.flatten(0, 1), t).view(*x.shape[:2], 1, 1, 1).mean(1, keepdim=True)
        v = v.clamp(min=TWIST_VARIANCE_FLOOR * (s / a) ** 2)
        log_h = gaussian_log_density(y, x0_pred, v + r2, p.known) - gaussian_log_density(
            x, a * y, s**2 + a**2 * r2, p.known
        )
        # pure noise (a flow's first level, a = 0): x_t says nothing of y, ĝ_t is flat (and v undefined)
        return torch.where(torch.as_tensor(a).flatten()[0] > 0, log_h, torch.zeros_like(log_h))

    def reweight(
        self, p: ParticleProblem, x: Tensor, mean: Tensor, std: Tensor, t: int, t_prev: int,
        log_twist: Optional[Tensor] = None,
    ) -> None:  # fmt: skip
        """Add the incremental weights (and the twist's change, ``log_twist`` = log h_t(x_t)); resample
        (ancestors in ``p.ancestors``) where the ESS is low."""
        y, (a, s) = p.x0[:, None], p.process.scales(t)
        r2 = self.noise_var.to(x.device)
        if p.log_w is None:  # x_T ~ N(0, I) ≈ p_T: the first target π_T ∝ p_T·g_T
            p.log_w = gaussian_log_density(x, a * y, s**2 + a**2 * r2, p.known)
        p.log_w = p.log_w + incremental_log_weight(p.process, x, mean, std, y, p.known, t, t_prev, r2)
        if log_twist is not None:  # the target becomes p_t·g_t·h_t: in with this level's h, out with the last's
            p.log_w = p.log_w + log_twist - (0 if p.log_twist is None else p.log_twist)
        u = p.uniform()  # drawn at every level, so that no picture's stream depends on the others' weights
        low = effective_sample_size(p.log_w) < self.ess_threshold * p.particles
        identity = torch.arange(p.particles, device=x.device).expand(len(low), -1)
        p.ancestors = torch.where(low[:, None].to(x.device), systematic_resample(p.log_w, u).to(x.device), identity)
        p.log_w = torch.where(low[:, None].to(p.log_w.device), torch.zeros_like(p.log_w), p.log_w)
        if log_twist is not None:
            p.log_twist = _gather(log_twist, p.ancestors)

    def reverse(self, p: ParticleProblem, x: Tensor, t: int, t_prev: int, index: int) -> tuple[Tensor, Tensor]:
        d, y, known = p.process, p.x0[:, None], p.known
        x0_pred, eps = self.predict_particles(p, x, t)
        if t_prev < 0:  # the last step: the x0 prediction, the known image written in (exact known values)
            if p.log_w is None:
                p.log_w = torch.zeros(x.shape[:2], device=x.device)
            if p.log_twist is not None:  # the final target has no twist
                p.log_w = p.log_w - p.log_twist
            if not self.noisy:
                return known * y + (1 - known) * x0_pred, x0_pred
            # noisy known values: the target is p(x0)·N(y; x0, r²), so the prediction is reweighted by it, not
            # pinned; known values with r = 0 are written in as before
            (a, s), r2 = d.scales(t), self.noise_var.to(x.device)
            noisy = known * (r2 > 0)
            p.log_w = p.log_w + gaussian_log_density(y, x0_pred, r2, noisy)
            p.log_w = p.log_w - gaussian_log_density(x, a * y, s**2 + a**2 * r2, noisy)
            exact = known - noisy
            return exact * y + (1 - exact) * x0_pred, x0_pred
        mean, std = self.kernel(d, x0_pred, eps, t, t_prev)
        twist = self.log_twist(p, x, x0_pred, eps, t) if self.twist else None
        self.reweight(p, x, mean, std, t, t_prev, twist)
        mean, x0_pred = _gather(mean, p.ancestors), _gather(x0_pred, p.ancestors)
        std = _gather(std, p.ancestors) if std.dim() else std  # analytic variance: one per particle
        # the locally optimal proposal: N(μ, σ̃²) on unknown pixels, N(μ, σ̃²)·N(a'·y, s'² + a'²r²) on known ones
        a_prev, s_prev = d.scales(t_prev)
        seen = s_prev**2 + a_prev**2 * self.noise_var.to(x.device)
        fused_var = std**2 * seen / (std**2 + seen)
        fused_mean = (seen * mean + std**2 * a_prev * y) / (std**2 + seen)
        z = p.particle_noise()
        x_new = known * (fused_mean + fused_var.sqrt() * z) + (1 - known) * (mean + std * z)
        return x_new, x0_pred

    def pick(self, x: Tensor, log_w: Optional[Tensor], u: Optional[Tensor] = None) -> Tensor:
        """One particle per picture ``[B, C, H, W]`` from ``x`` ``[B, K, C, H, W]``: drawn by weight with the
        uniforms ``u`` ``[B]``, or (``u`` None) the one of largest weight."""
        if log_w is None:
            return x[:, 0]
        index = log_w.argmax(1, keepdim=True) if u is None else inverse_cdf(log_w, u[:, None])
        return _gather(x, index)[:, 0]

    def problem(self, *fields: Any) -> ParticleProblem:
        return ParticleProblem(*fields, particles=self.particles)

    def run(
        self, p: Problem, times: Sequence[int], *, x_start: Optional[Tensor], start_index: int,
        on_step: Optional[StepHook],
    ) -> Tensor:  # fmt: skip
        """The particle filter's walk; one particle per picture at the end (drawn by weight)."""
        if x_start is None:
            x_start = p.particle_noise()
        else:  # a saved state: every particle starts there
            x_start = x_start[:, None].expand(-1, self.particles, *x_start.shape[1:]).contiguous()
        hook = None
        if on_step is not None:

            def hook(state):
                best = self.pick(state.x, p.log_w)
                seen = None if state.x0_pred is None else self.pick(state.x0_pred, p.log_w)
                on_step(replace(state, x=best, x0_pred=seen))

        x = walk(self, p, times, x_start=x_start, start_index=start_index, on_step=hook)
        return self.pick(x, p.log_w, p.uniform())


__all__ = [
    "LanPaintSampler",
    "SMCSampler",
    "ParticleProblem",
    "even_levels",
    "incremental_log_weight",
    "systematic_resample",
    "inverse_cdf",
    "effective_sample_size",
    "gaussian_log_density",
]
