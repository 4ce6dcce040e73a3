#!/bin/bash
# RePaint over a dataset on 2 nodes × 4 GPUs with SLURM (Lightning reads the SLURM environment).
#   sbatch scripts/slurm_eval.sh
# Each input is processed once across all 8 processes; a requeued or restarted job skips finished
# images (same command, same --writer.out_dir).  Adjust the account/partition lines for your cluster.
#SBATCH --job-name=repaint-eval
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
set -euo pipefail
cd "${SLURM_SUBMIT_DIR}"
srun .venv/bin/python eval.py \
  --config configs/model/celeba256.yaml --config configs/data/celeba256.yaml --config configs/masks/paper.yaml \
  --ckpt celeba256_250000.pt --data.init_args.image_path data/celeba256 \
  --devices 4 --num_nodes 2 --accelerator gpu --trainer.precision bf16-mixed --model.channels_last true \
  --writer.out_dir results/celeba256_paper
