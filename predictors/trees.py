"""Gradient-boosted regression trees stored as plain arrays, predicted with numpy.

The tree baselines fit scikit-learn's ``GradientBoostingRegressor`` (Friedman, "Greedy Function
Approximation: A Gradient Boosting Machine", Annals of Statistics 2001) and keep only its numbers:
for every tree the documented ``tree_`` arrays (``children_left``, ``children_right``, ``feature``,
``threshold``, ``value``, see scikit-learn's "Understanding the decision tree structure"), the
learning rate and the initial constant ``init_``. A fitted ensemble predicts

.. math::
    \\hat y(x) = c_0 + \\nu \\sum_t v_t(\\mathrm{leaf}_t(x)),

where ``leaf_t`` walks tree ``t`` from its root, going left when ``x[feature] <= threshold``, with
``x`` rounded to float32 first as scikit-learn's trees do. :class:`TreeArrays` holds several such
ensembles (bagged models) in flat arrays, so saving needs no pickle and loading needs no
scikit-learn; the tests check :meth:`TreeArrays.predict` against scikit-learn's own ``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nas.errors import PredictorFileError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_FIELDS = ("left", "right", "feature", "threshold", "value", "roots", "tree_model", "tree_weight", "init")


@dataclass(frozen=True)
class TreeArrays:
    """``M`` boosted ensembles of ``T`` trees in total with ``N`` nodes in total.

    ``left``, ``right`` ``(N,)``: global child indices (-1 at a leaf); ``feature`` ``(N,)``;
    ``threshold``, ``value`` ``(N,)``; ``roots`` ``(T,)``: each tree's root node; ``tree_model``
    ``(T,)``: the ensemble a tree belongs to; ``tree_weight`` ``(T,)``: its learning rate;
    ``init`` ``(M,)``: each ensemble's constant.
    """

    left: IntArray
    right: IntArray
    feature: IntArray
    threshold: FloatArray
    value: FloatArray
    roots: IntArray
    tree_model: IntArray
    tree_weight: FloatArray
    init: FloatArray

    @classmethod
    def from_sklearn(cls, models: Sequence[Any]) -> TreeArrays:
        """Flatten fitted ``GradientBoostingRegressor``s (squared-error loss, one output)."""
        left, right, feature, threshold, value = [], [], [], [], []
        roots, tree_model, tree_weight, init = [], [], [], []
        offset = 0
        for m, model in enumerate(models):
            init.append(float(np.ravel(model.init_.constant_)[0]))
            for est in model.estimators_[:, 0]:
                t = est.tree_
                leaf = t.children_left < 0
                left.append(np.where(leaf, -1, t.children_left + offset))
                right.append(np.where(leaf, -1, t.children_right + offset))
                feature.append(np.where(leaf, 0, t.feature))
                threshold.append(np.where(leaf, 0.0, t.threshold))
                value.append(t.value.reshape(t.node_count, -1)[:, 0])
                roots.append(offset)
                tree_model.append(m)
                tree_weight.append(model.learning_rate)
                offset += t.node_count
        return cls(
            np.concatenate(left).astype(np.int64), np.concatenate(right).astype(np.int64),
            np.concatenate(feature).astype(np.int64), np.concatenate(threshold).astype(np.float64),
            np.concatenate(value).astype(np.float64), np.array(roots, np.int64), np.array(tree_model, np.int64),
            np.array(tree_weight, np.float64), np.array(init, np.float64),
        )

    def predict(self, x: npt.ArrayLike) -> FloatArray:
        """``(n, M)``: every ensemble's prediction for the rows of ``x`` ``(n, f)``."""
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)  # what scikit-learn's trees compare
        n = x32.shape[0]
        node = np.broadcast_to(self.roots, (n, self.roots.size)).copy()  # (n, T) current node per tree
        rows = np.arange(n)[:, None]
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                break
            go_left = x32[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        contrib = self.value[node] * self.tree_weight  # (n, T)
        out = np.zeros((n, self.init.size))
        for m in range(self.init.size):  # trees in fitting order, summed as scikit-learn does
            for t in np.flatnonzero(self.tree_model == m):
                out[:, m] += contrib[:, t]
        return out + self.init

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}/{k}": getattr(self, k) for k in _FIELDS}

    @classmethod
    def from_arrays(cls, prefix: str, arrays: Mapping[str, np.ndarray], path: str | Path) -> TreeArrays:
        missing = [k for k in _FIELDS if f"{prefix}/{k}" not in arrays]
        if missing:
            raise PredictorFileError(f"{path}: the tree arrays {missing} are missing under {prefix!r}")
        trees = cls(**{k: arrays[f"{prefix}/{k}"] for k in _FIELDS})
        index = [k for k in ("left", "right", "feature", "roots", "tree_model")
                 if not np.issubdtype(getattr(trees, k).dtype, np.integer)]
        if index:
            raise PredictorFileError(f"{path}: the tree index arrays {index} under {prefix!r} are not integers")
        n = trees.value.size
        ok = (
            all(getattr(trees, k).shape == (n,) for k in ("left", "right", "feature", "threshold"))
            and trees.init.ndim == 1 and trees.roots.ndim == 1
            and trees.tree_model.shape == trees.roots.shape == trees.tree_weight.shape
            and int(max(trees.left.max(initial=-1), trees.right.max(initial=-1), trees.roots.max(initial=-1))) < n
            and (trees.tree_model.size == 0 or int(trees.tree_model.max()) < trees.init.size)
        )
        if ok:  # every walk ends: a child lies after its parent (scikit-learn numbers nodes depth first)
            idx = np.arange(n)
            ok = bool(
                ((trees.left == -1) | (trees.left > idx)).all() and ((trees.right == -1) | (trees.right > idx)).all()
                and ((trees.left >= 0) == (trees.right >= 0)).all() and (trees.feature >= 0).all()
                and (trees.roots >= 0).all() and (trees.tree_model >= 0).all()
            )
        if not ok:
            raise PredictorFileError(f"{path}: the tree arrays under {prefix!r} are inconsistent")
        return trees
