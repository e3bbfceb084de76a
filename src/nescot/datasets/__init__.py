"""Synthetic data with ground truth, and downloaders for public data sets."""

from ._download import CorruptedDownloadError, DownloadUnavailableError, fetch, resolve_data_dir
from ._gaussian import GaussianPair, gaussian_pair
from ._multiome import simulate_multiome
from ._perturbation import simulate_perturbation
from ._public import bone_marrow_multiome, cellot_4i
from ._reference import annotate_pbmc, hsmm_myoblasts, kang_ifnb
from ._sparse import simulate_sparse_perturbation
from ._toys import eight_gaussians, gaussian_source, swiss_roll

__all__ = [
    "GaussianPair",
    "bone_marrow_multiome",
    "CorruptedDownloadError",
    "DownloadUnavailableError",
    "annotate_pbmc",
    "hsmm_myoblasts",
    "kang_ifnb",
    "cellot_4i",
    "eight_gaussians",
    "fetch",
    "resolve_data_dir",
    "gaussian_pair",
    "gaussian_source",
    "simulate_multiome",
    "simulate_perturbation",
    "simulate_sparse_perturbation",
    "swiss_roll",
]
