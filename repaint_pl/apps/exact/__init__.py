"""An exact yardstick for inpainting samplers: priors whose ideal denoiser and true posterior are known.

    python -m repaint_pl.apps.exact --out results/exact             # the benchmark: CSV, summary, plot
    python -m repaint_pl.apps.exact prior --out results/prior       # nothing known: is the prior reproduced?
    python -m repaint_pl.apps.exact gmm --out results/gmm           # MCGdiff's mixture (inpainting case)
    python -m repaint_pl.apps.exact texture --out results/texture   # the same samplers on the texture model

* ``priors``: mixtures of stationary Gaussian fields (FFT-diagonal), dense Gaussian mixtures (the fresh priors
  and MCGdiff's 25-component mixture) and their ideal denoiser for a DDPM (ε) or the rectified flow (velocity)
  (``ExactDenoiser``);
* ``posterior``: the exact conditional of the unknown pixels given the known ones, and ``score``;
* ``metrics``: the proper divergences (KL of the fitted Gaussian, sliced W₂, energy distance, mode TV) and the spread;
* ``benchmark``: every sampler on every prior, size, mask type (``none``: nothing known, the prior itself) and
  model family (in a pool of processes with ``jobs``);
* ``report``: the summary with each metric against its Monte Carlo floor, the fast sampler against the paper's
  schedule, the prior-reproduction table, the plot, the files;
* ``gmm``: MCGdiff's Gaussian-mixture benchmark in its inpainting special case;
* ``texture``: the same question on the shipped texture model (no exact posterior: fill errors);
* ``__main__``: the command line.
"""
