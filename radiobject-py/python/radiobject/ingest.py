"""Ingest NIfTI files and DICOM series into a RadiObject dataset — in parallel, resumably.

``from_images`` (also ``RadiObject.from_images`` and ``radiobject ingest`` on the command line)
reads every image with radiobject's Rust readers on ``max_workers`` threads with the GIL released,
writes each volume at its sorted position, and records it in the dataset's manifest
(source path, size, sha256 -> obs_id). Run it again after a crash — even ``kill -9`` — and it
skips finished sources, redoes half-written ones, and registers everything exactly once.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radiobject import _radiobject as _rb
from radiobject._frames import pandas_to_frame
from radiobject._registry import wrapper
from radiobject.ctx import Context, resolve_ctx
from radiobject.exceptions import IngestError, ViewError

if TYPE_CHECKING:
    import pandas as pd

    from radiobject.radi_object import RadiObject

__all__ = [
    "ImageFormat",
    "detect_format",
    "discover_sources",
    "from_images",
    "append_images",
    "append_to_collection",
    "IngestReport",
]


class ImageFormat(str, enum.Enum):
    """Image formats ingest reads."""

    NIFTI = "nifti"
    DICOM = "dicom"


ImageSpec = str | Path | Sequence[Any]


def discover_sources(
    spec: str | Path, format: str | ImageFormat | None = None
) -> tuple[ImageFormat, list[tuple[str, str]]]:
    """Finds the images of a glob (``"imagesTr/*.nii.gz"``), a directory of NIfTI files, or a
    directory whose subdirectories each hold one DICOM series. Subject ids are NIfTI file names
    without ``.nii[.gz]`` and DICOM subdirectory names. Returns ``(format, [(path, subject_id)])``.
    """
    fmt = ImageFormat(format).value if format is not None else None
    found, sources = _rb.discover(str(spec), fmt)
    return ImageFormat(found), [(p, s) for p, s in sources]


def detect_format(spec: ImageSpec) -> ImageFormat:
    """The format of an image spec (glob, directory, or list of paths)."""
    return ImageFormat(_sources("images", spec, None)[0])


def _sources(name: str, spec: ImageSpec, hint: str | None) -> tuple[str, list[tuple[str, str]]]:
    """``(format, [(path, subject_id)])`` of a glob, a directory, or a list of paths and
    ``(path, subject_id)`` pairs (named by the native rules)."""
    if isinstance(spec, (str, Path)):
        found, sources = discover_sources(spec, hint)
        return found.value, sources
    items = [
        (str(it[0]), str(it[1])) if isinstance(it, (tuple, list)) and len(it) == 2 else (str(it), None) for it in spec
    ]
    if not items:
        raise IngestError(f"collection {name!r}: no images given")
    return _rb.sources_of(items, hint)


class IngestReport(dict):
    """What an ingest run did: ``written``, ``skipped`` (finished by an earlier run), ``repaired``
    (half-written volumes redone), ``duplicates`` (sources whose content the collection already
    held, not stored again) and ``warnings`` (readers, duplicates, a broken stale lock)."""


def _progress_callback(
    progress: bool | Callable[[str, int, int], None],
) -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the dev lock
        import sys

        def plain(name: str, done: int, total: int) -> None:
            print(f"\r{name}: {done}/{total} volumes", end="\n" if done == total else "", file=sys.stderr, flush=True)

        return plain, lambda: None
    bars: dict[str, Any] = {}

    def update(name: str, done: int, total: int) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(total=total, desc=name, unit="vol")
        bar.n = done
        bar.refresh()

    def close() -> None:
        for b in bars.values():
            b.close()

    return update, close


def from_images(
    uri: str,
    images: Mapping[str, ImageSpec],
    validate_alignment: bool = False,
    obs_meta: pd.DataFrame | None = None,
    reorient: bool | str | None = None,
    format_hint: str | Mapping[str, str] | None = None,
    ctx: Context | None = None,
    progress: bool | Callable[[str, int, int], None] = False,
    max_workers: int | None = None,
    allow_duplicate_content: bool = False,
    lock_timeout: float | None = None,
) -> RadiObject:
    """Ingests images into the dataset at ``uri`` (created if missing, resumed if interrupted).

    One writer at a time: the run holds the dataset's write lock; while another writer holds it,
    this raises :class:`~radiobject.exceptions.DatasetLockedError` (naming it) before writing
    anything, or waits up to ``lock_timeout`` seconds. Everything is checked before anything is
    written (names, subject ids, a source given twice, ``obs_meta`` rows).

    Args:
        uri: dataset URI (local path or ``s3://``).
        images: collection name -> glob, directory, list of paths, or list of
            ``(path, subject_id)``.
        validate_alignment: require every collection to cover the same subjects.
        obs_meta: subject-level table; must contain ``obs_subject_id`` (or ``participant_id``) and
            cover every subject.
        reorient: None follows the configuration, True the configured target, "RAS"/"LAS"/"LPS".
        format_hint: "nifti"/"dicom" for every collection, or per collection.
        ctx: context to use (default: global).
        progress: show progress bars (tqdm), or a callable ``(collection, done, total)``.
        max_workers: parallel readers/writers (default ``ReadConfig.max_workers``).
        allow_duplicate_content: store a source even when the collection already holds its
            content (same sha256) from another path; by default such a source (a moved or copied
            folder ingested again) is skipped with a warning in ``ingest_report["warnings"]``.
        lock_timeout: seconds to wait for another writer of the dataset (default: fail at once).
    """
    if not images:
        raise IngestError("images is empty: give {collection name: images}")
    collections = []
    for name, spec in images.items():
        hint = format_hint.get(name) if isinstance(format_hint, Mapping) else format_hint
        fmt, sources = _sources(name, spec, ImageFormat(hint).value if hint else None)
        collections.append((name, fmt, sources))
    frame = (
        None if obs_meta is None else pandas_to_frame(_with_subject_column(obs_meta), index_columns=("obs_subject_id",))
    )
    context = resolve_ctx(ctx)
    callback, close = _progress_callback(progress)
    try:
        _, report = _rb.ingest_images(
            str(uri),
            context,
            collections,
            obs_meta=frame,
            reorient=reorient,
            validate_alignment=validate_alignment,
            max_workers=max_workers,
            progress=callback,
            allow_duplicate_content=allow_duplicate_content,
            lock_timeout=lock_timeout,
        )
    finally:
        close()
    radi = wrapper("RadiObject")(str(uri), ctx=ctx)
    radi.ingest_report = IngestReport(report)
    return radi


def _with_subject_column(obs_meta: pd.DataFrame) -> pd.DataFrame:
    """``obs_meta`` with its subject ids in an ``obs_subject_id`` column (taken from a
    ``participant_id`` column, BIDS' name, or from an index of either name)."""
    df = obs_meta
    if "obs_subject_id" in df.columns:
        return df
    if "participant_id" in df.columns:
        return df.rename(columns={"participant_id": "obs_subject_id"})
    if df.index.name in ("obs_subject_id", "participant_id"):
        return df.reset_index().rename(columns={df.index.name: "obs_subject_id"})
    raise IngestError("obs_meta needs an obs_subject_id (or participant_id) column")


def _new_subject_rows(radi: RadiObject, obs_meta: pd.DataFrame | None) -> pd.DataFrame | None:
    """Rows of ``obs_meta`` for subjects not yet in ``radi`` (rows of known subjects are ignored,
    as the reference's append does)."""
    if obs_meta is None:
        return None
    df = _with_subject_column(obs_meta)
    known = set(radi.obs_subject_ids)
    return df[~df["obs_subject_id"].astype(str).isin(known)]


def append_images(
    radi: RadiObject,
    images: Mapping[str, ImageSpec],
    obs_meta: pd.DataFrame | None = None,
    reorient: bool | str | None = None,
    format_hint: str | Mapping[str, str] | None = None,
    progress: bool | Callable[[str, int, int], None] = False,
    max_workers: int | None = None,
    allow_duplicate_content: bool = False,
    lock_timeout: float | None = None,
) -> RadiObject:
    """Adds image files to an existing dataset (``RadiObject.append`` with paths, globs or
    ``(path, subject)`` lists): into existing collections or new ones, with ``obs_meta`` rows for
    new subjects. Runs the resumable ingest; ``radi`` is refreshed in place and returned."""
    if radi.uri is None:
        raise ViewError("cannot append to a view of a RadiObject")
    rows = _new_subject_rows(radi, obs_meta)
    from_images(
        radi.uri,
        images,
        obs_meta=rows if rows is not None and len(rows) else None,
        reorient=reorient,
        format_hint=format_hint,
        ctx=radi.context,
        progress=progress,
        max_workers=max_workers,
        allow_duplicate_content=allow_duplicate_content,
        lock_timeout=lock_timeout,
    )
    radi._refresh()
    return radi


def append_to_collection(
    vc: Any,
    niftis: Sequence[tuple[Any, str]] | None = None,
    dicom_dirs: Sequence[tuple[Any, str]] | None = None,
    reorient: bool | str | None = None,
    progress: bool | Callable[[str, int, int], None] = False,
) -> None:
    """Reads NIfTI files / DICOM series (``[(path, subject_id)]``) in parallel with radiobject's
    readers and appends them to a standalone collection as ``{subject}_{collection}`` (with
    ``_acq-k`` for further images of a subject), with their imaging obs columns and metadata."""
    jobs = [(str(p), str(s), "nifti") for p, s in (niftis or [])] + [
        (str(p), str(s), "dicom") for p, s in (dicom_dirs or [])
    ]
    if not jobs:
        raise IngestError("append_to_collection needs niftis= or dicom_dirs=")
    obs_ids = _rb.assign_obs_ids([sid for _, sid, _ in jobs], vc.name or "volume", list(vc.obs_ids))
    items = [(path, fmt, obs_id, sid, None) for (path, sid, fmt), obs_id in zip(jobs, obs_ids)]
    callback, close = _progress_callback(progress)
    tick = None if callback is None else (lambda done, total: callback(vc.name or "volumes", done, total))
    try:
        vc._append_with(lambda w: w._native.write_images(items, reorient, progress=tick))
    finally:
        close()
