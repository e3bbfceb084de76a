"""Reading AnnData representations that stay on disk (backed h5ad, zarr), for out-of-core training."""

from ._lazy import LazyRows, read_lazy, read_on_disk, rep_source

__all__ = ["LazyRows", "read_lazy", "read_on_disk", "rep_source"]
