"""Canonical-6 encode corpora: JSONL rows of per-encode features and the VMAF they scored.

One row per (source, encoder, cq, frame)::

    {"src": "park_joy", "encoder": "libx265", "cq": 32, "enc_bytes": 412331,
     "enc_time_ms": 5120.4, "frame_index": 7, "vmaf": 81.2, "adm2": 0.93,
     "vif_scale0": 0.61, "vif_scale1": 0.83, "vif_scale2": 0.89, "vif_scale3": 0.92,
     "motion2": 4.1}

Aliases written by older tools are accepted: ``vmaf_score`` for ``vmaf``, ``codec`` for
``encoder``, ``crf`` or ``q`` for ``cq``. A row with a non-zero ``exit_status`` records an
encode that failed: it is dropped and counted, not rejected. ``duration_s`` (the clip's
length) is optional; where every row of a codec has it, the bitrate becomes a feature.

Every other row is checked: required keys present, numbers finite (and in range), the
codec one of the known ones. A bad row becomes a ``Rejection`` naming ``file:line``, the
field and the fix; the good rows around it are kept.

Where the files come from (``discover``): ``CORPUS=path`` forces one file; otherwise every
``*.jsonl`` under the space-separated ``CORPUS_ROOTS``, a missing root skipped with a log
line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelyard.datasets.records import Rejection
from modelyard.errors import IngestError

log = logging.getLogger(__name__)

VIF = ("vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3")
QUALITY = ("adm2", *VIF, "motion2")
REQUIRED = ("src", "encoder", "cq", "enc_bytes", "enc_time_ms", "frame_index", "vmaf", *QUALITY)
ALIASES = {"vmaf_score": "vmaf", "codec": "encoder", "crf": "cq", "q": "cq"}
# (lowest, highest) a finite value may take; None: unbounded on that side
RANGES: dict[str, tuple[float | None, float | None]] = {
    "cq": (0, None),
    "enc_bytes": (1, None),
    "enc_time_ms": (0, None),
    "frame_index": (0, None),
    "vmaf": (0, 100),
    "adm2": (0, 1.5),
    **{k: (0, 1.5) for k in VIF},
    "motion2": (0, None),
    "duration_s": (1e-6, None),
}


@dataclass(frozen=True, kw_only=True)
class EncodeRow:
    """One checked corpus row."""

    record: str  # file:line
    src: str
    codec: str
    cq: float
    enc_bytes: float
    enc_time_ms: float
    frame_index: int
    vmaf: float
    adm2: float
    vif: tuple[float, float, float, float]
    motion2: float
    duration_s: float | None = None

    @property
    def key(self) -> str:
        """What names the row uniquely within a codec's corpus."""
        return f"{self.src}/{self.codec}/cq{self.cq:g}/frame{self.frame_index}"

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("record")
        return values


