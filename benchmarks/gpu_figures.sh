#!/usr/bin/env bash
# Every GPU figure docs/cluster.md section 7 asks for, in one command on one GPU node: ResNet-50 under each
# precision setting, the one-GPU rehearsal (every rule's time and memory, the Table 4 projection) and the
# generation steps at full size. Each part has its own time limit, so a slow part never takes the
# others' time; what a part printed before its limit is kept. Output in $OUT (default gpu-figures/):
# card.txt, precision_gpu.txt, rehearsal.txt, generation.txt and the rehearsal's benchmark files and logs.
#
#   bash benchmarks/gpu_figures.sh                    # about 9 minutes on one H100
#   REHEARSAL_S=600 bash benchmarks/gpu_figures.sh    # give a part longer
set -uo pipefail
out=${OUT:-gpu-figures}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"; } 2>&1 | tee "$out/card.txt"
timeout "${PRECISION_S:-90}" python benchmarks/precision.py --gpu 2>&1 | tee "$out/precision_gpu.txt"
timeout "${REHEARSAL_S:-300}" python benchmarks/rehearsal.py --fresh --images "${REHEARSAL_IMAGES:-200}" \
    --sources "${REHEARSAL_SOURCES:-16}" --ti-steps "${REHEARSAL_TI_STEPS:-10}" 2>&1 | tee "$out/rehearsal.txt"
tar czf "$out/rehearsal-files.tgz" rehearsal/config.yaml rehearsal/results/benchmarks rehearsal/results/logs 2>/dev/null
timeout "${GENERATION_S:-170}" python benchmarks/generation.py --paper-arch --n "${GENERATION_IMAGES:-8}" 2>&1 \
    | tee "$out/generation.txt"
