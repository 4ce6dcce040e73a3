"""An exact yardstick for inpainting samplers: priors whose ideal denoiser and true posterior are known.

    python -m repaint_pl.apps.exact --out results/exact             # the benchmark: CSV, summary, plot
    python -m repaint_pl.apps.exact texture --out results/texture   # the same samplers on the texture model

* ``priors``: mixtures of stationary Gaussian fields and their ideal denoiser (``ExactDenoiser``);
* ``posterior``: the exact conditional of the unknown pixels given the known ones, and ``score``;
* ``benchmark``: every sampler on every prior, size and mask type (in a pool of processes with ``jobs``);
* ``report``: the summary, the fast sampler against the paper's schedule, the plot, the files;
* ``texture``: the same question on the shipped texture model (no exact posterior: fill errors);
* ``__main__``: the command line.
"""
