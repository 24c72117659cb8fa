# swift-dataflow: the two set-up commands are `make demo` and `make test`.
SWIFT ?= swift
export DEBIAN_FRONTEND := noninteractive

.PHONY: demo test test-tsan deps bench clean

# System packages a fresh Debian machine lacks: liblz4 (spill-file compression) and libxxhash
# (spill-file checksums) for the Materialize module.
SYSTEM_PACKAGES := liblz4-dev libxxhash-dev
deps:
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(SYSTEM_PACKAGES)"; apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; fi

# The main job: a producer and a consumer process sharing a 64 MiB tensor through the store.
demo: deps
	$(SWIFT) run -c release store-example

# All tests, then the concurrency tests again under ThreadSanitizer.
test: deps
	$(SWIFT) test
	$(MAKE) test-tsan

test-tsan:
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan \
	  --filter "ObjectLifecycleTests|CrossProcessTests|SharedObjectStoreTests|TypedValueTests"

# Benchmarks (release build, ordo-one/benchmark): see Benchmarks/README.md.
bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

clean:
	rm -rf .build .build-tsan Benchmarks/.build
