"""Train the demo's inpainting model and write it to workflow/ddb/assets/demo_inpainter (committed).

    python scripts/train_demo_inpainter.py            # the committed weights: seed 0, ~25 min on an idle 2-core CPU
    python scripts/train_demo_inpainter.py --unet-steps 500 --out /tmp/inpainter   # a quick look

Not a rule script: the pipeline reads the committed weights (config `inpainting.model: ddb:demo_inpainter`).
"""
import argparse
import logging
from pathlib import Path

from ddb.demo_inpainter import ASSET_DIR, train

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--images", type=int, default=2000)
parser.add_argument("--vae-steps", type=int, default=800)
parser.add_argument("--unet-steps", type=int, default=2500)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--threads", type=int, default=1, help="1 is fastest for these small tensors")
parser.add_argument("--out", type=Path, default=ASSET_DIR)
parser.add_argument("--checkpoint-every", type=int, default=0, help="also save <out>-step<N> every N UNet steps")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
train(seed=args.seed, n_images=args.images, vae_steps=args.vae_steps, unet_steps=args.unet_steps,
      batch_size=args.batch_size, out_dir=args.out, threads=args.threads,
      checkpoint_every=args.checkpoint_every)
