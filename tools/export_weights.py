"""Export the (EMA) network weights of a train.py checkpoint as a plain state dict.

    python tools/export_weights.py runs/texture/checkpoints/last.ckpt weights/texture32_ema.pt

The result loads like the released guided-diffusion files (``eval.py --ckpt weights.pt`` with the
net and diffusion given by a config, e.g. configs/demo/texture.yaml), and a YAML beside it records
the architecture, the diffusion and the training step it comes from.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import yaml

from repaint_pl.nets.checkpoint import is_lightning_checkpoint, read_checkpoint, sub_state_dict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ckpt")
    p.add_argument("out")
    args = p.parse_args()
    obj = read_checkpoint(args.ckpt)
    if not is_lightning_checkpoint(obj):
        sys.exit(f"error: {args.ckpt}: not a train.py (Lightning) checkpoint")
    state = {k: v.clone() for k, v in sub_state_dict(obj["state_dict"], "net").items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(state, args.out)
    hp = obj.get("hyper_parameters", {})
    info = {
        "from": os.path.basename(args.ckpt),
        "global_step": obj.get("global_step"),
        "ema": "current_model_state" in obj,
        "model": {k: {f: v for f, v in (hp.get(k) or {}).items() if v is not None} for k in ("net", "diffusion")},
    }
    with open(os.path.splitext(args.out)[0] + ".yaml", "w") as f:
        yaml.safe_dump(info, f, sort_keys=False)
    params = sum(v.numel() for v in state.values())
    print(f"{args.out}: {len(state)} tensors, {params:,} parameters, step {info['global_step']}")


if __name__ == "__main__":
    main()
