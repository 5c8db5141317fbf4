#!/usr/bin/env bash
# Fine-tuning to new objects, measured on the held-out `kitchen_b` domain (docs/finetune/README.md).
#
#   benchmarks/finetune_domain.sh data      # generate kitchen_b (+ synth_default if missing), corrupt train
#   benchmarks/finetune_domain.sh zero_shot # the shipped model on kitchen_b (and on its own domain, for reference)
#   benchmarks/finetune_domain.sh train v2  # fine-tuned and from-scratch runs, side by side, same steps
#   benchmarks/finetune_domain.sh eval v2   # both: calibrate on kitchen_b val, score val_human (+ old domain)
#   benchmarks/finetune_domain.sh eval v2-gate  # v2 fine-tuned and zero-shot, positive gate calibrated too
#   benchmarks/finetune_domain.sh report    # docs/finetune/results.json and table.md
#   benchmarks/finetune_domain.sh all       # everything, v1 and v2
#
# Every command the results in docs/finetune/ came from is in this file. Run from the repository root with
# the dev venv (`make setup`). Wall times are written next to the results (runs/finetune_domain/times.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
ACTISEG=${ACTISEG:-.venv/bin/actiseg}
NEW=data/synth_kitchen_b              # the held-out domain, clean (val, val_human are scored clean)
NOISY=data/synth_kitchen_b_mixed      # its train split with mixed noise: flip 20% + dilation 15
OLD=data/synth_default                # the shipped model's domain
RUNS=runs/finetune_domain
OUT=docs/finetune
mkdir -p "$RUNS" "$OUT"

stamp() { echo "$(date -u +%FT%TZ) $*" | tee -a "$RUNS/times.txt"; }

data() {
    if [ ! -f "$OLD/synth_info.json" ]; then
        flock /tmp/synth_default.lock "$ACTISEG" synth --preset default --seed 0 --out "$OLD"
    fi
    [ -f "$NEW/synth_info.json" ] || "$ACTISEG" synth --preset default --domain kitchen_b --seed 0 --out "$NEW"
    [ -f "$NOISY/noise_summary.json" ] || "$ACTISEG" corrupt --data "$NEW" --out "$NOISY" --text-flip 0.2 \
        --mask-dilate 15 --seed 0 --workers 1
}

# Two recipes were run: v1 (lr 2.5e-4, 90 old-domain segments mixed in: 448 steps; its misses on the new classes
# and the old domain led to v2) and v2 (training/configs/finetune.yaml: lr 5e-4, 180 old segments: 540 steps).
# Each against a from-scratch run of the same data and steps.
recipe() {  # recipe VARIANT -> the --set overrides of that variant's fine-tuning run
    case "$1" in
        v1) echo '--set lr=2.5e-4 --set mix_data=[{"root":"data/synth_default","split":"train","segments":90}]' ;;
        v2) echo "" ;;
        *) echo "unknown recipe $1" >&2; exit 2 ;;
    esac
}

train() {  # train VARIANT
    # Same data (noisy kitchen_b train + 90 old-domain segments), same steps, same batch; they run at the same
    # time so that they share the machine alike. Scratch: no init weights, and PMHM after a warm-up of all
    # epochs but the last (from the first step PMHM keeps a fresh head's empty mask, default.yaml).
    local variant=$1 sets epochs
    sets=$(recipe "$variant")
    epochs=$(echo "$sets" | { grep -o "epochs=[0-9]*" || true; } | cut -d= -f2)
    epochs=${epochs:-4}
    mkdir -p "$RUNS/$variant"
    stamp "train $variant start"
    # shellcheck disable=SC2086
    ( /usr/bin/time -f "finetune wall %e s" "$ACTISEG" train --config finetune --data "$NOISY" $sets \
        --out "$RUNS/$variant/finetune" > "$RUNS/$variant/finetune.log" 2>&1; stamp "finetune $variant done" ) &
    # shellcheck disable=SC2086
    ( /usr/bin/time -f "scratch wall %e s" "$ACTISEG" train --config finetune --data "$NOISY" $sets \
        --set 'init_from=""' --set lr=5.0e-4 --set loss.pmhm_warmup_epochs=$((epochs - 1)) \
        --out "$RUNS/$variant/scratch" > "$RUNS/$variant/scratch.log" 2>&1; stamp "scratch $variant done" ) &
    wait
}

