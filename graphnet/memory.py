"""The memory plan: which buffer lives where in one arena, so that buffers whose lifetimes do not overlap share
bytes.

A value is live from the step that writes it to the last step that reads it. Two values may share bytes only if
their live ranges are disjoint. Placement is "greedy by size": the largest values are placed first, each at the
lowest offset where it overlaps no already-placed value that is live at the same time. The arena's size is the
planned peak; the naive cost is the sum of all buffers, as if nothing were reused.
"""
from dataclasses import dataclass

ALIGNMENT = 64  # bytes: a cache line, and enough for any SIMD load


@dataclass
class Buffer:
    key: object          # what it holds (a node, or ('workspace', step))
    nbytes: int
    first: int           # the step that writes it (-1 for feeds, copied in before step 0)
    last: int            # the last step that reads it
    offset: int = -1

    def overlaps_in_time(self, other):
        return self.first <= other.last and other.first <= self.last


def aligned(nbytes):
    return (nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_offsets(buffers, reuse=True):
    """Assign each buffer an offset; return the arena size. Without reuse, buffers are laid end to end."""
    if not reuse:
        offset = 0
        for b in buffers:
            b.offset, offset = offset, offset + aligned(b.nbytes)
        return offset
    placed = []
    arena = 0
    for b in sorted(buffers, key=lambda b: (-b.nbytes, b.first)):
        offset = 0
        for other in sorted((p for p in placed if p.overlaps_in_time(b)), key=lambda p: p.offset):
            if offset + aligned(b.nbytes) <= other.offset:
                break                         # the gap before `other` is large enough
            offset = max(offset, other.offset + aligned(other.nbytes))
        b.offset = offset
        placed.append(b)
        arena = max(arena, offset + aligned(b.nbytes))
    return arena
