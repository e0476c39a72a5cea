#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/, declared in Package.swift under GATEWAY_FUZZ) once and
# runs each for a bounded time or number of inputs, starting from the committed seeds
# (Tests/Fuzz/corpus/<target>/). New inputs go to a scratch corpus, not into the seeds, unless
# --merge. Prints per target: inputs run, coverage features (ft), corpus size, slowest input,
# and the outcome. Exits non-zero on any crash, sanitizer report, leak, timeout (-timeout) or
# input slower than --slow-ms (100 ms by default, 800 ms for keys, whose RSA private keys are
# checked prime by prime on load; FuzzSupport times each input, fastest of 3 runs).
# A failing input is copied to Fuzz/crashes/<target>-<kind>-<sha1>.
#
#   scripts/fuzz.sh [--time SECONDS_PER_TARGET] [--runs N] [--jobs N] [--merge] [--no-build]
#                   [--slow-ms MS] [--work DIR] [--debug] [--scratch DIR] [target...]
#
# --scratch DIR builds in DIR instead of .build-fuzz: `--debug --scratch .build` after the
# tests reuses their dependencies (only the project's modules compile again, with the
# sanitizers: under a minute), which is how scripts/test.sh runs them in CI.
#
# Targets: jws claims keys request http1 response config api (default: all).
# Only the project's targets are instrumented (Package.swift under GATEWAY_FUZZ); the
# dependencies are built as usual, in release (--debug: a debug build, quicker to build).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(jws claims keys request http1 response config api)
time_per=60 runs="" merge=0 build=1 slow_ms="" jobs=1 work="" config=release scratch=.build-fuzz
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_per=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --no-build) build=0; shift ;;
    --slow-ms) slow_ms=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --debug) config=debug; shift ;;
    --scratch) scratch=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target $t (${ALL[*]})" >&2; exit 2; }
done

SCRATCH=$scratch
BIN=$SCRATCH/$config
work=${work:-$SCRATCH/fuzz-work}
mkdir -p "$work" Fuzz/crashes

if [ $build -eq 1 ]; then
  all_start=$(date +%s)
  for t in "${targets[@]}"; do
    start=$(date +%s)
    # No -Xswiftc: Package.swift gives -sanitize=fuzzer,address to the project's own targets
    # (JOSE, Runtime, Gateway, Fuzz/) and links the fuzz products with it; the dependencies,
    # the C targets and the system libraries are built as usual. No -parse-as-library: each
    # target's main.swift calls LLVMFuzzerRunDriver (see Fuzz/Support).
    rm -f "$BIN/fuzz-$t"
    GATEWAY_FUZZ=1 swift build --scratch-path "$SCRATCH" -c "$config" --product "fuzz-$t" 2>&1 \
      | grep -vE '^\[[0-9]+/[0-9]+\]|unhandled|CMakeLists|^ +/' || true
    [ -x "$BIN/fuzz-$t" ] || { echo "fuzz.sh: fuzz-$t did not build" >&2; exit 1; }
    echo "fuzz.sh: built fuzz-$t in $(( $(date +%s) - start )) s"
  done
  echo "fuzz.sh: built ${#targets[@]} target(s) ($config) in $(( $(date +%s) - all_start )) s"
fi

export LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
# Swift's own backtracer would read the process's memory after an abort, under ASan: off.
export SWIFT_BACKTRACE=enable=no
failed=0
rows=()
for t in "${targets[@]}"; do
  corpus="$work/corpus-$t"
  artifacts="$work/artifacts-$t/"
  rm -rf "$artifacts"; mkdir -p "$corpus" "$artifacts"
  log="$work/$t.log"
  # Loading an RSA private key runs OpenSSL's pairwise check, prime tests included (a 2048-bit
  # JWK takes 50 ms of CPU, 160 ms on this loaded machine): a start-up cost, not a request's.
  if [ -n "$slow_ms" ]; then export FUZZ_SLOW_MS=$slow_ms; elif [ "$t" = keys ]; then export FUZZ_SLOW_MS=800; else export FUZZ_SLOW_MS=100; fi
  # TOMLKit leaks a few hundred bytes per config read (Fuzz/README.md): fuzz-config's RSS
  # reached 2 GB after 1.77 M inputs.
  rss=2048; [ "$t" = config ] && rss=4096
  args=(-timeout=1 -rss_limit_mb=$rss -print_final_stats=1 -artifact_prefix="$artifacts" -close_fd_mask=1)
  if [ -n "$runs" ]; then args+=(-runs="$runs"); else args+=(-max_total_time="$time_per"); fi
  [ -f "Fuzz/$t.dict" ] && args+=(-dict="Fuzz/$t.dict")
  start=$(date +%s)
  set +e
  if [ "$jobs" -gt 1 ]; then
    "$BIN/fuzz-$t" "${args[@]}" -fork="$jobs" -ignore_crashes=0 "$corpus" "Tests/Fuzz/corpus/$t" > "$log" 2>&1
  else
    "$BIN/fuzz-$t" "${args[@]}" "$corpus" "Tests/Fuzz/corpus/$t" > "$log" 2>&1
  fi
  rc=$?
  set -e
  seconds=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  last=$(grep -E '(DONE|pulse|NEW|REDUCE|INITED) ' "$log" | tail -1 || true)
  ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | grep -oE '[0-9]+' || true)
  corp=$(echo "$last" | grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' | cut -d' ' -f2 || true)
  slowest=$(grep -oE 'SLOWEST_UNIT_MS: [0-9]+' "$log" | grep -oE '[0-9]+' | sort -n | tail -1 || true)
  outcome=ok
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY: |SLOW UNIT|Fatal error|fatal error|==[0-9]+== ?ERROR' "$log" || [ $rc -ne 0 ]; then
    outcome=FAILED
    kind=$(grep -oE 'SLOW UNIT|LeakSanitizer|AddressSanitizer: [a-z-]+|libFuzzer: [a-z-]+|Fatal error' "$log" | head -1 | tr ' :' '--' | tr -s '-' || true)
    for f in "$artifacts"*; do
      [ -f "$f" ] || continue
      sum=$(sha1sum "$f" | cut -c1-40)
      cp "$f" "Fuzz/crashes/$t-${kind:-failure}-$sum"
      outcome="FAILED (${kind:-rc $rc}: Fuzz/crashes/$t-${kind:-failure}-$sum)"
    done
    failed=1
    echo "---- fuzz-$t failed; the end of $log:" >&2
    grep -vE '^#[0-9]+ ' "$log" | tail -40 >&2
  fi
  if [ $merge -eq 1 ]; then
    "$BIN/fuzz-$t" -merge=1 -timeout=1 -close_fd_mask=1 "Tests/Fuzz/corpus/$t" "$corpus" > "$work/$t-merge.log" 2>&1 || true
  fi
  rows+=("$(printf '%-9s %12s %8s %12s %8s %10s  %s' "$t" "${execs:-?}" "${ft:-?}" "${corp:-?}" "${seconds}s" "${slowest:-?} ms" "$outcome")")
done

printf '%-9s %12s %8s %12s %8s %10s  %s\n' target executions ft corpus time slowest outcome
for r in "${rows[@]}"; do echo "$r"; done
exit $failed
