#!/bin/bash
# The default and seed recipes on one GPU, in one call: each trained for the same minutes on the
# same data (with its peak GPU memory), then both measured by benchmarks/quality.py, the seed's
# model sampled as the seed did (VSampler, 50 steps).
#
#   bash benchmarks/gpu_recipes.sh pack DATA     # here: wheels the GPU image lacks + the dataset,
#                                                # into device-carry/ (ignored by git, < 64 MiB)
#   bash benchmarks/gpu_recipes.sh run [MINUTES] # on the GPU machine, carrying device-carry;
#                                                # tables and small models go to $OUT (default 2.5 min;
#                                                # the whole call fits the device's 10 minutes)
# DEVICE (default cuda) and PER_CLASS (one-shots per class for quality.py, default 8) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=device-carry
# what the training and quality code imports that the GPU image has no wheel for
WHEELS="audio-diffusion-pytorch==0.1.3 a-unet==0.0.16 data-science-types soundfile cffi pycparser
        pyloudnorm soxr platformdirs"

pack() {
    local data=$1
    rm -rf "$CARRY" && mkdir -p "$CARRY/wheels"
    # the GPU image runs Python 3.12 on x86_64 Linux
    pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --dest "$CARRY/wheels" $WHEELS
    cp -r "$data" "$CARRY/data"
    du -sh "$CARRY"
}

run() {
    local minutes=${1:-2.5} work=/tmp/noisepad-recipes out=${OUT:-/tmp/noisepad-recipes-out}
    mkdir -p "$out"
    python3 -c "import audio_diffusion_pytorch, soundfile, pyloudnorm, soxr, platformdirs" 2>/dev/null \
        || python3 -m pip install --quiet --no-index --no-deps --find-links "$CARRY/wheels" $WHEELS
    export PYTHONPATH=$PWD
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
    python3 -m benchmarks.recipes "$CARRY/data" -o "$work" --minutes "$minutes" | tee "$out/recipes.md"
    python3 -m noisepad_cli export "$work/runs/default" -o "$out/default.safetensors" --half   # 14 MB: comes back
    for name in default seed; do cp "$work/runs/$name/logs/version_0/metrics.csv" "$out/$name-metrics.csv"; done
    python3 -m benchmarks.quality "$CARRY/data" --per-class "${PER_CLASS:-8}" \
        --eval "default=$work/default.safetensors,device=${DEVICE:-cuda}" \
        --eval "seed=$work/seed.safetensors,sampler=vsampler,steps=50,device=${DEVICE:-cuda}" | tee "$out/quality.md"
}

"$@"
