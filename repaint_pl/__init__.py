"""repaint_pl: RePaint (Lugmayr et al., CVPR 2022) inpainting with diffusion models, on PyTorch Lightning."""

__version__ = "0.1.0"
