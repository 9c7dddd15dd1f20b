#!/usr/bin/env bash
# scripts/train-injection.sh - regenerate gateway/policies/injection/injection_weights.c
# Builds the trainer (which links the detector's own feature code), fits it on the
# TRAIN+DEV splits of ../shared/data/detectors plus the hand-written rows in
# gateway/policies/injection/train/synthetic.tsv, and writes the weights. Deterministic:
# the same data gives the same file. Held-out rows are never read for training.
#   scripts/train-injection.sh            # train and write the weights
#   scripts/train-injection.sh --dev      # train on TRAIN only, print DEV-split counts
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${KT_TRAIN_BUILD_DIR:-$root/build-train-injection}"
data="${KT_DETECTORS_DIR:-$root/../shared/data/detectors}"
weights="$root/gateway/policies/injection/injection_weights.c"

if [ ! -f "$data/README.md" ]; then
  echo "train-injection: no detector data at $data (set KT_DETECTORS_DIR)" >&2
  exit 1
fi
# The policy library lists the weights file; a first checkout without it still
# needs something to configure against, so write zero weights that the trainer
# then replaces.
if [ ! -f "$weights" ]; then
  cat >"$weights" <<'C'
/* gateway/policies/injection/injection_weights.c - bootstrap, replaced by the trainer */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/injection/injection.h"
static const int8_t ngram[INJECTION_NBUCKETS];
static const float rule[64];
static const float flag[INJECTION_NF_COUNT];
const struct injection_weights injection_weights_builtin = {ngram, 1.0, rule, 0, flag, 0.0};
C
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKT_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target kt_train_injection >/dev/null

trainer="$build/gateway/policies/injection/kt_train_injection"
synthetic="$root/gateway/policies/injection/train/synthetic.tsv"
if [ "${1:-}" = "--dev" ]; then
  exec "$trainer" --dev --data "$data" --synthetic "$synthetic"
fi
"$trainer" --data "$data" --synthetic "$synthetic" --out "$weights.tmp"
mv "$weights.tmp" "$weights"
echo "train-injection: wrote $weights" >&2
