"""What `profiler-server gc` removes: the model files of one-off ops, and files no model row names.

One-off ops are those whose spec `kind` is one of `kinds` (by default the whole networks a validation measures:
`network`, `mobilenetv2`); their model file goes once every op sharing it is one-off, older than the retention
period and has no queued or leased task. The rows stay - the ops, their measurements, the LUT entries - with the
model marked removed (`GET /ops/{key}/models/{format}` answers 410; uploading the op again brings the file back).
Files that no row names (an upload that failed after writing its file) go once older than `ORPHAN_AGE_S`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import ACTIVE_TASK_STATUSES, OnnxModel, Op, OpArtifact, Task
from profiler_server.blobs import BlobStore
from profiler_server.storage import make_storage

DEFAULT_ONE_OFF_KINDS = ("network", "mobilenetv2")
# An upload writes its file before it commits the row that names it: younger unnamed files may be in flight.
ORPHAN_AGE_S = 3600.0


@dataclass(frozen=True, slots=True)
class GcReport:
    models_removed: int
    model_bytes: int
    orphans_removed: int
    orphan_bytes: int


def expired_models(session: Session, kinds: tuple[str, ...], older_than: datetime) -> list[str]:
    """sha256 of the models whose every op is one-off, created before `older_than`, with no active task."""
    active = set(session.scalars(select(Task.op_id).where(Task.status.in_(ACTIVE_TASK_STATUSES)).distinct()))
    live = set(session.scalars(select(OnnxModel.sha256).where(OnnxModel.removed_at.is_(None))))
    keep: set[str] = set()
    candidates: set[str] = set()
    # Every file of every op: its ONNX one and those compiled for other runtimes.
    for op_id, sha256, spec, created_at in session.execute(
        select(Op.id, OpArtifact.sha256, Op.spec, Op.created_at).join(OpArtifact, OpArtifact.op_id == Op.id)
    ):
        one_off = isinstance(spec, dict) and spec.get("kind") in kinds
        if one_off and created_at < older_than and op_id not in active:
            candidates.add(sha256)
        else:
            keep.add(sha256)
    return sorted((candidates - keep) & live)


def collect(
    session: Session,
    blobs: BlobStore,
    kinds: tuple[str, ...],
    older_than: timedelta,
    now: datetime,
    dry_run: bool,
) -> GcReport:
    # SQLite: no upload or lease interleaves between the choice and the marking.
    make_storage(session.get_bind()).begin_write(session)
    expired = expired_models(session, kinds, now - older_than)
    sizes = dict(
        session.execute(
            select(OnnxModel.sha256, OnnxModel.size_bytes).where(OnnxModel.sha256.in_(expired))
        ).all()
    )
    named = set(session.scalars(select(OnnxModel.sha256).where(OnnxModel.removed_at.is_(None))))
    if dry_run:
        session.rollback()
    else:
        if expired:
            session.execute(update(OnnxModel).where(OnnxModel.sha256.in_(expired)).values(removed_at=now))
        session.commit()  # marked removed before any file goes: no row ever names a missing file unmarked
    model_bytes = sum(sizes.values()) if dry_run else sum(blobs.delete(sha256) for sha256 in expired)
    cutoff_s = time.time() - ORPHAN_AGE_S
    orphans = [(sha, size) for sha, size, mtime in blobs.stored() if sha not in named and sha not in expired
               and mtime < cutoff_s]  # fmt: skip
    orphan_bytes = (
        sum(size for _, size in orphans) if dry_run else sum(blobs.delete(sha) for sha, _ in orphans)
    )
    return GcReport(len(expired), model_bytes, len(orphans), orphan_bytes)
