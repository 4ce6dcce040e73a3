"""RePaint inpainting over a dataset: ``python eval.py --config configs/... --ckpt MODEL.pt --devices 4``."""

from repaint_pl.commands import eval_command

if __name__ == "__main__":
    eval_command()
