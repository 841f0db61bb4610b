"""Verification of a dataset before training: is every volume there, consistent, and intact?

:func:`verify` runs the same checks as ``radiobject verify``: counts and members agree, every
obs row has its volume and every volume its row, each volume opens with the recorded
obs_id/shape/dtype and sits where the reference package expects it, ``obs_meta``/``obs_ids`` agree
with the collections, obs_ids are unique, and every source of the ingest manifest is registered.
With ``deep=True`` every volume's voxels are re-read and compared with the checksum recorded when
it was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radiobject import _radiobject as _rb
from radiobject.ctx import Context, resolve_ctx
from radiobject.exceptions import AlignmentError, StorageError

__all__ = ["verify", "VerifyReport", "Problem", "VerificationError"]


class VerificationError(StorageError):
    """A dataset failed verification; ``report`` holds every problem."""

    def __init__(self, report: VerifyReport):
        super().__init__(str(report))
        self.report = report


@dataclass(frozen=True)
class Problem:
    """One problem: where, and what is wrong."""

    location: str
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`."""

    uri: str
    subjects: int
    collections: int
    volumes: int
    manifest_sources: int
    deep: bool
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    warnings: tuple[Problem, ...] = field(default_factory=tuple)
    #: The report as ``radiobject verify`` prints it.
    text: str = field(default="", compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    def raise_for_problems(self) -> VerifyReport:
        """Raises :class:`VerificationError` if anything is wrong; returns self otherwise."""
        if self.problems:
            raise VerificationError(self)
        return self

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return self.text


def verify(uri: str, deep: bool = False, ctx: Context | None = None) -> VerifyReport:
    """Verifies the dataset at ``uri`` (see the module documentation). Never raises for problems
    found; call ``.raise_for_problems()`` to turn them into an exception."""
    return _report(_rb.verify(str(uri), resolve_ctx(ctx), deep))


def check_aligned(uri: str, ctx: Context, collection: bool = False) -> None:
    """``validate()`` of a RadiObject or (``collection``) a VolumeCollection: the native verify
    (not deep; volumes out of sorted order are fine when found by obs_id), raising
    :class:`AlignmentError` with every problem found."""
    d = _rb.verify_collection(str(uri), ctx, False, True) if collection else _rb.validate_dataset(str(uri), ctx)
    report = _report(d)
    if report.problems:
        raise AlignmentError(str(report))


def _report(d: dict[str, Any]) -> VerifyReport:
    return VerifyReport(
        uri=d["uri"],
        subjects=d["subjects"],
        collections=d["collections"],
        volumes=d["volumes"],
        manifest_sources=d["manifest_sources"],
        deep=d["deep"],
        problems=tuple(Problem(p["location"], p["message"]) for p in d["problems"]),
        warnings=tuple(Problem(p["location"], p["message"]) for p in d.get("warnings", [])),
        text=d["text"],
    )
