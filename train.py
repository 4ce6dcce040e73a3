"""Train a DDPM: ``python train.py --config configs/train/<name>.yaml``."""

from repaint_pl.commands import train_command

if __name__ == "__main__":
    train_command()
