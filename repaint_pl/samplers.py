"""Old import path of ``repaint_pl.sampling`` (kept so that existing configs and code still load)."""

from .sampling import *  # noqa: F401,F403
