#!/bin/bash
# RePaint over a dataset on several machines without SLURM: run this on every node with its NODE_RANK.
#   MASTER_ADDR=node0 NODE_RANK=0 bash scripts/torchrun_eval.sh     # on node 0
#   MASTER_ADDR=node0 NODE_RANK=1 bash scripts/torchrun_eval.sh     # on node 1
# Lightning picks up the torchrun (torchelastic) environment; outputs must go to a shared filesystem.
set -euo pipefail
NNODES=${NNODES:-2}
GPUS=${GPUS:-4}
.venv/bin/torchrun --nnodes "$NNODES" --nproc_per_node "$GPUS" --node_rank "$NODE_RANK" \
  --master_addr "$MASTER_ADDR" --master_port "${MASTER_PORT:-29500}" eval.py \
  --config configs/model/imagenet256.yaml --config configs/data/imagenet256.yaml --config configs/masks/thick.yaml \
  --ckpt 256x256_diffusion.pt --classifier_ckpt 256x256_classifier.pt \
  --devices "$GPUS" --num_nodes "$NNODES" --accelerator gpu \
  --writer.out_dir results/imagenet256_thick
