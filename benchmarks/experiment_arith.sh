#!/usr/bin/env bash
# The arith experiment: on the same 100 one-step arithmetic word problems (--data.name arith, seed 0), the
# embedded SmolLM2-135M with the demo's caps (128 new tokens per generation), K = 10 for the runs that search:
#   CoT | self-consistency (N=4) | Best-of-N (N=10, PSRM = oracle pass@10) | LatentSeek (PSRM)
#   | LatentSeek (PSRM, M=4 samples per step at T=0.7) | random control (PSRM) | LatentSeek (self-reward,
#   the paper's prompts, verifier cap 48) | LatentSeek with a constant reward (R = -1)
#   | GradCuit (PSRM; its defaults: the prefix at the middle block, 15 of 30, lr 1e-3, bf16 offset) | its random
#   control (PSRM) | GradCuit (PSRM) at a quarter of the depth (block 7) | GradCuit (PSRM) with its fp32 offset fix
#   | LTPO as its code runs (no verifier: the placeholders' confidence; its N 10, sigma 0.1, decay 0.99, lr 0.03, K 10,
#   the demo's cap) | LTPO with both fixes (leave-one-out baseline over M = 4 candidates, the scored best state)
#   | LTPO's prompt without a step (K = 0) | LatentSeek with the confidence reward (no verifier; the most confident
#   answer) | its random control
# then one report (table with Wilson 95% CIs, accuracy-vs-iteration plot, report.html).
# Every run resumes exactly: rerun the script to finish an interrupted experiment.
#   bash benchmarks/experiment_arith.sh [OUT_DIR] [extra train_free.py options...]
# RUNS="sc constant" bash benchmarks/experiment_arith.sh ... runs only the named runs (and no report), e.g. to
# run two halves side by side with OMP_NUM_THREADS=1 each.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/experiment_arith}
shift || true
COMMON=(--config configs/demo.yaml --data.limit 100 --progress false "$@")
K=(--trainer.max_steps 10)  # the search's iteration cap: only the runs that search take it (cot/bon/sc would refuse it)
G=(--method gradcuit --model.max_new_tokens 128)  # the demo's cap: GradCuit's own default is 2048
LTPO=(--method ltpo --model.max_new_tokens 128)  # the demo's cap: LTPO's own default is 4096
RUNS=${RUNS:-}
run() {
    local name=$1; shift
    if [[ -n $RUNS && " $RUNS " != *" $name "* ]]; then return; fi
    echo "== $name: $*"; /usr/bin/time -f "   $name: %e s" python train_free.py "${COMMON[@]}" "$@" --output_dir "$OUT/$name"
}
run cot --method cot
run latentseek_psrm "${K[@]}" --model.reward psrm
run random_psrm "${K[@]}" --method random --model.reward psrm
run bon_oracle --method bon --model.reward psrm --model.n_samples 10
run latentseek_self "${K[@]}" --model.reward self --model.verifier_max_new_tokens 48
run sc --method sc --model.n_samples 4
run latentseek_psrm_m4 "${K[@]}" --model.reward psrm --model.samples_per_step 4 --model.temperature 0.7
run constant "${K[@]}" --model.reward constant
run gradcuit_psrm "${G[@]}" "${K[@]}" --model.reward psrm
run gradcuit_random_psrm "${G[@]}" "${K[@]}" --model.reward psrm --model.step random
run gradcuit_psrm_l7 "${G[@]}" "${K[@]}" --model.reward psrm --model.latent_layer 7
run gradcuit_psrm_fp32 "${G[@]}" "${K[@]}" --model.reward psrm --model.offset_dtype fp32
run ltpo "${LTPO[@]}" "${K[@]}"
run ltpo_k0 "${LTPO[@]}" --trainer.max_steps 0  # LTPO's prompt and placeholders, no step: what the prompt alone does
run ltpo_fixed "${LTPO[@]}" "${K[@]}" --model.ltpo_baseline loo --model.samples_per_step 4 --model.ltpo_best_state scored
run latentseek_confidence "${K[@]}" --model.reward confidence --model.answer_selection best
run random_confidence "${K[@]}" --method random --model.reward confidence --model.answer_selection best
[[ -n $RUNS ]] && exit 0
python -m lightning_latentseek.report "CoT=$OUT/cot" "SC (N=4)=$OUT/sc" "BoN oracle (PSRM, N=10)=$OUT/bon_oracle" \
    "LatentSeek (PSRM)=$OUT/latentseek_psrm" "LatentSeek (PSRM, M=4, T=0.7)=$OUT/latentseek_psrm_m4" \
    "random control (PSRM)=$OUT/random_psrm" "LatentSeek (self, paper prompts)=$OUT/latentseek_self" \
    "constant reward=$OUT/constant" "GradCuit (PSRM)=$OUT/gradcuit_psrm" \
    "GradCuit random control (PSRM)=$OUT/gradcuit_random_psrm" "GradCuit (PSRM, block 7)=$OUT/gradcuit_psrm_l7" \
    "GradCuit (PSRM, fp32 offset)=$OUT/gradcuit_psrm_fp32" \
    "LTPO=$OUT/ltpo" "LTPO (loo M=4, scored)=$OUT/ltpo_fixed" "LTPO prompt, K=0=$OUT/ltpo_k0" \
    "LatentSeek (confidence, best)=$OUT/latentseek_confidence" "random control (confidence, best)=$OUT/random_confidence" \
    --output "$OUT/report"
