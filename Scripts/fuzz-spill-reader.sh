#!/usr/bin/env bash
# Fuzzes the spill-file reader with libFuzzer (and AddressSanitizer) for a bounded time.
#
# Usage: Scripts/fuzz-spill-reader.sh [SECONDS]   (default 60)
# Builds Fuzz/ with --sanitize fuzzer --sanitize address, writes seed files (valid raw and LZ4
# spill files) into .fuzz/seeds, and runs the fuzzer over .fuzz/corpus for SECONDS. A crash
# leaves crash-* files in .fuzz/ and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
make -s deps
swift build -c release --package-path Fuzz --product SpillFileSeeds
# A build folder of its own: SwiftPM would otherwise reuse objects built without the sanitizers.
# `--sanitize fuzzer` makes SwiftPM link libFuzzer's main; `-Xswiftc -sanitize=...` instruments
# every module, the library under test included (`--sanitize` alone covers only this package).
swift build -c release --package-path Fuzz --scratch-path Fuzz/.build-fuzzer --product SpillFileFuzzer \
  --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address
mkdir -p .fuzz/seeds .fuzz/corpus
Fuzz/.build/release/SpillFileSeeds .fuzz/seeds
cd .fuzz
../Fuzz/.build-fuzzer/release/SpillFileFuzzer -max_total_time="$seconds" -max_len=65536 -timeout=10 corpus seeds
