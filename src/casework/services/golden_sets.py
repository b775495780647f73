"""Golden sets: versioned collections of interactions with the human answer, built from people's decisions on
reviews, from controls (evaluation memory), or imported. A version is never changed once made: an item belongs to the versions from its
``first_version`` to its ``last_version``; adding items or rebuilding makes the next version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import (
    Control,
    Decision,
    GoldenItem,
    GoldenRun,
    GoldenSet,
    GoldenSetVersion,
    Project,
    Review,
)
from casework.db.types import utcnow
from casework.errors import GoldenSetExists, GoldenSetNotFound, ValidationFailed
from casework.events import EventType
from casework.ids import new_id
from casework.services import events
from casework.services.auth import Principal
from casework.services.golden_metrics import validate_thresholds
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project, project_in_workspace

MAX_ITEMS = 50_000  # per version: a run of a larger set is better split
DECIDED_BY = ("people", "anyone")
AGREEMENT = ("any", "reached")


@dataclass(frozen=True)
class ReviewFilter:
    """Which resolved reviews make items: by evaluator, tags (all of them), when they were decided, by whom, and
    whether independent reviewers agreed. ``agreement`` "reached": only reviews that two or more people decided
    independently (overlap, ``reviewers_required`` > 1) and all alike, their answer the resolution; a review one
    person decided, a disagreement a lead settled, and memory's decisions are left out."""

    evaluator_type: str | None = None
    tags: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    decided_by: str = "people"  # "people" | "anyone" (memory's decisions too)
    agreement: str = "any"  # "any" | "reached"

    def record(self) -> dict[str, Any]:
        return {
            "evaluator_type": self.evaluator_type,
            "tags": list(self.tags),
            "since": to_json_time(self.since),
            "until": to_json_time(self.until),
            "decided_by": self.decided_by,
            "agreement": self.agreement,
        }

    def check(self) -> None:
        for name, value, allowed in (
            ("decided_by", self.decided_by, DECIDED_BY),
            ("agreement", self.agreement, AGREEMENT),
        ):
            if value not in allowed:
                raise ValidationFailed(
                    f"from_reviews.{name} is one of {', '.join(allowed)}, not {value!r}.",
                    details={"field": f"from_reviews.{name}", "allowed": list(allowed)},
                )


@dataclass(frozen=True)
class ControlFilter:
    """Which controls make items: one evaluator's, with all of ``tags``; active ones, retired ones too if asked
    (a superseded control never: a newer one holds its answer). A control with no interaction (a policy note
    written up front) has nothing to judge and makes no item."""

    evaluator_type: str
    tags: Sequence[str] = ()
    include_retired: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "evaluator_type": self.evaluator_type,
            "tags": list(self.tags),
            "include_retired": self.include_retired,
        }


@dataclass(frozen=True)
class NewItem:
    query: str
    response: str
    expected: str
    context: str | None = None
    evaluator_type: str | None = None
    source_review_id: str | None = None
    source_control_id: str | None = None
    tags: Sequence[str] = ()
    metadata: dict[str, Any] | None = None


def get_golden_set(session: Session, *, principal: Principal, golden_set_id: str) -> GoldenSet:
    found = session.get(GoldenSet, golden_set_id)
    if found is None or not project_in_workspace(
        session, workspace_id=principal.workspace_id, project_id=found.project_id
    ):
        raise GoldenSetNotFound(
            f"No golden set with id {golden_set_id!r}.", details={"golden_set_id": golden_set_id}
        )
    return found


