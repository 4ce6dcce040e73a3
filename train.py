"""Train a DDPM: ``python train.py --config configs/train/<name>.yaml``."""
from repaint_pl.cli import train_main

if __name__ == "__main__":
    train_main()
