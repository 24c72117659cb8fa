# swift-dataflow: the two set-up commands are `make demo` and `make test`.
SWIFT ?= swift
export DEBIAN_FRONTEND := noninteractive

.PHONY: demo test test-tsan deps bench peers clean

# System packages a fresh Debian machine lacks: liblz4 (spill-file compression) and libxxhash
# (spill-file checksums) for the Materialize module, and librsvg2-bin (rsvg-convert: the tests
# render the bench figures).
SYSTEM_PACKAGES := liblz4-dev libxxhash-dev librsvg2-bin
deps:
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(SYSTEM_PACKAGES)"; apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; fi
	@# The Python spill-file reader (python/dataflow_spill.py) and its test need these from PyPI.
	@python3 -c "import numpy, lz4.frame, xxhash" 2>/dev/null || \
	  { echo "installing numpy lz4 xxhash (PyPI)"; python3 -m pip install -q --root-user-action=ignore numpy lz4 xxhash; }

# The main job: the demo pipeline (synthesize 256 MiB of features, normalize, fit a linear model,
# evaluate) as Swift functions passing tensors through the embedded store.
demo: deps
	$(SWIFT) run -c release dataflow demo

# All tests, then the concurrency tests again under ThreadSanitizer.
test: deps
	$(SWIFT) test
	$(MAKE) test-tsan

# (MemoryPressureTests are left out: under ThreadSanitizer their 16 MiB fills keep both cores busy
# for minutes and starve the timers of the suites beside them; the room maker's concurrency is
# covered by SpillManagerTests.)
# (Swift's crash backtracer is off here: under ThreadSanitizer it hangs instead of reporting; a
# crash then shows ThreadSanitizer's own report. The log is kept in a file and printed; after a
# failure its last 12 KB are printed again, so that the report is the last thing CI shows.)
# (Three SLURM and three Ray tests run under it too when a cluster answers: the executors' run
# loops are concurrency code; the rest of their suites spends its time waiting for the engines.)
TSAN_SUITES := SlurmExecutorTests/(aThreeStage|aFiftyWayMap|aCancelledRun)|RayExecutorTests/(aThreeStage|aStoppedRun|maxSubmit)|ExecutorConformanceTests|PerTaskExecutorTests|RequestedResultsTests|ObjectLifecycleTests|CrossProcessTests|SharedObjectStoreTests|TypedValueTests|SpillManagerTests|PolicyTableTests|SpillFileTests|WorkflowTests|ShellTaskTests|WorkerModeTests|WireFormatTests|ProcessExecutorTests|LineageTests|ResumeTests
# The interrupt tests run programs built with ThreadSanitizer too (their signal handling and
# cancellation): on their own afterwards, since beside 20 suites a program took minutes to start.
TSAN_ALONE := InterruptTests/(ctrlC|sigterm)|SlurmInterruptTests/ctrlC|RayInterruptTests
test-tsan:
	@mkdir -p .build-tsan
	@if SWIFT_BACKTRACE=enable=no $(SWIFT) test --sanitize=thread --scratch-path .build-tsan \
	  --filter "$(TSAN_SUITES)" > .build-tsan/test-tsan.log 2>&1 && SWIFT_BACKTRACE=enable=no $(SWIFT) test --sanitize=thread \
	  --scratch-path .build-tsan --skip-build --filter "$(TSAN_ALONE)" >> .build-tsan/test-tsan.log 2>&1; then \
	  cat .build-tsan/test-tsan.log; \
	else status=$$?; cat .build-tsan/test-tsan.log; echo "---- make test-tsan failed ($$status); the log's end again:"; \
	  tail -c 12000 .build-tsan/test-tsan.log; exit 1; fi
	@! grep -q "WARNING: ThreadSanitizer" .build-tsan/test-tsan.log || (echo "make test-tsan: ThreadSanitizer reported a race"; exit 1)

# Benchmarks (release build, ordo-one/benchmark): see Benchmarks/README.md.
bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

# The peers of `dataflow bench --peers ray,numpy` (python/bench_peers.py): NumPy comes with
# `deps`; this adds Ray (ray[default], the version the Ray tests use).
peers: deps
	RAY_LOCAL_VERSION=2.60.0 Scripts/ray-local.sh install

clean:
	rm -rf .build .build-tsan Benchmarks/.build