def create_golden_set(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    name: str,
    from_reviews: ReviewFilter | None = None,
    from_controls: ControlFilter | None = None,
    items: Sequence[NewItem] = (),
    thresholds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new golden set, its version 1 made of ``items``, the reviews ``from_reviews`` selects and the
    controls ``from_controls`` selects."""
    principal.require_write()
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    now = utcnow()
    values = {
        "id": new_id("gld"),
        "project_id": project_id,
        "name": name,
        "version": 0,
        "thresholds": validate_thresholds(thresholds or {}),
        "created_at": now,
        "created_by": principal.identity,
        "updated_at": now,
    }
    if not insert_ignoring_conflict(session, GoldenSet, values, conflict_columns=["project_id", "name"]):
        raise GoldenSetExists(
            f"This project already has a golden set named {name!r}: add a version to it instead.",
            details={"name": name, "project_id": project_id},
        )
    golden = session.get_one(GoldenSet, values["id"])
    _new_version(
        session,
        golden,
        principal=principal,
        from_reviews=from_reviews,
        from_controls=from_controls,
        items=items,
        mode="add",
    )
    record = golden_set_record(session, golden)
    events.emit(
        session,
        EventType.golden_set_created,
        workspace_id=project.workspace_id,
        project_id=project_id,
        actor=principal.identity,
        object_type="golden_set",
        object_id=golden.id,
        data=record,
    )
    return record


def add_version(
    session: Session,
    *,
    principal: Principal,
    golden_set_id: str,
    from_reviews: ReviewFilter | None = None,
    from_controls: ControlFilter | None = None,
    items: Sequence[NewItem] = (),
    mode: str = "add",
) -> dict[str, Any]:
    """The next version: the current items and the new ones (``mode`` "add": reviews already in the set are
    not added twice, nor controls), or only the new ones ("replace": a rebuild). Older versions keep what they
    had."""
    principal.require_write()
    golden = get_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    before = golden_set_record(session, golden)
    _new_version(
        session,
        golden,
        principal=principal,
        from_reviews=from_reviews,
        from_controls=from_controls,
        items=items,
        mode=mode,
    )
    return _updated(session, golden, principal=principal, before=before)


def set_thresholds(
    session: Session, *, principal: Principal, golden_set_id: str, thresholds: dict[str, Any]
) -> dict[str, Any]:
    """Replace the set's acceptance thresholds (they are checked on every run from now on)."""
    principal.require_write()
    golden = get_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    before = golden_set_record(session, golden)
    golden.thresholds = validate_thresholds(thresholds)
    golden.updated_at = utcnow()
    return _updated(session, golden, principal=principal, before=before)


def _updated(
    session: Session, golden: GoldenSet, *, principal: Principal, before: dict[str, Any]
) -> dict[str, Any]:
    session.flush()
    record = golden_set_record(session, golden)
    events.emit(
        session,
        EventType.golden_set_updated,
        workspace_id=session.get_one(Project, golden.project_id).workspace_id,
        project_id=golden.project_id,
        actor=principal.identity,
        object_type="golden_set",
        object_id=golden.id,
        data=record,
        before=before,
    )
    return record


def _new_version(
    session: Session,
    golden: GoldenSet,
    *,
    principal: Principal,
    from_reviews: ReviewFilter | None,
    from_controls: ControlFilter | None,
    items: Sequence[NewItem],
    mode: str,
) -> None:
    if mode not in ("add", "replace"):
        raise ValidationFailed("mode is add or replace.", details={"field": "mode"})
    if from_reviews is None and from_controls is None and not items and mode == "add":
        raise ValidationFailed(
            "Give items, from_reviews to build them from resolved reviews, or from_controls to build them "
            "from controls.",
            details={"field": "items"},
        )
    version = golden.version + 1
    new = list(items)
    # In "add" mode a decision already in the set (by its review or its control) is not added twice.
    skip_reviews: set[str] = set()
    skip_controls: set[str] = set()
    if mode == "add" and golden.version and (from_reviews is not None or from_controls is not None):
        for review_id, control_id in session.execute(
            items_of(golden.id, golden.version).with_only_columns(
                GoldenItem.source_review_id, GoldenItem.source_control_id
            )
        ).all():
            if review_id is not None:
                skip_reviews.add(review_id)
            if control_id is not None:
                skip_controls.add(control_id)
    if from_reviews is not None:
        for item in _from_reviews(session, golden.project_id, from_reviews):
            if item.source_review_id not in skip_reviews:
                new.append(item)
                skip_controls.update([item.source_control_id] if item.source_control_id else [])
    if from_controls is not None:
        new += [
            item
            for item in _from_controls(session, golden.project_id, from_controls)
            if item.source_control_id not in skip_controls and item.source_review_id not in skip_reviews
        ]
    kept = 0
    if golden.version:
        if mode == "replace":
            session.execute(
                update(GoldenItem)
                .where(GoldenItem.golden_set_id == golden.id, GoldenItem.last_version.is_(None))
                .values(last_version=golden.version)
            )
        else:
            kept = session.execute(
                items_of(golden.id, golden.version).with_only_columns(func.count())
            ).scalar_one()
    if kept + len(new) > MAX_ITEMS:
        raise ValidationFailed(
            f"A golden set version holds at most {MAX_ITEMS} items, not {kept + len(new)}.",
            details={"items": kept + len(new), "max": MAX_ITEMS},
        )
    now = utcnow()
    # Ids in time order are the items' order (pagination's key); within one millisecond, sorted as given.
    ids = sorted(new_id("gli") for _ in new)
    if new:
        session.execute(
            insert(GoldenItem),
            [
                {
                    "id": item_id,
                    "golden_set_id": golden.id,
                    "first_version": version,
                    "last_version": None,
                    "evaluator_type": item.evaluator_type,
                    "query": item.query,
                    "response": item.response,
                    "context": item.context,
                    "expected": item.expected,
                    "source_review_id": item.source_review_id,
                    "source_control_id": item.source_control_id,
                    "tags": list(item.tags) or None,
                    "attributes": item.metadata,
                    "created_at": now,
                }
                for item_id, item in zip(ids, new, strict=True)
            ],
        )
    source: dict[str, Any] = {"mode": mode, "added": len(new)}
    if from_reviews is not None:
        source["from_reviews"] = from_reviews.record()
    if from_controls is not None:
        source["from_controls"] = from_controls.record()
    if items:
        source["items"] = len(items)
    session.add(
        GoldenSetVersion(
            id=new_id("glv"),
            golden_set_id=golden.id,
            version=version,
            item_count=kept + len(new),
            source=source,
            created_at=now,
            created_by=principal.identity,
        )
    )
    golden.version = version
    golden.updated_at = now
    session.flush()


def _from_reviews(session: Session, project_id: str, wanted: ReviewFilter) -> list[NewItem]:
    wanted.check()
    query = select(Review).where(Review.project_id == project_id, Review.status == "resolved")
    if wanted.evaluator_type:
        query = query.where(Review.evaluator_type == wanted.evaluator_type)
    if wanted.decided_by == "people" or wanted.agreement == "reached":
        query = query.where(Review.resolved_by == "human")
    if wanted.agreement == "reached":
        # The independent decisions of an overlapped review: two or more, one classification, the resolution's
        # (a resolution changed since, or settled by a lead, is not the reviewers' agreement).
        agreed = (
            select(Decision.review_id, func.min(Decision.classification).label("classification"))
            .where(Decision.project_id == project_id, Decision.status == "submitted")
            .group_by(Decision.review_id)
            .having(func.count() >= 2, func.count(func.distinct(Decision.classification)) == 1)
            .subquery()
        )
        query = query.join(
            agreed,
            (agreed.c.review_id == Review.id) & (agreed.c.classification == Review.resolution_classification),
        )
    if wanted.since is not None:
        query = query.where(Review.resolved_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(Review.resolved_at < wanted.until)
    found = []
    for review in session.execute(query.order_by(Review.resolved_at, Review.id)).scalars():
        if wanted.tags and not set(wanted.tags) <= set(review.resolution_tags or []):
            continue
        assert review.resolution_classification is not None
        found.append(
            NewItem(
                query=review.query,
                response=review.response,
                context=review.context,
                expected=review.resolution_classification,
                evaluator_type=review.evaluator_type,
                source_review_id=review.id,
                source_control_id=review.control_id,
            )
        )
        if len(found) > MAX_ITEMS:
            break
    return found


def _from_controls(session: Session, project_id: str, wanted: ControlFilter) -> list[NewItem]:
    statuses = ["active", "retired"] if wanted.include_retired else ["active"]
    query = (
        select(Control)
        .where(
            Control.project_id == project_id,
            Control.evaluator_type == wanted.evaluator_type,
            Control.status.in_(statuses),
            Control.query.is_not(None),
            Control.response.is_not(None),
        )
        .order_by(Control.created_at, Control.id)
    )
    found = []
    for control in session.execute(query).scalars():
        if wanted.tags and not set(wanted.tags) <= set(control.tags or []):
            continue
        assert control.query is not None and control.response is not None
        found.append(
            NewItem(
                query=control.query,
                response=control.response,
                context=control.context,
                expected=control.classification,
                evaluator_type=control.evaluator_type,
                source_review_id=control.review_id,
                source_control_id=control.id,
                tags=tuple(control.tags or ()),
            )
        )
        if len(found) > MAX_ITEMS:
            break
    return found


def items_of(golden_set_id: str, version: int) -> Select[Any]:
    """The items of one version of a set."""
    return select(GoldenItem).where(
        GoldenItem.golden_set_id == golden_set_id,
        GoldenItem.first_version <= version,
        (GoldenItem.last_version.is_(None)) | (GoldenItem.last_version >= version),
    )


def _version_or_current(golden: GoldenSet, version: int | None) -> int:
    if version is None:
        return golden.version
    if not 1 <= version <= golden.version:
        raise ValidationFailed(
            f"This golden set has versions 1 to {golden.version}, not {version}.",
            details={"field": "version", "latest": golden.version},
        )
    return version


def list_items(
    session: Session,
    *,
    principal: Principal,
    golden_set_id: str,
    version: int | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None, int]:
    """One page of a version's items in the order they were added, the next page's cursor, and the version."""
    golden = get_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    version = _version_or_current(golden, version)
    query = items_of(golden.id, version)
    if cursor:
        (after,) = decode_cursor(cursor, types=(str,))
        query = query.where(GoldenItem.id > after)
    rows = list(session.execute(query.order_by(GoldenItem.id).limit(limit + 1)).scalars())
    page = [item_record(row) for row in rows[:limit]]
    if len(rows) <= limit:
        return page, None, version
    return page, encode_cursor(rows[limit - 1].id), version


def list_golden_sets(session: Session, *, principal: Principal, project_id: str) -> list[dict[str, Any]]:
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    sets = session.execute(
        select(GoldenSet).where(GoldenSet.project_id == project_id).order_by(GoldenSet.name)
    ).scalars()
    return [golden_set_record(session, golden, with_versions=False) for golden in sets]


def read_golden_set(session: Session, *, principal: Principal, golden_set_id: str) -> dict[str, Any]:
    return golden_set_record(
        session, get_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    )


def golden_set_record(session: Session, golden: GoldenSet, *, with_versions: bool = True) -> dict[str, Any]:
    """A golden set as the API and its events show it."""
    versions = list(
        session.execute(
            select(GoldenSetVersion)
            .where(GoldenSetVersion.golden_set_id == golden.id)
            .order_by(GoldenSetVersion.version)
        ).scalars()
    )
    current = versions[-1] if versions else None
    runs = session.execute(
        select(func.count()).select_from(GoldenRun).where(GoldenRun.golden_set_id == golden.id)
    ).scalar_one()
    record: dict[str, Any] = {
        "id": golden.id,
        "project_id": golden.project_id,
        "name": golden.name,
        "version": golden.version,
        "item_count": current.item_count if current else 0,
        "thresholds": golden.thresholds,
        "runs": runs,
        "created_at": to_json_time(golden.created_at),
        "created_by": golden.created_by,
        "updated_at": to_json_time(golden.updated_at),
    }
    if with_versions:
        record["versions"] = [
            {
                "version": v.version,
                "item_count": v.item_count,
                "source": v.source,
                "created_at": to_json_time(v.created_at),
                "created_by": v.created_by,
            }
            for v in versions
        ]
    return record


def item_record(item: GoldenItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "query": item.query,
        "response": item.response,
        "context": item.context,
        "expected": item.expected,
        "evaluator_type": item.evaluator_type,
        "source_review_id": item.source_review_id,
        "source_control_id": item.source_control_id,
        "tags": item.tags or [],
        "metadata": item.attributes,
        "first_version": item.first_version,
        "last_version": item.last_version,
        "created_at": to_json_time(item.created_at),
    }
