"""The papers' settings in one table: every user of these numbers (presets, degradation presets, PCA fitting,
test-set protocols) reads them from here.

Sources: DAN v1 (NeurIPS 2020) and v2 (TPAMI) papers and release; see ``shared/spec/dan-reference.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "DIV2KRK_KERNEL_SIZES",
    "GAUSSIAN8_SIGMA_RANGES",
    "SETTING1",
    "SETTING1_SIGMA_RANGES",
    "SETTING2",
    "SETTINGS",
    "Setting",
]

#: Setting 1 training σ range per scale: the paper's ("paper") and the release's single range ("release")
SETTING1_SIGMA_RANGES: dict[str, dict[int, tuple[float, float]]] = {
    "paper": {2: (0.2, 2.0), 3: (0.2, 3.0), 4: (0.2, 4.0)},
    "release": {2: (0.2, 4.0), 3: (0.2, 4.0), 4: (0.2, 4.0)},
}

#: Gaussian8 test protocol: 8 evenly spaced σ in these closed ranges, per scale
GAUSSIAN8_SIGMA_RANGES: dict[int, tuple[float, float]] = {2: (0.80, 1.60), 3: (1.35, 2.40), 4: (1.8, 3.2)}

#: DIV2KRK-style anisotropic test sets: kernel size per scale (DIV2KRK: 11 at x2, 31 at x4)
DIV2KRK_KERNEL_SIZES: dict[int, int] = {2: 11, 3: 21, 4: 31}


@dataclass(frozen=True)
class Setting:
    """One training-kernel distribution of the papers.

    Attributes:
        number: 1 (isotropic Gaussian) or 2 (anisotropic Gaussian with multiplicative tap noise).
        kernel_sizes: the kernel size ``k`` per scale.
        code_lengths: the PCA code length ``C`` per kernel size.
        sigma: the σ range the shipped PCA matrices were fitted on (setting 1: the release's U(0.2, 4.0)).
        theta: the rotation range (setting 2), else None.
        random_disturb: each tap multiplied by (1 + U(0, 0.25)) before normalising (setting 2).
    """

    number: int
    kernel_sizes: dict[int, int]
    code_lengths: dict[int, int]
    sigma: tuple[float, float]
    theta: tuple[float, float] | None
    random_disturb: bool

    def kernel_size(self, scale: int) -> int:
        """``k`` for ``scale``.

        Raises:
            ValueError: the setting defines no kernel size for ``scale``.
        """
        if scale not in self.kernel_sizes:
            raise ValueError(
                f"setting {self.number} is defined for scales {sorted(self.kernel_sizes)}, got {scale}; "
                "give kernel_size explicitly"
            )
        return self.kernel_sizes[scale]

    def code_length(self, kernel_size: int) -> int:
        """``C`` for ``kernel_size`` (10 unless the papers say otherwise)."""
        return self.code_lengths.get(kernel_size, 10)


SETTING1 = Setting(1, {1: 21, 2: 21, 3: 21, 4: 21}, {21: 10}, (0.2, 4.0), None, False)
#: x4 uses k = 21 in the release and k = 31 (C = 15) for DIV2KRK, as the authors advise
SETTING2 = Setting(2, {2: 11, 4: 21}, {11: 10, 21: 10, 31: 15}, (0.6, 5.0), (-math.pi, math.pi), True)
SETTINGS: dict[int, Setting] = {1: SETTING1, 2: SETTING2}
