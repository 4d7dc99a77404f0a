"""Work that depends only on the LR image, computed once per DAN call and shared by its iterations.

In every iteration $\\hat x_i = R(y, c_{i-1})$, $c_i = E(\\hat x_i, y)$ the LR image $y$ is
the same, so the restorer's and the estimator's LR heads (and, in DAN v2, the first block's basic path
$B_1(\\mathrm{head}(y))$, which the code only gates afterwards) give the same tensors every time.
`FastDAN` passes one `LRMemo` to the restorer and the estimator of
one call when they accept it (class attribute ``accepts_lr_memo = True`` and a ``memo`` keyword); nothing
is kept after the call. Exact: the same ops on the same inputs, computed once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import Tensor, nn

from .versions import tensor_version

__all__ = ["LRMemo", "reuse"]

T = TypeVar("T")


class LRMemo:
    """A per-call store keyed by the module that computed an entry, valid for one LR tensor only.

    ``get(owner, lr, compute)`` returns ``compute()``, computed once per ``owner`` while ``lr`` is the tensor
    the memo was made for (a different tensor, or one changed in place since, is computed afresh).
    """

    def __init__(self, lr: Tensor) -> None:
        self.lr = lr
        self._version = tensor_version(lr)
        self._store: dict[int, Any] = {}

    def get(self, owner: nn.Module, lr: Tensor, compute: Callable[[], T]) -> T:
        if lr is not self.lr or tensor_version(lr) != self._version:
            return compute()
        key = id(owner)
        if key not in self._store:
            self._store[key] = compute()
        return self._store[key]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._store)


def reuse(memo: LRMemo | None, owner: nn.Module, lr: Tensor, compute: Callable[[], T]) -> T:
    """``memo.get(owner, lr, compute)``, or just ``compute()`` without a memo (a module called on its own)."""
    return compute() if memo is None else memo.get(owner, lr, compute)
