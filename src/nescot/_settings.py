"""Global settings: verbosity and progress bars, in scanpy's manner."""

from __future__ import annotations

import logging
from enum import IntEnum
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache

logger = logging.getLogger("nescot")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(levelname)s (nescot): %(message)s"))
    logger.addHandler(_handler)
    logger.propagate = False


class Verbosity(IntEnum):
    """Verbosity levels, as in scanpy: 0 errors, 1 warnings, 2 info (default), 3 debug."""

    error = 0
    warning = 1
    info = 2
    debug = 3


_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}


class _Settings:
    """Package-wide settings.

    Attributes
    ----------
    verbosity
        0 (errors), 1 (warnings), 2 (info, the default: progress bars shown) or 3 (debug).
    progress_bar
        Force progress bars on (``True``) or off (``False``); ``None`` follows ``verbosity``.
    compilation_cache_dir
        A directory where JAX keeps every program it compiles (its persistent compilation cache), so that a new
        Python session fitting models of the same configurations and shapes loads them instead of compiling again;
        ``None`` (default): off, JAX's own settings as they were. Results are the same. Sets JAX's
        ``jax_compilation_cache_dir`` and caches small programs too (``jax_persistent_cache_min_compile_time_secs =
        0``): a fit compiles about a hundred.
    """

    def __init__(self) -> None:
        self._verbosity = Verbosity.info
        self.progress_bar: bool | None = None
        self._compilation_cache_dir: Path | None = None
        self._jax_cache_config: tuple[str | None, float] | None = None  # JAX's own settings, restored when off
        logger.setLevel(_LEVELS[int(self._verbosity)])

    @property
    def verbosity(self) -> Verbosity:
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: int | str) -> None:
        if isinstance(value, str):
            if value not in Verbosity.__members__:
                raise ValueError(f"Unknown verbosity {value!r}; choose from {list(Verbosity.__members__)}.")
            value = Verbosity[value]
        if int(value) not in _LEVELS:
            raise ValueError(f"verbosity must be in 0..3, got {value!r}.")
        self._verbosity = Verbosity(int(value))
        logger.setLevel(_LEVELS[int(value)])

    @property
    def compilation_cache_dir(self) -> Path | None:
        return self._compilation_cache_dir

    @compilation_cache_dir.setter
    def compilation_cache_dir(self, value: str | Path | None) -> None:
        path = None if value is None else Path(value).expanduser()
        if path is not None:
            if path.exists() and not path.is_dir():
                raise NotADirectoryError(f"`compilation_cache_dir` must be a directory, got the file {str(path)!r}.")
            path.mkdir(parents=True, exist_ok=True)
        if self._jax_cache_config is None:
            self._jax_cache_config = (
                jax.config.jax_compilation_cache_dir,
                jax.config.jax_persistent_cache_min_compile_time_secs,
            )
        directory, min_time = (str(path), 0.0) if path is not None else self._jax_cache_config
        compilation_cache.reset_cache()  # JAX opens its cache once: forget the previous directory
        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
        if path is None:
            self._jax_cache_config = None
        self._compilation_cache_dir = path

    @property
    def show_progress(self) -> bool:
        """Whether training shows a progress bar."""
        if self.progress_bar is not None:
            return bool(self.progress_bar)
        return self._verbosity >= Verbosity.info


settings = _Settings()
