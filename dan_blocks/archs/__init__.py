"""DAN v1/v2 architectures, MANet (estimator, RRDB-SFT restorer, stage 3), IKC, DCLS and DASR, the generic
alternation, presets.

The files they are read from and written to (the releases', MANet's, dan-blocks' own, PCA files) are
`dan_blocks.formats`.

Every class here is registered in dan-blocks' `ARCH_REGISTRY`; ``import dan_blocks.basicsr`` mirrors
them into BasicSR's, ``import dan_blocks.timm`` registers ``dan_v1_x2`` ... ``dan_v2_x4`` in timm.
"""

from ..formats.pca_files import available_default_pcas, default_pca
from .builders import PCALike, build_arch, build_module, lookup_arch, resolve_pca
from .dan_arch import DAN, STARTS, SROnly
from .dan_v1_arch import EstimatorV1, RestorerV1
from .dan_v2_arch import EstimatorV2, RestorerV2
from .dasr_arch import DASR, DASREncoder, DASRRestorer, DegradationContrast
from .dcls_arch import DCLS, DCLSRestorer, DDLKEstimator, dcls_kernel_target
from .family import family_rows, family_table
from .ikc_arch import IKC, SFTMD, IKCCorrector, IKCPredictor, best_step_by_psnr
from .manet_arch import MANetEstimator
from .manet_rrdb_arch import MANetRRDB
from .presets import DANv1, DANv2, dan_v1, dan_v2
from .protocols import DANOutput, EstimatorProtocol, RestorerProtocol
from .registry import ARCH_REGISTRY, arch_options, register_arch
from .rrdb_sft_arch import RRDBSFTRestorer
from .upsample import Upsampler, make_upsampler

__all__ = [
    "ARCH_REGISTRY",
    "DAN",
    "DASR",
    "DCLS",
    "IKC",
    "SFTMD",
    "STARTS",
    "DANOutput",
    "DANv1",
    "DANv2",
    "DASREncoder",
    "DASRRestorer",
    "DCLSRestorer",
    "DDLKEstimator",
    "DegradationContrast",
    "EstimatorProtocol",
    "EstimatorV1",
    "EstimatorV2",
    "IKCCorrector",
    "IKCPredictor",
    "MANetEstimator",
    "MANetRRDB",
    "PCALike",
    "RRDBSFTRestorer",
    "RestorerProtocol",
    "RestorerV1",
    "RestorerV2",
    "SROnly",
    "Upsampler",
    "arch_options",
    "available_default_pcas",
    "best_step_by_psnr",
    "build_arch",
    "build_module",
    "dan_v1",
    "dan_v2",
    "dcls_kernel_target",
    "default_pca",
    "family_rows",
    "family_table",
    "lookup_arch",
    "make_upsampler",
    "register_arch",
    "resolve_pca",
]
