#!/usr/bin/env bash
# The GPU check on a bare machine: only torch, transformers, peft, accelerate and pandas are needed (no
# gradio, datasets, gguf, no internet, no model download). Randomly initialised models built from the
# real configs of all-MiniLM-L6-v2 and SmolLM2-135M, synthetic tokens; about 1-3 minutes on one GPU:
#   - the bf16 exactness matrix: every Tracker column vs float64 references (PEFT's merge, the paper's Eq.)
#     for lora, rslora, dora, PEFT delora and our layer in both inits, in both bf16 setups;
#   - per method in bf16: training steps per second, peak memory, the Tracker's share of a step.
#
#   bash bench/gpu.sh                          # writes bench/results_gpu.json
#   bash bench/gpu.sh --device cpu --quick     # the same script on a CPU-only machine (tiny models)
#
# Any argument is passed on to bench/gpu_check.py after the defaults below, so it wins
# (e.g. --json FILE, --only exactness, --strict to exit 1 when a column errs above 1e-4).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the repository's delora_viz, installed or not

device=cuda
prev=""
for arg in "$@"; do  # only to say early what is missing; gpu_check.py parses the arguments
  case "$prev" in --device) device=$arg ;; esac
  case "$arg" in --device=*) device=${arg#--device=} ;; esac
  prev=$arg
done

python - "$device" <<'PY'
import sys, torch
device = sys.argv[1]
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu.sh: no CUDA GPU visible to torch here; run `bash bench/gpu.sh --device cpu --quick` instead")
if device.startswith("cuda"):
    print(f"gpu.sh: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
PY

exec python bench/gpu_check.py --device "$device" --json bench/results_gpu.json "$@"
