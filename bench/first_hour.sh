#!/usr/bin/env bash
# The first hour of a new user, timed: the README's and the docs' main commands in order, from empty caches (a fresh
# METRIC_ROOT), each with its wall time and exit code; a markdown table on stdout and in <out>/first_hour.md.
#
#   bash bench/first_hour.sh [--out DIR] [--quick] [--with-tests] [--with-install]
#
# --quick: the main job for 2 epochs instead of its 16 (the walk-through, not the figure);
# --with-tests: also the README's test command (`pytest`); --with-install: first a fresh venv and the README's install
# (pip install -e ".[dev]" and the weight fetch), in <out>/venv. Needs ../shared/data/att_faces (ORL).
set -u
cd "$(dirname "$0")/.."
OUT=$(mktemp -d /tmp/first_hour.XXXXXX)
QUICK=0 TESTS=0 INSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "error: --out needs a folder" >&2; exit 2; }; OUT=$2; shift ;;
    --quick) QUICK=1 ;;
    --with-tests) TESTS=1 ;;
    --with-install) INSTALL=1 ;;
    *) echo "error: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
ORL=../shared/data/att_faces
[ -d "$ORL" ] || { echo "error: $ORL (ORL faces) is missing; the walk-through enrolls them" >&2; exit 2; }
mkdir -p "$OUT"
export METRIC_ROOT="$OUT/root"  # empty data caches and outputs: what a fresh clone sees
TABLE="$OUT/first_hour.md"
printf '| step | command | seconds | exit |\n| --- | --- | --- | --- |\n' > "$TABLE"
STEP=0

step() {  # step <label> <command...>: run, time, record
  local label=$1; shift
  STEP=$((STEP + 1))
  local start end rc
  start=$(date +%s.%N)
  "$@" > "$OUT/step$STEP.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  printf '| %d | %s | %.1f | %d |\n' "$STEP" "$label" "$(echo "$end - $start" | bc)" "$rc" | tee -a "$TABLE"
  [ $rc -eq 0 ] || { echo "step $STEP failed; its output: $OUT/step$STEP.log" >&2; tail -5 "$OUT/step$STEP.log" >&2; }
}

if [ $INSTALL -eq 1 ]; then
  step "fresh venv" python3 -m venv "$OUT/venv"
  # shellcheck disable=SC1091
  source "$OUT/venv/bin/activate"
  step 'pip install -e ".[dev]"' pip install -q -e ".[dev]"
  step "python -m metric.weights fetch all" python -m metric.weights fetch all
fi

EPOCHS=()
[ $QUICK -eq 1 ] && EPOCHS=(trainer.max_epochs=2)
RUN="$OUT/runs"
step "python -m metric.weights list" python -m metric.weights list
step "python -m metric.train +experiment=triplet ${EPOCHS[*]:-}" \
  python -m metric.train +experiment=triplet "${EPOCHS[@]}" paths.output_dir="$RUN/train"
CKPT=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['best_checkpoint'])" "$RUN/train/summary.json" 2>/dev/null)
step "python -m metric.raw_pixels" python -m metric.raw_pixels paths.output_dir="$RUN/raw_pixels"
step 'python -m metric.evaluate ckpt=$CKPT' python -m metric.evaluate ckpt="$CKPT" paths.output_dir="$RUN/evaluate"
step 'python -m metric.export ckpt=$CKPT format=onnx' python -m metric.export ckpt="$CKPT" format=onnx paths.output_dir="$RUN/export"
BUNDLE="$OUT/mobilefacenet_orl.ckpt"
step "python -m metric.calibrate model=mobilefacenet face=mtcnn (ORL, 8 validation people, FAR 1e-2)" \
  python -m metric.calibrate model=mobilefacenet face=mtcnn datamodule=folder datamodule.root=$ORL \
  datamodule.split=ordered "datamodule.split_counts=[24,8,8]" matcher.target_far=0.01 ckpt="$BUNDLE" \
  paths.output_dir="$RUN/calibrate"
DB="$OUT/people.db"
step "python -m metric.gallery enroll --from-folder ORL (40 people)" \
  python -m metric.gallery enroll --gallery "$DB" --ckpt "$BUNDLE" --from-folder $ORL
step "python -m metric.gallery verify (s1)" \
  python -m metric.gallery verify --gallery "$DB" --identity s1 $ORL/s1/10.pgm
step "python -m metric.gallery identify" python -m metric.gallery identify --gallery "$DB" $ORL/s2/10.pgm
step "python -m metric.gallery list" python -m metric.gallery list --gallery "$DB"
step "python -m metric.gallery info" python -m metric.gallery info --gallery "$DB"
step "python -m metric.serve keys create --scope verify" \
  python -m metric.serve keys create --gallery "$DB" --scope verify --label first-hour
step "python -m metric.serve audit" python -m metric.serve audit --gallery "$DB"
[ $TESTS -eq 1 ] && step "pytest" python -m pytest -q -p no:cacheprovider
echo "table: $TABLE; logs: $OUT/step<N>.log"
