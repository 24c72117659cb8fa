#!/usr/bin/env python3
"""Peers for `dataflow bench --peers ray,numpy`: the same K-stage chain as `pass/disk` and
`pass/memory-*`, run through another system, timed the same way, in the same bench run.

    python3 python/bench_peers.py ray   --sizes 67108864,536870912 --stages 3 --runs 5
    python3 python/bench_peers.py numpy --sizes 67108864 --stages 3 --runs 5 --scratch /tmp/x

The chain: stage 0 fills a float32 ramp (`(i & 1023) / 1024`); each later stage reads its input
and writes `x * 1.0001 + 0.5` (NumPy, one thread; ours splits it over the cores).

- `peer/ray-chain`: each stage is a Ray task; values pass through Ray's object store (the source
  and every stage's result are objects; a stage reads its input as a zero-copy NumPy view). One
  sample: submit the chain, `ray.get` the last value. A local Ray instance is started once
  (`ray.init`), before anything is timed.
- `peer/ray-put`: `ray.put` of a NumPy array of the size (pseudo-random float32), per put.
Each Ray case runs once (twice for puts) untimed first, so that the object store's memory is
warm, as the bench's own store is prefaulted.
- `peer/numpy-chain`: each stage `np.save`s its value to a file, fsyncs it, and the next stage
  `np.load`s it (the files of `pass/disk`).

Writes one JSON document on standard output:
    {"results": [{"case": ..., "bytes": ..., "samples": [seconds, ...], "unit": "run"|"op"}],
     "notes": ["..."]}
A peer that cannot run (no NumPy, no Ray) gives no results and a note saying why; the exit
status is 0 then, so that the Swift side prints the note and goes on.
"""
import argparse
import json
import os
import sys
import time


def ramp(np, count):
    return (np.arange(count, dtype=np.int64) & 1023).astype(np.float32) * np.float32(1 / 1024)


def stage(np, x):
    return x * np.float32(1.0001) + np.float32(0.5)


def numpy_chain(np, sizes, stages, runs, scratch):
    results = []
    os.makedirs(scratch, exist_ok=True)
    paths = [os.path.join(scratch, f"peer-numpy-stage-{k}.npy") for k in range(stages)]

    def save(path, value):
        with open(path, "wb") as f:
            np.save(f, value)
            f.flush()
            os.fsync(f.fileno())

    for size in sizes:
        count = size // 4
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            save(paths[0], ramp(np, count))
            for k in range(1, max(stages, 1)):
                save(paths[k], stage(np, np.load(paths[k - 1])))
            samples.append(time.perf_counter() - start)
            for path in paths:
                if os.path.exists(path):
                    os.remove(path)
        results.append({"case": "peer/numpy-chain", "bytes": size, "samples": samples, "unit": "run"})
    return results


def ray_cases(np, sizes, put_sizes, stages, runs):
    import ray

    largest = max(sizes + put_sizes + [1 << 20])
    ray.init(
        address="local",  # a new instance of its own, never a cluster that runs here already
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=max(1 << 30, (stages + 2) * largest + (256 << 20)),
        configure_logging=False,
    )
    try:
        @ray.remote
        def source(count):
            return ramp(np, count)

        @ray.remote
        def transform(x):
            return stage(np, x)

        # Warm the workers (untimed): each task type once.
        ray.get(transform.remote(source.remote(1024)))
        results = []
        for size in sizes:
            count = size // 4
            samples = []
            # One untimed run first: the object store's memory is then warm, as the bench's own
            # store is prefaulted.
            for timed in [False] + [True] * runs:
                start = time.perf_counter()
                ref = source.remote(count)
                for _ in range(1, max(stages, 1)):
                    ref = transform.remote(ref)
                value = ray.get(ref)
                if timed:
                    samples.append(time.perf_counter() - start)
                del value, ref
            results.append({"case": "peer/ray-chain", "bytes": size, "samples": samples, "unit": "run"})
        rng = np.random.default_rng(4)
        for size in put_sizes:
            array = rng.standard_normal(size // 4, dtype=np.float32)
            samples = []
            for timed in [False, False] + [True] * runs:  # untimed first: warm memory
                start = time.perf_counter()
                ref = ray.put(array)
                if timed:
                    samples.append(time.perf_counter() - start)
                del ref
            results.append({"case": "peer/ray-put", "bytes": size, "samples": samples, "unit": "op"})
        return results
    finally:
        ray.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("peer", choices=["ray", "numpy"])
    parser.add_argument("--sizes", required=True, help="byte counts, comma-separated")
    parser.add_argument("--put-sizes", default="", help="byte counts for peer/ray-put (default: --sizes)")
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scratch", default="/tmp")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    put_sizes = [int(s) for s in args.put_sizes.split(",") if s] or sizes
    out = {"results": [], "notes": []}
    try:
        import numpy as np
    except ImportError:
        out["notes"].append(f"peer {args.peer}: skipped, {sys.executable} has no NumPy (pip install numpy)")
        print(json.dumps(out))
        return
    if args.peer == "numpy":
        out["results"] = numpy_chain(np, sizes, args.stages, args.runs, args.scratch)
    else:
        try:
            import ray  # noqa: F401
        except ImportError:
            out["notes"].append(f"peer ray: skipped, {sys.executable} has no Ray (pip install 'ray[default]', or Scripts/ray-local.sh install)")
            print(json.dumps(out))
            return
        out["results"] = ray_cases(np, sizes, put_sizes, args.stages, args.runs)
        out["notes"].append(f"peer ray: Ray {ray.__version__}, a local instance started for the bench")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
