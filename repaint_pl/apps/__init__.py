"""Applications built on the library: each imports ``repaint_pl`` and nothing in the library imports them.

* ``studio``: the local web page (``python -m repaint_pl.apps.studio``);
* ``sweep``: one eval.py run per point of a grid of config values (``python -m repaint_pl.apps.sweep``);
* ``exact``: the exact yardstick for inpainting samplers (``python -m repaint_pl.apps.exact [texture]``);
* ``bench``, ``bench_latent``: timings against diffusers (``python -m repaint_pl.apps.bench``);
* ``tiny``: tiny random diffusers pipelines (tests, benchmarks);
* ``cli``: the command-line bits the apps share (parsers, common options, one-line errors);
* ``measure``: what they measure alike (time on a device, seam bands, distances between fills).
"""