@dataclass(kw_only=True)
class Corpus:
    """The rows of some files, what was rejected and why, and what each file held."""

    rows: list[EncodeRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    failed_encodes: int = 0  # rows with a non-zero exit_status, dropped
    files: list[dict[str, Any]] = field(default_factory=list)  # path, sha256, rows, rejected

    def codecs(self) -> list[str]:
        return sorted({r.codec for r in self.rows})

    def of_codec(self, codec: str) -> list[EncodeRow]:
        return [r for r in self.rows if r.codec == codec]

    def rejection_report(self) -> dict[str, Any]:
        by_reason: dict[str, int] = {}
        for r in self.rejections:
            by_reason[f"{r.field}: {r.reason}"] = by_reason.get(f"{r.field}: {r.reason}", 0) + 1
        return {
            "rows": len(self.rows),
            "rejected": len(self.rejections),
            "failed_encodes_dropped": self.failed_encodes,
            "by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
            "rejections": [r.as_dict() for r in self.rejections],
        }


@dataclass(frozen=True, kw_only=True)
class Discovery:
    files: tuple[Path, ...]
    roots: tuple[str, ...]
    missing_roots: tuple[str, ...]
    forced: bool


def discover(environ: Mapping[str, str]) -> Discovery:
    """The corpus files ``CORPUS`` or ``CORPUS_ROOTS`` name (sorted, so runs repeat)."""
    forced = environ.get("CORPUS", "").strip()
    if forced:
        path = Path(forced)
        if not path.is_file():
            raise IngestError(f"CORPUS={forced}: no such file; point CORPUS at a .jsonl corpus")
        return Discovery(files=(path,), roots=(), missing_roots=(), forced=True)
    roots = tuple(environ.get("CORPUS_ROOTS", "").split())
    files: list[Path] = []
    missing = []
    for root in roots:
        folder = Path(root)
        if not folder.is_dir():
            log.warning("corpus root %s does not exist; skipped", root)
            missing.append(root)
            continue
        found = sorted(p for p in folder.rglob("*.jsonl") if p.is_file())
        log.info("corpus root %s: %d .jsonl file(s)", root, len(found))
        files += found
    return Discovery(files=tuple(files), roots=roots, missing_roots=tuple(missing), forced=False)


def read(paths: Iterable[Path], known_codecs: Iterable[str]) -> Corpus:
    """Every row of ``paths``, checked; a duplicate (codec, source, cq, frame) is rejected."""
    known = frozenset(known_codecs)
    corpus = Corpus()
    seen: dict[str, str] = {}
    for path in paths:
        data = path.read_bytes()
        before_rows, before_rejected = len(corpus.rows), len(corpus.rejections)
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            record = f"{path.name}:{number}"
            row, problems, failed = parse_line(line, record, known)
            if failed:
                corpus.failed_encodes += 1
                continue
            if row is not None and row.key in seen:
                problems = [
                    _rejection(
                        record,
                        "src",
                        f"repeats {seen[row.key]} ({row.key})",
                        "keep one row per source, codec, cq and frame",
                    )
                ]
            if problems or row is None:
                corpus.rejections += problems
                continue
            seen[row.key] = record
            corpus.rows.append(row)
        corpus.files.append(
            {
                "path": str(path),
                "sha256": hashlib.sha256(data).hexdigest(),
                "rows": len(corpus.rows) - before_rows,
                "rejected": len(corpus.rejections) - before_rejected,
            }
        )
    return corpus


def parse_line(
    line: str, record: str, known: frozenset[str]
) -> tuple[EncodeRow | None, list[Rejection], bool]:
    """(the row, its problems, whether it is a failed encode to drop)."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return (
            None,
            [_rejection(record, "(line)", f"not JSON: {exc.msg}", "one JSON object per line")],
            False,
        )
    if not isinstance(raw, dict):
        return (
            None,
            [_rejection(record, "(line)", "not a JSON object", "one JSON object per line")],
            False,
        )
    values = dict(raw)
    for alias, name in ALIASES.items():
        if alias in values and name not in values:
            values[name] = values.pop(alias)
    status = values.get("exit_status", 0)
    if status not in (0, None, "0"):
        return None, [], True
    problems = [
        _rejection(record, key, "missing", f"add '{key}' (or an accepted alias)")
        for key in REQUIRED
        if key not in values or values[key] is None
    ]
    if problems:
        return None, problems, False
    for key in ("src", "encoder"):
        if not isinstance(values[key], str) or not values[key].strip():
            problems.append(
                _rejection(record, key, f"{values[key]!r} is not a name", "a non-empty string")
            )
    if not problems and values["encoder"] not in known:
        problems.append(
            _rejection(
                record,
                "encoder",
                f"unknown codec {values['encoder']!r}",
                f"one of {', '.join(sorted(known))}, or add it to params.yaml predictor.codecs",
            )
        )
    numbers: dict[str, float] = {}
    for key in [k for k in REQUIRED if k not in ("src", "encoder")] + ["duration_s"]:
        if key == "duration_s" and values.get(key) is None:
            continue
        number, problem = _number(values[key], key, record)
        if problem:
            problems.append(problem)
        else:
            numbers[key] = number
    if problems:
        return None, problems, False
    return (
        EncodeRow(
            record=record,
            src=values["src"].strip(),
            codec=values["encoder"],
            cq=numbers["cq"],
            enc_bytes=numbers["enc_bytes"],
            enc_time_ms=numbers["enc_time_ms"],
            frame_index=int(numbers["frame_index"]),
            vmaf=numbers["vmaf"],
            adm2=numbers["adm2"],
            vif=(
                numbers["vif_scale0"],
                numbers["vif_scale1"],
                numbers["vif_scale2"],
                numbers["vif_scale3"],
            ),
            motion2=numbers["motion2"],
            duration_s=numbers.get("duration_s"),
        ),
        [],
        False,
    )


def _number(value: Any, key: str, record: str) -> tuple[float, Rejection | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0, _rejection(record, key, f"{value!r} is not a number", "a JSON number")
    number = float(value)
    if not math.isfinite(number):
        return 0.0, _rejection(record, key, f"{value!r} is not finite", "a finite number")
    low, high = RANGES.get(key, (None, None))
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = (
            f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        )
        return 0.0, _rejection(
            record, key, f"{number:g} is outside {bounds}", f"a value in {bounds}"
        )
    if key == "frame_index" and number != int(number):
        return 0.0, _rejection(record, key, f"{number:g} is not a whole number", "a frame number")
    return number, None


def _rejection(record: str, field_name: str, reason: str, fix: str) -> Rejection:
    return Rejection(record=record, field=field_name, reason=reason, fix=fix)
