"""Keep torch's intra-op threads from oversubscribing the cores in the library's dense passes.

torch runs a convolution or a matrix product on its intra-op pool, one OpenMP thread per
core by default. On a machine whose cores are busy (the event simulation's frame loop, the
workers of :func:`sigmadelta.simulate_batch`, other processes) those threads spin against
the other work: on a loaded 2-core VM ``sigmadelta demo`` spent 49 s wall on 17 s of CPU.
:func:`torch_limit` holds the pool at ``threads`` threads while the library itself runs
torch (:func:`sigmadelta.convert`, :func:`sigmadelta.reference`,
:func:`sigmadelta.dense.evaluate`, the scale searches of :mod:`sigmadelta.scales`, the
demo's dense ANN passes) and sets ``torch.get_num_threads()`` back afterwards, also when
the block raises.

With torch's OpenMP backend (the CPU wheels) the count belongs to the calling thread
(``torch.set_num_threads`` sets that thread's OpenMP count, and the default of threads that
start later): a block sets the count of the thread that enters it and restores that count when
it leaves, so blocks nest, and blocks in other Python threads each hold their own. torch is
imported on first use, not with the package.
"""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["torch_limit", "check_torch_threads", "DEFAULT_TORCH_THREADS"]

# The library's default: one intra-op thread (see DEVELOPERS.md, "torch threads", for the
# measurement behind it). None leaves torch's own setting alone.
DEFAULT_TORCH_THREADS: int | None = 1


def check_torch_threads(threads) -> int | None:
    """``threads`` as an int >= 1, or None (leave torch alone); anything else is a ValueError."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"torch_threads must be a positive int or None (leave torch alone), "
                         f"got {threads!r}")
    return threads


@contextmanager
def torch_limit(threads: int | None):
    """Hold torch's intra-op pool at ``threads`` threads inside the block (None: leave it alone).

    On leaving (normally or by an exception) the calling thread's count found on entry
    (``torch.get_num_threads()``) is set back. ``threads`` is checked by
    :func:`check_torch_threads`. Entering and leaving a block that changes nothing
    (the count already ``threads``) costs no torch call.
    """
    threads = check_torch_threads(threads)
    if threads is None:
        yield
        return
    import torch

    saved = torch.get_num_threads()
    if saved == threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
