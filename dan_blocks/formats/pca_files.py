"""The shipped default PCA matrices ``dan_blocks/formats/pca/setting{S}_k{K}_c{C}.pt``."""

from __future__ import annotations

import functools
from pathlib import Path

from torch import Tensor

from ..layers import PCAEncoder

__all__ = [
    "PCA_DIR",
    "available_default_pcas",
    "default_kernel_mean",
    "default_pca",
    "infer_setting",
    "with_default_kernel_mean",
]

#: folder of the shipped default PCA matrices ``setting{S}_k{K}_c{C}.pt``
PCA_DIR = Path(__file__).resolve().parent / "pca"


def available_default_pcas() -> list[str]:
    """File names of the shipped default PCA matrices."""
    return sorted(p.name for p in PCA_DIR.glob("setting*_k*_c*.pt"))


def default_pca(kernel_size: int = 21, code_length: int = 10, setting: int = 1) -> PCAEncoder:
    """The shipped PCA for a training-kernel distribution: ``dan_blocks/formats/pca/setting{S}_k{K}_c{C}.pt``.

    Fitted (30,000 kernels, seed 0) by ``dan-blocks fit-pca``; see docs/degradations.md.

    Raises:
        FileNotFoundError: no such file; the message lists the shipped ones and the command making it.
    """
    name = f"setting{setting}_k{kernel_size}_c{code_length}.pt"
    path = PCA_DIR / name
    if not path.is_file():
        # sizes no PCA can have get no fit-pca advice (fit-pca refuses them too); the advice never writes into
        # the installed package: the user's file is passed explicitly. (The kernel-size words are those of
        # dan_blocks.degradations.check_kernel_size, a floor above this module's.)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer (e.g. 11, 21, 31), got {kernel_size!r}")
        if isinstance(code_length, bool) or not isinstance(code_length, int) or not 1 <= code_length <= kernel_size**2:
            raise ValueError(
                f"code_length must be an integer in [1, kernel_size**2 = {kernel_size**2}], got {code_length!r}"
            )
        shipped = ", ".join(available_default_pcas()) or "none"
        raise FileNotFoundError(
            f"no default PCA {name} ships with dan-blocks (shipped: {shipped}). Make one with `dan-blocks fit-pca "
            f"--kernel-size {kernel_size} --code-length {code_length} --setting {setting} -o {name}` and pass it: "
            f"pca='{name}' (a path, a PCAEncoder or a (k*k, C) tensor; in an option file, network_g's pca: {name})"
        )
    return PCAEncoder.load(path)


@functools.cache
def default_kernel_mean(kernel_size: int, setting: int) -> Tensor | None:
    """The mean kernel (k*k,) of a setting's training distribution, from a shipped PCA file of that setting and
    kernel size (the mean of the 30,000 kernels drawn from the settings table that the file was fitted on);
    None when no such file ships. Cached: treat the result as read-only."""
    for name in available_default_pcas():
        if name.startswith(f"setting{setting}_k{kernel_size}_c"):
            encoder = PCAEncoder.load(PCA_DIR / name)
            if encoder.has_kernel_mean:
                return encoder.kernel_mean
    return None


def infer_setting(kernel_size: int, code_length: int) -> int:
    """The papers' setting a PCA size belongs to when nothing says: 1 for 21x21 kernels with 10-d codes (the
    release's DANv1 x4 setting-2 file is byte-identical to its setting-1 one), else 2."""
    return 1 if (kernel_size, code_length) == (21, 10) else 2


def with_default_kernel_mean(pca: PCAEncoder, setting: int | None = None) -> PCAEncoder:
    """``pca`` itself, given the setting's mean kernel (`default_kernel_mean`) if it has none yet (``setting``
    None: `infer_setting`)."""
    if setting is None:
        setting = infer_setting(pca.kernel_size, pca.code_length)
    if not pca.has_kernel_mean:
        mean = default_kernel_mean(pca.kernel_size, setting)
        if mean is not None:
            pca.set_kernel_mean(mean)
    return pca
