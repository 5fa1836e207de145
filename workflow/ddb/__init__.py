"""DDB (Diffusion Driven Balancing) as an importable package.

One module per step of the method (see ``docs/method.md``):

=====================  ========================================================
``ddb.datasets``       ``prepare_dataset``: manifests of the demo and paper datasets
``ddb.erm``            ``train_erm``: the ERM classifier f (trained or imported)
``ddb.textual_inversion``  one learned token per class
``ddb.low_loss``       ``select_low_loss`` and ``mean_softmax`` (Ψ)
``ddb.masking``        causal-object masks (files, or GroundingDINO + SAM)
``ddb.inpainting``     Stable Diffusion inpainting of class i into class i'
``ddb.ig_scoring``     Integrated Gradients ρ and softmax of generated images
``ddb.pruning``        keep / drop each generation, with the reason
``ddb.retrain``        L = L_CE + γ1·L_gen1 + γ2·L_gen2, epoch chosen by val WGA
``ddb.dfr``            the DFR baseline: ERM's last layer refit on balanced validation data
``ddb.evaluate``       per-group accuracy, WGA, means; ERM vs DFR vs DDB
=====================  ========================================================
"""

__version__ = "0.1.0"

import os as _os

# Same inputs, same bytes on a CPU. Without Conditional Numerical Reproducibility, Intel MKL (torch's BLAS
# on x86) picks its code path by memory alignment, so the same matrix product differed in the 6th-7th
# digit between two runs of textual inversion. STRICT keeps one path whatever the alignment;
# MKL_DYNAMIC=FALSE keeps the configured thread count. Read when MKL first runs, so they are set here,
# before any step imports torch; a user's own value wins.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
_os.environ.setdefault("MKL_DYNAMIC", "FALSE")
