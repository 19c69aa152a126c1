"""Search spaces on the server (which op keys each layer's candidates need) and per-space LUT coverage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, case, delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Device, LutEntry, Op, Task, TaskStatus
from db.models_validation import SearchSpace, SearchSpaceKey
from profiler_server.errors import Conflict, NotFound
from profiler_server.schemas_validation import SpaceCoverage, SpacePublic, SpacePut
from profiler_server.services.leasing import task_state


def space_keys(body: SpacePut) -> list[str]:
    """The unique op keys of a space, in first-use order: fixed ops, then layer by layer."""
    keys = dict.fromkeys(body.fixed_keys)
    for layer in body.layers:
        keys.update(dict.fromkeys(k for k in layer if k is not None))
    return list(keys)


def put_space(session: Session, name: str, body: SpacePut, now: datetime) -> tuple[SearchSpace, bool]:
    """Create or replace the space `name`; returns it and whether it was created."""
    space = session.scalar(select(SearchSpace).where(SearchSpace.name == name))
    created = space is None
    if space is None:
        space = SearchSpace(name=name, created_at=now)
        session.add(space)
    space.candidates = list(body.candidates)
    space.layers = [list(layer) for layer in body.layers]
    space.fixed_keys = list(body.fixed_keys)
    space.params = dict(body.params)
    space.updated_at = now
    try:
        session.flush()
        session.execute(delete(SearchSpaceKey).where(SearchSpaceKey.space_id == space.id))
        session.execute(insert(SearchSpaceKey), [{"space_id": space.id, "key": k} for k in space_keys(body)])
        session.commit()
    except IntegrityError as exc:  # a concurrent PUT of the same name got there first
        session.rollback()
        raise Conflict(f"space {name!r} was changed concurrently; retry the PUT", field="name") from exc
    return space, created


def space_by_name(session: Session, name: str, field: str = "name") -> SearchSpace:
    space = session.scalar(select(SearchSpace).where(SearchSpace.name == name))
    if space is None:
        raise NotFound(f"unknown search space {name!r}", field=field)
    return space


def key_counts(session: Session) -> dict[int, int]:
    return dict(
        session.execute(select(SearchSpaceKey.space_id, func.count()).group_by(SearchSpaceKey.space_id)).all()
    )


def space_public(space: SearchSpace, n_keys: int) -> SpacePublic:
    return SpacePublic(
        name=space.name,
        candidates=space.candidates,
        layers=space.layers,
        fixed_keys=space.fixed_keys,
        params=space.params,
        n_keys=n_keys,
        created_at=space.created_at,
        updated_at=space.updated_at,
    )


def list_spaces(session: Session) -> list[SearchSpace]:
    return list(session.scalars(select(SearchSpace).order_by(SearchSpace.name)))


def coverage(
    session: Session,
    now: datetime,
    device_ids: Sequence[int] | None = None,
    space_ids: Sequence[int] | None = None,
) -> dict[tuple[int, int], SpaceCoverage]:
    """Coverage of every (device, space) pair, in one query; keyed by (device id, space id).

    Each key of a space is in exactly one state for a device: measured (a LUT entry), else queued or leased (an
    active task; at most one per device and op), else failed (a failed task), else missing.
    """
    active = (
        select(Task.device_id, Task.op_id, task_state(now).label("status"))
        .where(Task.status.in_((TaskStatus.queued, TaskStatus.leased)))
        .subquery()
    )
    failed = (
        select(Task.device_id, Task.op_id)
        .where(Task.status == TaskStatus.failed)
        .group_by(Task.device_id, Task.op_id)
        .subquery()
    )
    not_measured = LutEntry.op_id.is_(None)

    def count_where(condition: object) -> object:
        return func.sum(case((condition, 1), else_=0))

    query = (
        select(
            Device.id,
            SearchSpaceKey.space_id,
            func.count().label("total"),
            func.count(LutEntry.op_id).label("measured"),
            count_where(and_(not_measured, active.c.status == TaskStatus.queued)).label("queued"),
            count_where(and_(not_measured, active.c.status == TaskStatus.leased)).label("leased"),
            count_where(and_(not_measured, active.c.op_id.is_(None), failed.c.op_id.is_not(None))).label(
                "failed"
            ),
        )
        .select_from(Device)
        .join(SearchSpaceKey, literal(True))
        .outerjoin(Op, Op.key == SearchSpaceKey.key)
        .outerjoin(LutEntry, and_(LutEntry.device_id == Device.id, LutEntry.op_id == Op.id))
        .outerjoin(active, and_(active.c.device_id == Device.id, active.c.op_id == Op.id))
        .outerjoin(failed, and_(failed.c.device_id == Device.id, failed.c.op_id == Op.id))
        .group_by(Device.id, SearchSpaceKey.space_id)
    )
    if device_ids is not None:
        query = query.where(Device.id.in_(device_ids))
    if space_ids is not None:
        query = query.where(SearchSpaceKey.space_id.in_(space_ids))
    names = dict(session.execute(select(SearchSpace.id, SearchSpace.name)).all())
    result: dict[tuple[int, int], SpaceCoverage] = {}
    for row in session.execute(query):
        total, measured, queued, leased, failed_n = (int(v or 0) for v in row[2:])
        result[(row[0], row[1])] = SpaceCoverage(
            space=names[row[1]],
            total=total,
            measured=measured,
            queued=queued,
            leased=leased,
            failed=failed_n,
            missing=total - measured - queued - leased - failed_n,
        )
    return result
