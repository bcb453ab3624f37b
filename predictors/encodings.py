"""Fixed-length encodings of any :class:`~nas.ir.ArchGraph`, for the tabular baselines.

Both are derived from the IR alone, so they work on every search space (no per-space adjacency
matrix or op list).

:func:`graph_encoding` ``(ENCODING_DIM(buckets),)`` concatenates

* the graph-level features :data:`~predictors.encoders.GLOBAL_FEATURES` (params, FLOPs, depth, path
  counts, weighted depths);
* ``log1p`` of the count of each op of :data:`~nas.ir.features.OP_VOCAB`;
* ``log1p`` of hashed Weisfeiler-Lehman subtree counts (Shervashidze et al., "Weisfeiler-Lehman
  Graph Kernels", JMLR 2011; used for NAS by Ru et al., "Interpretable Neural Architecture Search
  via Bayesian Optimisation with Weisfeiler-Lehman Kernels", ICLR 2021). A node's label starts as its
  op with kernel and stride; round ``r + 1`` relabels it with its label and the sorted labels of its
  producers and of its consumers. The labels of rounds ``1..rounds`` are hashed (BLAKE2b, stable
  across processes) into ``buckets`` counters.

:func:`text_tokens` is the analyzer of the text baseline: :meth:`ArchGraph.to_text` lines with the
node numbers removed and operand references rewritten relative to the line (``%-3`` is the node three
lines up), so that the same local structure gives the same token wherever it sits; the tokens are
the lines (1-grams), runs of ``n`` consecutive lines (n-grams) and the words of each line.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np

from nas.ir import ArchGraph
from nas.ir.features import OP_VOCAB
from predictors.encoders import GLOBAL_FEATURES, global_features


def encoding_dim(buckets: int) -> int:
    """Length of :func:`graph_encoding`'s vector."""
    return len(GLOBAL_FEATURES) + len(OP_VOCAB) + buckets


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def graph_encoding(graph: ArchGraph, *, buckets: int = 256, rounds: int = 2) -> np.ndarray:
    """The graph's encoding, float64 ``(encoding_dim(buckets),)`` (see the module docstring)."""
    nodes = graph.nodes
    index = {n.name: i for i, n in enumerate(nodes)}
    preds: list[list[int]] = [[index[r.node] for _, r in n.refs] for n in nodes]
    succs: list[list[int]] = [[] for _ in nodes]
    for j, p in enumerate(preds):
        for i in p:
            succs[i].append(j)
    labels = [f"{n.op}/{list(n.attrs.get('kernel', ()))}/{list(n.attrs.get('stride', ()))}" for n in nodes]
    wl = np.zeros(buckets)
    for r in range(1, rounds + 1):
        labels = [_digest(f"{labels[j]}<{sorted(labels[i] for i in preds[j])}>{sorted(labels[i] for i in succs[j])}")
                  for j in range(len(nodes))]
        for lab in labels:
            wl[int(_digest(f"{r}:{lab}"), 16) % buckets] += 1
    ops = Counter(n.op for n in nodes)
    counts = np.array([ops.get(op, 0) for op in OP_VOCAB], dtype=np.float64)
    return np.concatenate([global_features(graph), np.log1p(counts), np.log1p(wl)])


_REF = re.compile(r"%(\d+)")


def text_lines(graph: ArchGraph) -> list[str]:
    """``graph.to_text()`` lines without node numbers, operands written relative to their line."""
    out = []
    for i, line in enumerate(graph.to_text().splitlines()):
        body = line.split(" = ", 1)[1] if " = " in line else line
        out.append(_REF.sub(lambda m, i=i: f"%-{i - int(m.group(1))}", body))  # type: ignore[misc]
    return out


def text_tokens(graph: ArchGraph, *, ngram: int = 2) -> list[str]:
    """The text baseline's tokens for ``graph`` (see the module docstring)."""
    lines = text_lines(graph)
    tokens = list(lines)
    for n in range(2, ngram + 1):
        tokens.extend(" || ".join(lines[i:i + n]) for i in range(len(lines) - n + 1))
    for line in lines:
        tokens.extend(f"w:{w}" for w in re.split(r"[\s(),\[\]]+", line) if w)
    return tokens
