"""A counter-based random generator every backend can reproduce bit for bit.

uniform(seed, counter, n)[i] = top 24 bits of splitmix64(key + i) / 2²⁴,  key = splitmix64(seed·2³² + counter)

Number i of a stream depends on i alone, so a part of a batch can draw its own part of the stream: a shard that
starts at sample s of the batch starts at number s · (elements per sample) — `stream_start` (data-parallel
training runs a shard of each batch on every rank: graphnet/distributed).

splitmix64 (Steele, Lea & Flood 2014) is a 64-bit mixing function: each output bit depends on every input bit,
so consecutive indices give independent-looking numbers, and no generator state needs storing.
"""
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(z):
    z = np.asarray(z, dtype=np.uint64) + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


def uniform(seed, counter, n, start=0):
    """Numbers start, ..., start + n − 1 of the stream of (seed, counter): floats in [0, 1)."""
    with np.errstate(over="ignore"):
        key = splitmix64(np.array([(seed << 32) + counter], dtype=np.uint64))[0]
        bits = splitmix64(np.arange(start, start + n, dtype=np.uint64) + key)
    return (bits >> np.uint64(40)).astype(np.float64) * 2.0 ** -24


def stream_start(shape, first_sample):
    """Where the stream of an input of `shape` (N, ...) starts when its first sample is sample `first_sample` of
    the batch: first_sample · (elements per sample); 0 for the whole batch."""
    if not first_sample or not shape or not shape[0]:
        return 0
    return int(first_sample) * (int(np.prod(shape, dtype=np.int64)) // int(shape[0]))
