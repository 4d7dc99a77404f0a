"""`local_part`: marks a method of a non-local module as its spatially local part (tiling protocol).

A module that pools globally (channel attention, an estimator's pooled tail) cannot be tiled as a whole, but most
of its work is often local: a DAN v1 block's convolutions before its channel attention, a DAN v2 estimator's
trunk before its global average. Marking that method lets `dan_blocks.inference.tiled` run it tile by tile (each
tile grown by the method's radius) and paste the tiles' interiors, instead of tiling its convolutions one by one
with a whole map between each pair:

```python
class Block(nn.Module):
    @local_part(lambda self: 2)                 # radius in LR pixels: two 3x3 convs
    def branch(self, feat: Tensor) -> Tensor:
        return self.conv2(self.act(self.conv1(feat)))

    def forward(self, feat: Tensor) -> Tensor:
        res = self.branch(feat)
        return feat + res * self.gate(res.mean((2, 3), keepdim=True))
```

The marker only records; the method is returned unchanged (no wrapper, nothing at call time). ``pooled=True``
says the caller uses only the output's spatial mean (a global average pooling, or ``.mean((-2, -1),
keepdim=True)``, both of which leave a 1 x 1 map as it is): a tiled run then returns that mean, accumulated from
the tiles, and never holds the output whole.

Contract of a marked method: its tensor arguments on the LR grid (or at an integer multiple of it) are cropped
per tile; others (a code, an image's mean) are passed whole; every map it returns at a pixel depends only on
its inputs within the radius, with no global pooling inside; a non-spatial output (a code) is the same in every
tile; an input returned as it is (a code map passed on) is recognised and not copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

__all__ = ["LocalPart", "local_part", "local_parts"]

_MARK = "__dan_blocks_local_part__"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class LocalPart:
    """What `local_part` recorded: ``radius(module)`` in LR pixels (None: not local after all, e.g. a part built
    from a sub-module that pools; it then runs whole), and whether only the spatial mean is used."""

    radius: Callable[[Any], int | None]
    pooled: bool = False


def local_part(radius: Callable[[Any], int | None], *, pooled: bool = False) -> Callable[[F], F]:
    """Mark a method as its module's spatially local part, of receptive radius ``radius(self)`` LR pixels."""

    def mark(method: F) -> F:
        setattr(method, _MARK, LocalPart(radius, pooled))
        return method

    return mark


def local_parts(module: nn.Module) -> dict[str, LocalPart]:
    """The marked methods of ``module``'s class (and its bases), by name."""
    found: dict[str, LocalPart] = {}
    for klass in reversed(type(module).__mro__):
        for name, value in vars(klass).items():
            part = getattr(value, _MARK, None)
            if isinstance(part, LocalPart):
                found[name] = part
            elif name in found and callable(value):  # overridden without the mark: no longer declared
                del found[name]
    return found
