"""Channel routing written in ``forward``: channel shuffle and chunk/split along channels.

* channel shuffle (ShuffleNet): ``x.view(b, g, c // g, h, w).transpose(1, 2).contiguous()
  .view(b, c, h, w)`` (also ``permute(0, 2, 1, 3, 4)``, ``torch.flatten(x, 1, 2)``),
  ``nn.ChannelShuffle`` and ``F.channel_shuffle``;
* ``x.chunk(n, dim=1)``, ``x.split(size_or_sections, dim=1)`` and their ``torch.`` forms,
  each part taken by ``parts[i]`` or by unpacking.

Each becomes a :class:`~sigmadelta.graph.Gather` (``y[c] = x[src[c]]``: routing, no
arithmetic, no synaptic operations). A permutation read only by a Conv2d or
ConvTranspose2d of groups 1 is folded into that layer's input-channel weights instead
(``W'[:, src[c]] = W[:, c]``), and a gather of a gather is one gather; gathers nobody reads
afterwards are dropped (:func:`drop_dead_gathers`). The 5-D view in between is held as a
:class:`Grouped` (the source channel of every ``[i, j]``), not as a node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import graph as g
from ._util import UnsupportedLayerError, arg, torch_shape

__all__ = ["Grouped", "Split", "grouped_view", "transpose", "permute", "contiguous", "split",
           "getitem", "channel_shuffle", "make_gather", "fold_permutation", "drop_dead_gathers"]

TRANSPOSE_HINT = "(reordering axes) is not supported; use torch.flatten(x, 1) to flatten"


@dataclass
class Grouped:
    """A 5-D view ``[n1, n2, H, W]`` of node ``src``'s channels: ``ch[i, j]`` is the source
    channel at ``[i, j]``."""

    src: int
    ch: np.ndarray


@dataclass
class Split:
    """The parts of a chunk/split of node ``src``: ``(start, size)`` channel ranges."""

    src: int
    parts: list[tuple[int, int]]


def _pending(ctx, fx_arg):
    return ctx.pending.get(fx_arg.name) if hasattr(fx_arg, "name") else None


def make_gather(ctx, node, src: int, channels, name: str | None = None) -> int:
    """A :class:`~sigmadelta.graph.Gather` of ``channels`` of node ``src`` (composed with
    ``src`` if that is a gather; the source itself if ``channels`` is all of them in order)."""
    chans = np.asarray(channels, np.int64)
    prod = ctx.nodes[src]
    if isinstance(prod, g.Gather):
        chans, src = np.asarray(prod.src, np.int64)[chans], prod.inputs[0]
    shape = ctx.nodes[src].shape
    if len(chans) == shape[0] and (chans == np.arange(shape[0])).all():
        return src
    return ctx.add(g.Gather, node, inputs=(src,), shape=(len(chans), *shape[1:]), src=chans,
                   name=name)


def grouped_view(ctx, node, out: tuple[int, ...]):
    """A reshape taking part in a channel shuffle: the 5-D view of ``[C, H, W]`` (recorded,
    value None), or the view back to ``[C, H, W]`` of a grouped tensor (a gather). ``out``
    is the traced shape, batch axis included. Returns ``False`` for any other reshape."""
    pend = _pending(ctx, node.args[0])
    if isinstance(pend, Grouped):
        if tuple(out[1:]) == tuple(ctx.nodes[pend.src].shape):  # back to [C, H, W] (batch kept)
            return make_gather(ctx, node, pend.src, pend.ch.reshape(-1))
        raise UnsupportedLayerError(f"{ctx.path(node)}: a reshape of a grouped channel view to "
                                    f"{out}; only the view back to [C, H, W] (channel shuffle)")
    src = ctx.env.get(node.args[0].name)
    if src is None or len(out) != 5 or out[0] != 1:
        return False
    if len(ctx.nodes[src].shape) != 3:
        return False
    c, h, w = ctx.nodes[src].shape
    n1, n2 = out[1:3]
    if n1 * n2 != c or tuple(out[3:]) != (h, w):
        return False
    ctx.pending[node.name] = Grouped(src, np.arange(c).reshape(n1, n2))
    return None


def _swap(ctx, node, dims) -> int | None:
    pend = _pending(ctx, node.args[0])
    nd = len(torch_shape(node.args[0])) + 1
    if not isinstance(pend, Grouped) or sorted(d % nd for d in dims) != [1, 2]:
        raise UnsupportedLayerError(f"cannot convert '{node.name}': {node.target} {TRANSPOSE_HINT}"
                                    f" (only the channel-shuffle transpose of a grouped view)")
    ctx.pending[node.name] = Grouped(pend.src, pend.ch.T)
    return None


def transpose(ctx, node, m=None) -> int | None:
    """``x.transpose(1, 2)`` / ``torch.transpose`` of a grouped view (channel shuffle)."""
    return _swap(ctx, node, (arg(node, 1, "dim0"), arg(node, 2, "dim1")))


def permute(ctx, node, m=None) -> int | None:
    """``x.permute(0, 2, 1, 3, 4)`` of a grouped view (channel shuffle)."""
    dims = node.args[1:] if len(node.args) > 2 else arg(node, 1, "dims", ())
    dims = tuple(dims)
    if len(dims) == 5 and dims[0] == 0 and tuple(dims[3:]) == (3, 4):
        return _swap(ctx, node, dims[1:3])
    return _swap(ctx, node, ())


def contiguous(ctx, node, m=None) -> int | None:
    """``x.contiguous()``: the same value (a grouped view stays one)."""
    pend = _pending(ctx, node.args[0])
    if pend is not None:
        ctx.pending[node.name] = pend
    return ctx.env[node.args[0].name]


def split(ctx, node, m=None) -> None:
    """``x.chunk(n, dim=1)`` / ``x.split(s, dim=1)``: recorded; ``parts[i]`` makes a gather."""
    dim = arg(node, 2, "dim", 0)
    nd = len(torch_shape(node.args[0])) + 1
    if dim % nd != 1:
        raise UnsupportedLayerError(f"{ctx.path(node)}: {node.target} along dim {dim}; only "
                                    f"along channels (dim=1)")
    sizes = [int(t.shape[1]) for t in node.meta["tensor_meta"]]
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    ctx.pending[node.name] = Split(ctx.env[node.args[0].name], list(zip(starts, sizes, strict=True)))
    return None


def getitem(sizes_mapper):
    """``parts[i]`` of a chunk/split: a gather of its channel range; else ``sizes_mapper``."""
    def mapper(ctx, node, m=None):
        pend = _pending(ctx, node.args[0])
        if isinstance(pend, Split):
            start, size = pend.parts[node.args[1]]
            return make_gather(ctx, node, pend.src, np.arange(start, start + size))
        if isinstance(pend, Grouped):
            raise UnsupportedLayerError(f"cannot convert '{node.name}': indexing a grouped view")
        return sizes_mapper(ctx, node, m)
    mapper.accepts_sizes = True
    return mapper


def channel_shuffle(ctx, node, m=None) -> int:
    """``nn.ChannelShuffle(g)`` / ``F.channel_shuffle(x, g)``: channel ``j*g + i`` reads
    ``i*(C/g) + j``."""
    groups = int(m.groups if m is not None else arg(node, 1, "groups"))
    src = ctx.env[node.args[0].name]
    c = ctx.nodes[src].shape[0]
    return make_gather(ctx, node, src, np.arange(c).reshape(groups, c // groups).T.reshape(-1))


for _f in (grouped_view, transpose, permute, contiguous, split):
    _f.accepts_sizes = True  # they act on the grouped views and splits, held as None


def fold_permutation(ctx, src: int, weight: np.ndarray, axis: int) -> tuple[int, np.ndarray]:
    """Read through a channel permutation: if node ``src`` is a gather permuting all channels,
    ``(its input, weight with the input-channel axis reordered)``, else unchanged."""
    prod = ctx.nodes[src]
    if not isinstance(prod, g.Gather):
        return src, weight
    perm = np.asarray(prod.src, np.int64)
    inner = ctx.nodes[prod.inputs[0]].shape[0]
    if len(perm) != inner:  # a selection (chunk), not a permutation: keep the gather
        return src, weight
    return prod.inputs[0], np.ascontiguousarray(np.take(weight, np.argsort(perm), axis=axis))


def drop_dead_gathers(nodes: list, output: int) -> tuple[list, int]:
    """Remove gathers that nothing reads (folded or composed away); renumber the rest."""
    dead: set[int] = set()
    while True:
        read = {j for i, n in enumerate(nodes) if i not in dead for j in n.inputs} | {output}
        new = {i for i, n in enumerate(nodes) if isinstance(n, g.Gather) and i not in read} - dead
        if not new:
            break
        dead |= new
    if not dead:
        return nodes, output
    index = {}
    kept = []
    for i, n in enumerate(nodes):
        if i not in dead:
            index[i] = len(kept)
            n.inputs = tuple(index[j] for j in n.inputs)
            kept.append(n)
    return kept, index[output]
