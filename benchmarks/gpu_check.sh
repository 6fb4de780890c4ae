#!/usr/bin/env bash
# The CUDA check of birnn, for a machine with an NVIDIA GPU; about 8 minutes at most.
#
#   bash benchmarks/gpu_check.sh OUTDIR            # run it (from anywhere)
#   bash benchmarks/gpu_check.sh OUTDIR --dry-run  # check the set-up, print the plan, run nothing
#
# 1. Python: $BIRNN_PYTHON if set, else the repository's .venv, created with the
#    Makefile's install step (`make .venv/.installed`) when absent. That step installs
#    torch==2.13.0 from constraints.txt; on PyPI that is the CUDA build for Linux x86_64
#    (a local label such as +cu128 or +cpu satisfies the pin too). If the torch found
#    has no CUDA while `nvidia-smi` sees a GPU (a +cpu wheel, e.g. from a local
#    find-links folder), it reinstalls torch==2.13.0 from $TORCH_INDEX_URL (default:
#    PyPI) with the machine's pip configuration switched off (TORCH_REINSTALL=0: never
#    reinstall). Both need the index to be
#    reachable; on a machine without one, point $BIRNN_PYTHON at a Python that already
#    has a CUDA torch and the project (`pip install -e .[dev]`).
# 2. The CUDA tests: every test whose name says cuda or gpu (`-k "cuda or gpu"`; not this
#    script's own tests), which
#    must all run: a skip fails the check.
# 3. The bench rows of the peers table on the GPU: birnn (layer and Model), torch's
#    cuDNN `nn.LSTM/GRU` and Keras 3 on torch (`run.py --device cuda --peer-rows`),
#    short timing (the ratios, not the last digit).
#
# Each part is bounded by `timeout`. OUTDIR receives install.log, env.txt,
# cuda_tests.log, bench.log, RESULTS-gpu.md (the table) and summary.md. The exit
# status is 0 only when every part passed; 2 means no usable CUDA device.
set -uo pipefail

usage() { echo "usage: $0 OUTDIR [--dry-run]" >&2; exit 64; }
[ $# -ge 1 ] || usage
OUT=$1
shift
DRY=0
for arg in "$@"; do
	case $arg in
		--dry-run) DRY=1 ;;
		*) usage ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.md
INSTALL_LIMIT=${INSTALL_LIMIT:-180}
TESTS_LIMIT=${TESTS_LIMIT:-90}
BENCH_LIMIT=${BENCH_LIMIT:-180}
export KERAS_BACKEND=torch
cd "$REPO" || exit 1
started=$(date +%s)
failed=0

say() { echo "$*" | tee -a "$SUMMARY"; }
: > "$SUMMARY"
say "# birnn GPU check"
say ""
say "$(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
say ""

PY=${BIRNN_PYTHON:-$REPO/.venv/bin/python}
if [ ! -x "$PY" ]; then
	if [ "$DRY" = 1 ]; then
		say "- would create .venv: timeout $INSTALL_LIMIT make .venv/.installed"
	else
		say "- creating .venv with the Makefile's install step (log: install.log)"
		timeout "$INSTALL_LIMIT" make .venv/.installed > "$OUT/install.log" 2>&1 \
			|| { say "- FAILED: make .venv/.installed (see install.log)"; exit 1; }
	fi
fi

# One look at torch: a line for the summary, then CUDA=0/1 and BUILT=<torch.version.cuda>.
probe() {
	"$PY" - > "$OUT/probe.txt" 2>&1 <<'EOF'
import torch
ok = torch.cuda.is_available()
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, cuda available {ok}"
      + (f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if ok else ""))
print(f"CUDA={int(ok)}")
print(f"BUILT={torch.version.cuda}")
EOF
	CUDA=$(sed -n 's/^CUDA=//p' "$OUT/probe.txt")
	BUILT=$(sed -n 's/^BUILT=//p' "$OUT/probe.txt")
	head -1 "$OUT/probe.txt" > "$OUT/env.txt"
	nvidia-smi >> "$OUT/env.txt" 2>&1 || echo "nvidia-smi: not found or failed" >> "$OUT/env.txt"
	say "- $(head -1 "$OUT/env.txt")"
}

CUDA=0
BUILT=unknown
if [ -x "$PY" ]; then
	probe
	if [ "$CUDA" != 1 ] && [ "$BUILT" = "None" ] && [ "${TORCH_REINSTALL:-1}" = 1 ] \
		&& [ "$DRY" = 0 ] && nvidia-smi > /dev/null 2>&1; then
		say "- this torch is a CPU build and a GPU is present: installing the CUDA build"
		index=${TORCH_INDEX_URL:-https://pypi.org/simple}
		PIP_CONFIG_FILE=/dev/null timeout "$INSTALL_LIMIT" "$PY" -m pip install -q \
			--force-reinstall --index-url "$index" torch==2.13.0 >> "$OUT/install.log" 2>&1
		probe
	fi
fi

TESTS=(timeout "$TESTS_LIMIT" "$PY" -m pytest -n 0 -q -rs -p no:cacheprovider
	-k "(cuda or gpu) and not gpu_check" tests)
# All rows in one process (`--in-process`): a fresh process per row would start torch, Keras
# and a CUDA context eleven times, about a third of the bench's time limit.
BENCH=(timeout "$BENCH_LIMIT" "$PY" benchmarks/run.py --device cuda --peer-rows --in-process
	--only birnn,birnn-model,torch,keras-model --no-peers --no-memory --no-fit --no-serving
	--repeats 5 --warmup 3 --min-seconds 2 --block-seconds 0.1 --output "$OUT/RESULTS-gpu.md")

if [ "$DRY" = 1 ]; then
	say "- dry run: would run"
	say "  - ${TESTS[*]} > cuda_tests.log"
	say "  - ${BENCH[*]} > bench.log"
	if [ "$CUDA" != 1 ]; then
		say "- no CUDA: the real run would stop here (exit 2)"
	fi
	exit 0
fi

if [ "$CUDA" != 1 ]; then
	say "- no CUDA: torch sees no CUDA device here, so nothing was run (see env.txt)."
	exit 2
fi

say "- CUDA tests: ${TESTS[*]}"
"${TESTS[@]}" > "$OUT/cuda_tests.log" 2>&1
status=$?
tail -1 "$OUT/cuda_tests.log" | sed 's/^/  /' | tee -a "$SUMMARY"
if [ $status -ne 0 ]; then
	say "  FAILED (exit $status; 124: over ${TESTS_LIMIT} s)"
	failed=1
elif grep -qiE "^SKIPPED.*(cuda|gpu)" "$OUT/cuda_tests.log"; then
	say "  FAILED: a CUDA test was skipped on a CUDA machine"
	failed=1
fi

say "- bench: ${BENCH[*]}"
"${BENCH[@]}" > "$OUT/bench.log" 2>&1
status=$?
if [ $status -ne 0 ] || [ ! -s "$OUT/RESULTS-gpu.md" ]; then
	say "  FAILED (exit $status; 124: over ${BENCH_LIMIT} s; see bench.log)"
	failed=1
else
	say ""
	grep -E "^\|" "$OUT/RESULTS-gpu.md" | tee -a "$SUMMARY" > /dev/null
fi

say ""
say "Took $(($(date +%s) - started)) s; $([ $failed = 0 ] && echo passed || echo FAILED)."
exit $failed
