"""Read swift-dataflow spill files (format version 1) from Python.

Needs numpy, and `lz4` and `xxhash` from PyPI (`pip install numpy lz4 xxhash`).

    import dataflow_spill
    header, value = dataflow_spill.read_value("run/values/normalize.dfspill")
    # value: numpy.ndarray for tensor<...>, str for string, bytes for bytes, JSON for json:...

Every check the Swift reader makes is made here too: magic, version, header checksum, sizes
against the file's length, payload checksum, decompressed length and its checksum. A damaged
file raises SpillFileError naming the file and what is wrong.

As a command: `python3 dataflow_spill.py FILE` prints a JSON summary of the file.
"""
import json
import struct
import sys

import lz4.frame
import numpy as np
import xxhash

MAGIC = b"DFSPILL1"
FORMAT_VERSION = 1
HEADER_BYTES = 256
CODECS = {0: "raw", 1: "lz4-frame"}
TENSOR_MAGIC = 0x524E534E
SCALARS = {
    "float32": np.float32, "float64": np.float64,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
}


class SpillFileError(Exception):
    """A spill file that is damaged, truncated, foreign or of a newer format."""


def _xxh3(data):
    return xxhash.xxh3_64_intdigest(data, seed=0)


def read(path):
    """Returns (header dict, raw value bytes) of the spill file at `path`, after every check."""
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < 8 or data[:8] != MAGIC:
        raise SpillFileError(f"spill file '{path}' is not a swift-dataflow spill file (bad magic)")
    if len(data) < HEADER_BYTES:
        raise SpillFileError(f"spill file '{path}' is {len(data)} bytes: its header is cut off")
    (version, codec, _, header_bytes, raw_bytes, stored_bytes, payload_sum, raw_sum,
     id_high, id_low, tag_length) = struct.unpack_from("<HBBIQQQQQQB", data, 8)
    if version > FORMAT_VERSION:
        raise SpillFileError(f"spill file '{path}' has format version {version}; this reader reads up to {FORMAT_VERSION}")
    (header_sum,) = struct.unpack_from("<Q", data, 248)
    if _xxh3(data[:248]) != header_sum:
        raise SpillFileError(f"spill file '{path}' has a corrupted header (header checksum mismatch)")
    if codec not in CODECS or header_bytes != HEADER_BYTES or not 1 <= tag_length <= 64:
        raise SpillFileError(f"spill file '{path}' has an invalid header")
    if len(data) != HEADER_BYTES + stored_bytes:
        raise SpillFileError(f"spill file '{path}' is {len(data)} bytes; its header promises {HEADER_BYTES + stored_bytes}")
    payload = data[HEADER_BYTES:]
    if _xxh3(payload) != payload_sum:
        raise SpillFileError(f"spill file '{path}' has a corrupted payload (checksum mismatch)")
    if codec == 0:
        raw = payload
    else:
        try:
            raw = lz4.frame.decompress(payload)
        except RuntimeError as error:
            raise SpillFileError(f"spill file '{path}' has a corrupted payload: it does not decompress ({error})")
    if len(raw) != raw_bytes or _xxh3(raw) != raw_sum:
        raise SpillFileError(f"spill file '{path}' decompresses to bytes that do not match its header")
    header = {
        "id": f"{id_high:016x}{id_low:016x}",
        "type_tag": data[65:65 + tag_length].decode("utf-8"),
        "codec": CODECS[codec],
        "raw_bytes": raw_bytes,
        "stored_bytes": stored_bytes,
    }
    return header, raw


def decode_tensor(raw, scalar_name):
    """A numpy view of a stored tensor's bytes (see Tensor in the Swift library)."""
    magic, rank, scalar_bytes = struct.unpack_from("<III", raw, 0)
    dtype = np.dtype(SCALARS[scalar_name]).newbyteorder("<")
    if magic != TENSOR_MAGIC or scalar_bytes != dtype.itemsize:
        raise SpillFileError(f"not a tensor of {scalar_name}")
    shape = struct.unpack_from(f"<{rank}q", raw, 16)
    offset = (16 + 8 * rank + 63) // 64 * 64
    count = int(np.prod(shape)) if rank else 1
    if len(raw) != offset + count * dtype.itemsize:
        raise SpillFileError(f"tensor of shape {shape} does not match its {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)


def read_value(path):
    """Returns (header, value): a numpy array, str, bytes or JSON value by the type tag."""
    header, raw = read(path)
    tag = header["type_tag"]
    if tag.startswith("tensor<") and tag.endswith(">"):
        return header, decode_tensor(raw, tag[len("tensor<"):-1])
    if tag == "string":
        return header, raw.decode("utf-8")
    if tag.startswith("json:"):
        return header, json.loads(raw)
    return header, raw


def main(argv):
    if len(argv) != 2:
        print("usage: dataflow_spill.py FILE", file=sys.stderr)
        return 2
    try:
        header, value = read_value(argv[1])
    except (SpillFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    summary = dict(header)
    if isinstance(value, np.ndarray):
        summary.update(shape=list(value.shape), dtype=str(value.dtype), sum=float(value.astype(np.float64).sum()),
                       first=value.reshape(-1)[:4].tolist())
    elif isinstance(value, bytes):
        summary.update(length=len(value))
    else:
        summary.update(value=value)
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
