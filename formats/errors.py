"""Structured problems found in a file, and the one exception that carries them.

Imports fail most usefully when they list every problem with where it is, so readers keep
going after an error and collect :class:`Issue` objects instead of raising at the first one.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

# Codes used across formats (stable: clients may switch on them).
STRUCTURE = "structure"            # missing/extra parts, unparseable syntax
TYPE = "type"                      # a field of the wrong type
REFERENCE = "reference"            # unknown image, category, track, class index
BOX_SIZE = "box_size"              # x2 <= x1 or y2 <= y1
BOX_OUTSIDE = "box_outside"        # wholly outside the frame
BOX_PARTLY_OUTSIDE = "box_partly_outside"  # warning only: kept as given
NON_FINITE = "non_finite"          # NaN or infinity
END_BEFORE_START = "end_before_start"
UNKNOWN_CLASS = "unknown_class"
FRAME_RANGE = "frame_range"        # frame not in the video, or not on the declared step
VIDEO_MISMATCH = "video_mismatch"  # declared frame size or length does not fit the video
UNSUPPORTED = "unsupported"        # a variant we do not import (segmentation, pose, OBB...)
UNSAFE_ARCHIVE = "unsafe_archive"  # '..' or absolute member paths, links, encryption
ARCHIVE_LIMIT = "archive_limit"    # expanded size, ratio or member count over the limit
UNSAFE_XML = "unsafe_xml"          # entity declarations, external references
WRONG_FORMAT = "wrong_format"      # content does not look like the declared format
DUPLICATE = "duplicate"
CLASS_MAPPED = "class_mapped"      # warning: a class taken by number, or renamed, on the way in
FRAME_BASE = "frame_base"          # warning: frame numbers converted from another numbering
OUT_OF_RANGE = "out_of_range"      # a number outside what the field allows (scores, track ids)
STORAGE_PATH = "storage_path"      # a path into the platform's storage: never taken from a file


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem and where it is: a member of the archive plus a line or a JSON pointer."""

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    pointer: str | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def where(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.pointer is not None:
            parts.append(self.pointer or "/")
        if self.field is not None:
            parts.append(f"field {self.field}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.severity} [{self.code}] {self.where()}: {self.message}"


class FormatError(Exception):
    """A file that cannot be (fully) imported; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue], message: str | None = None) -> None:
        self.issues = list(issues)
        errors = [i for i in self.issues if i.severity == "error"]
        if message is None:
            first = str(errors[0]) if errors else "invalid input"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            message = first + more
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        return {"message": str(self), "issues": [i.to_dict() for i in self.issues]}


class Fatal(Exception):
    """Internal: the rest of the input cannot be read (the issue is already logged)."""


@dataclass
class IssueLog:
    """Collects issues with a cap so that a file with a million bad rows cannot exhaust memory.

    Counts stay exact beyond the cap; only the stored details stop.
    """

    max_issues: int = 10_000
    issues: list[Issue] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    errors: int = 0
    warnings: int = 0
    refused: bool = False  # set by problems that reject the whole file, whatever on_error says

    def add(self, issue: Issue) -> None:
        if issue.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        self.counts[issue.code] += 1
        if len(self.issues) < self.max_issues:
            self.issues.append(issue)

    def error(self, code: str, message: str, **where: Any) -> None:
        self.add(Issue("error", code, message, **where))

    def warning(self, code: str, message: str, **where: Any) -> None:
        self.add(Issue("warning", code, message, **where))

    def refuse(self, code: str, message: str, **where: Any) -> None:
        """Log an error that rejects the whole file even with ``on_error="skip"``; reading goes on."""
        self.refused = True
        self.error(code, message, **where)

    def fatal(self, code: str, message: str, **where: Any) -> Fatal:
        """Log an error that ends reading; returns the exception for the caller to raise."""
        self.refuse(code, message, **where)
        return Fatal(message)

    @property
    def dropped(self) -> int:
        return self.errors + self.warnings - len(self.issues)


@dataclass
class Report:
    """What validation found: every issue (up to the cap), how many records are importable."""

    issues: list[Issue]
    records_total: int
    errors: int
    warnings: int
    dropped: int = 0
    added_labels: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.errors == 0

    def raise_for_errors(self) -> None:
        if self.errors:
            raise FormatError(self.issues)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "records_total": self.records_total,
            "errors": self.errors,
            "warnings": self.warnings,
            "issues_not_listed": self.dropped,
            "counts": dict(self.counts),
            "added_labels": list(self.added_labels),
            "issues": [i.to_dict() for i in self.issues],
        }