score() {  # score NAME MODEL DATA [extra infer args]: calibrate on val, then infer + eval val_human
    local name=$1 model=$2 data=$3
    shift 3
    "$ACTISEG" calibrate --model "$model" --data "$data" --split val --json "$RUNS/$name.calibration.json" \
        --threads 1
    local threshold
    threshold=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['chosen'])" \
        "$RUNS/$name.calibration.json")
    score_only "$name" "$model" "$data" --mask-threshold "$threshold" "$@"
}

score_only() {  # score_only NAME MODEL DATA [infer args]: infer + eval val_human, no calibration
    local name=$1 model=$2 data=$3
    shift 3
    "$ACTISEG" infer --model "$model" --data "$data" --split val_human --out "$RUNS/$name.pred" --threads 1 "$@"
    "$ACTISEG" eval --pred "$RUNS/$name.pred" --data "$data" --split val_human --json "$OUT/$name.json" \
        --breakdown-json "$OUT/$name.breakdown.json"
}

GATES=0.75,0.6,0.5,0.4,0.3,0.2
score_gated() {  # score_gated NAME MODEL: gate AND mask threshold calibrated on kitchen_b val (clean), that one
    # pair then scores kitchen_b val_human and the old domain's val_human (NAME_old_domain): one card, both domains
    local name=$1 model=$2 pair
    "$ACTISEG" calibrate --model "$model" --data "$NEW" --split val --gates "$GATES" \
        --json "$RUNS/$name.calibration.json" --threads 1
    pair=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['chosen_gate'], r['chosen'])" \
        "$RUNS/$name.calibration.json")
    read -r gate threshold <<< "$pair"
    score_only "$name" "$model" "$NEW" --positive-gate "$gate" --mask-threshold "$threshold"
    score_only "${name}_old_domain" "$model" "$OLD" --positive-gate "$gate" --mask-threshold "$threshold"
}

zero_shot() {
    stamp "zero-shot eval start"
    score zero_shot models/default "$NEW"
    score default_old_domain models/default "$OLD"
    stamp "zero-shot eval done"
}

evaluate() {  # evaluate VARIANT
    local variant=$1
    if [ "$variant" = v2-gate ]; then  # added after v2's analysis: under-confident positive head, fixed gate
        stamp "eval v2-gate start"
        score_gated finetuned_v2_gate "$RUNS/v2/finetune/model.pt"
        score_gated zero_shot_gate models/default
        stamp "eval v2-gate done"
        return
    fi
    stamp "eval $variant start"
    score "finetuned_$variant" "$RUNS/$variant/finetune/model.pt" "$NEW"
    score "scratch_$variant" "$RUNS/$variant/scratch/model.pt" "$NEW"
    score "finetuned_${variant}_old_domain" "$RUNS/$variant/finetune/model.pt" "$OLD"
    stamp "eval $variant done"
}

case "${1:-all}" in
    data) data ;;
    zero_shot) zero_shot ;;
    train) train "${2:-v2}" ;;
    eval) evaluate "${2:-v2}" ;;
    report) .venv/bin/python benchmarks/finetune_domain_report.py --runs "$RUNS" --out "$OUT" ;;
    all) data; zero_shot; for v in v1 v2; do train $v; evaluate $v; done; evaluate v2-gate
         .venv/bin/python benchmarks/finetune_domain_report.py --runs "$RUNS" --out "$OUT" ;;
    *) echo "usage: $0 [data|zero_shot|train VARIANT|eval VARIANT|report|all]" >&2; exit 2 ;;
esac
