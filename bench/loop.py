"""The loop, replayed on public human-labelled data: is what memory decides alone as right as the team asked?

HaluEval general (hallucination yes/no on ChatGPT answers) and DICES 350 (safety, with an expert's gold label)
from ../shared/data, in a fixed order. The precedent evaluator (memory alone, no model) judges each interaction
as it arrives; what memory may not decide alone goes to the queue, where the label plays the expert, oldest
first. The server's own background work runs after every decision (Worker.run_once: the evidence replay, the
memory pass over pending look-alikes, spot checks, provenance), exactly as `casework serve` runs it.

Per round: reviews spent (expert decisions, spot checks included), decisions memory took alone (at evaluation
and by the memory pass) with their precision against the labels and its 95% interval, suggestions made and
accepted. Overall: Cohen's kappa of memory's own decisions against the labels, the majority-class baseline on the
same cases, coverage, a reliability table of memory's confidence, and retrieval recall@5 against scoring every
control by brute force.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter
from sqlalchemy import select

from bench.results import halueval_rows, write_section
from casework.config import Settings
from casework.db import migrate
from casework.db.engine import Database
from casework.db.models import Control, Decision, Review
from casework.definitions import Interaction, precedent
from casework.evaluators.judge import LLMJudge
from casework.memory.calibration import interval
from casework.memory.retrieval import MemorySettings, retrieve_scored
from casework.memory.similarity import ControlWords, Words, similarity
from casework.secrets import SecretBox, load_key
from casework.services.auth import Principal, Role
from casework.services.bootstrap import bootstrap
from casework.services.evaluators import register_evaluator
from casework.services.projects import get_or_create_project
from casework.services.reviews import Feedback, submit_feedback
from casework.worker.runner import EvaluationRunner
from casework.worker.setup import build_background

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Item:
    query: str
    response: str
    label: str
    reasoning: str


@dataclass(frozen=True)
class DataSet:
    name: str
    options: tuple[str, str]
    items: list[Item]
    round_size: int


def halueval() -> DataSet:
    rows = halueval_rows()
    random.Random(11).shuffle(rows)
    items = []
    for row in rows:
        spans = row.get("hallucination_spans") or []
        hallucinated = row["hallucination"] == "yes"
        reasoning = (
            (
                "Invented or unsupported: " + "; ".join(str(s) for s in spans)
                if spans
                else "States invented facts."
            )
            if hallucinated
            else "The answer stays with what is known and asked."
        )
        items.append(
            Item(
                str(row["user_query"]),
                str(row["chatgpt_response"]),
                "hallucinated" if hallucinated else "faithful",
                reasoning,
            )
        )
    return DataSet("HaluEval general", ("faithful", "hallucinated"), items, 500)


def dices() -> DataSet:
    instances = json.loads((DATA / "dices" / "dices_350_expert.json").read_text())["instances"]
    items = []
    for instance in sorted(instances, key=lambda i: int(i["id"])):
        unsafe = (
            instance["annotations"]["safety"]["majority_human"] == "Yes"
        )  # "Yes": the rater judged it UNSAFE
        items.append(
            Item(
                instance["instance"]["user_prompt"],
                instance["instance"]["response"],
                "unsafe" if unsafe else "safe",
                "The reply is unsafe for the user or others." if unsafe else "The reply is safe.",
            )
        )
    return DataSet("DICES 350 (expert gold)", ("safe", "unsafe"), items, 50)


@dataclass
class Round:
    items: int = 0
    queued: int = 0
    expert: int = 0
    memory_alone: list[tuple[str, str, float]] = field(default_factory=list)  # (predicted, label, confidence)
    suggestions: int = 0
    accepted: int = 0


@dataclass
class Replay:
    rounds: list[Round]
    reliability: list[tuple[float, bool]]  # memory's calibrated confidence, and whether it was right
    recall_at_5: float
    seconds: float


def key(query: str, response: str) -> tuple[str, str]:
    return (query, response)


async def replay(dataset: DataSet, home: Path) -> Replay:
    started = time.perf_counter()
    settings = Settings(home=home, spot_check_rate=0.05, worker_poll_seconds=0.01)
    database = Database.from_url(f"sqlite:///{home / 'loop.db'}")
    migrate.upgrade(database)
    evaluator = precedent(dataset.options, name="precedent")
    with database.transaction() as session:
        created = bootstrap(session)
        assert created is not None
        workspace_id = created.api_key.workspace_id
        project, _ = get_or_create_project(session, workspace_id=workspace_id, name="loop")
        principal = Principal(key_id="bench", workspace_id=workspace_id, role=Role.admin, label="bench")
        register_evaluator(session, principal=principal, project_id=project.id, definition=evaluator)
        project_id = project.id
    limiter = CapacityLimiter(2)
    runner = EvaluationRunner.from_settings(settings, database, limiter=lambda: limiter, judge=LLMJudge(None))
    box = SecretBox(load_key(None, home))
    background = build_background(settings, database, runner, box, limiter=lambda: limiter)
    worker = background.worker
    labels = {key(item.query, item.response): item for item in dataset.items}
    reliability: list[tuple[float, bool]] = []
    seen_memory: set[str] = set()
    rounds = []

    async def settle() -> None:
        while await worker.run_once():
            pass

    for start in range(0, len(dataset.items), dataset.round_size):
        batch = dataset.items[start : start + dataset.round_size]
        current = Round(items=len(batch))
        for item in batch:
            [evaluation] = await runner.evaluate(
                principal=principal,
                project_id=project_id,
                evaluators=[evaluator.name],
                interaction=Interaction(query=item.query, response=item.response),
            )
            if not evaluation.ambiguous:
                current.memory_alone.append(
                    (str(evaluation.classification), item.label, evaluation.confidence or 0.0)
                )
                reliability.append((evaluation.confidence or 0.0, evaluation.classification == item.label))
            else:
                current.queued += 1
        await settle()
        # The expert works the queue in its order until it is empty; memory works beside them.
        while True:
            pending = await runner.db(_next_pending, write=False, project_id=project_id)
            if pending is None:
                break
            review_id, query, response, suggestion = pending
            item = labels[key(query, response)]
            if suggestion:
                current.suggestions += 1
                current.accepted += suggestion["classification"] == item.label
                reliability.append(
                    (float(suggestion["confidence"]), suggestion["classification"] == item.label)
                )
            await runner.db(
                _decide,
                write=True,
                principal=principal,
                review_id=review_id,
                feedback=Feedback(item.label, item.reasoning, "expert@bench"),
            )
            current.expert += 1
            await settle()
        for predicted, query, response, confidence, decision_id in await runner.db(
            _memory_resolutions, write=False, project_id=project_id
        ):
            if decision_id in seen_memory:
                continue
            seen_memory.add(decision_id)
            label = labels[key(query, response)].label
            current.memory_alone.append((predicted, label, confidence))
            reliability.append((confidence, predicted == label))
        rounds.append(current)
        print(
            f"  {dataset.name} round {len(rounds)}: {current.queued}/{current.items} queued, {current.expert} expert "
            f"decisions, {len(current.memory_alone)} by memory alone, {current.suggestions} suggestions "
            f"({current.accepted} accepted)",
            flush=True,
        )
    recall = await runner.db(_recall_at_5, write=False, project_id=project_id, items=dataset.items[:200])
    await background.aclose()
    await runner.aclose()
    database.dispose()
    return Replay(rounds, reliability, recall, time.perf_counter() - started)


def _next_pending(session: Any, *, project_id: str) -> tuple[str, str, str, dict[str, Any] | None] | None:
    review = session.execute(
        select(Review)
        .where(Review.project_id == project_id, Review.status == "pending")
        .order_by(Review.priority.desc(), Review.created_at, Review.id)
        .limit(1)
    ).scalar_one_or_none()
    if review is None:
        return None
    return review.id, review.query, review.response, review.suggestion


def _decide(session: Any, *, principal: Principal, review_id: str, feedback: Feedback) -> None:
    review = session.get_one(Review, review_id)
    overturn = review.status == "resolved" and review.resolution_classification != feedback.classification
    submit_feedback(session, principal=principal, review_id=review_id, feedback=feedback, overturn=overturn)


def _memory_resolutions(session: Any, *, project_id: str) -> list[tuple[str, str, str, float, str]]:
    rows = session.execute(
        select(Decision.classification, Review.query, Review.response, Decision.confidence, Decision.id)
        .join(Review, Review.id == Decision.review_id)
        .where(Decision.project_id == project_id, Decision.by == "memory")
    ).all()
    return [(c, q, r, conf or 0.0, i) for c, q, r, conf, i in rows]


def _recall_at_5(session: Any, *, project_id: str, items: list[Item]) -> float:
    """Share of the brute-force top 5 (every active control scored) that retrieval returns."""
    controls = list(
        session.execute(
            select(Control).where(Control.project_id == project_id, Control.status == "active")
        ).scalars()
    )
    words = {c.id: ControlWords.of(c.query, c.response, c.reasoning, list(c.tags)) for c in controls}
    found = expected = 0
    settings = MemorySettings()
    for item in items:
        interaction = Words.of(item.query, item.response)
        brute = sorted(
            ((cid, round(similarity(interaction, w), 4)) for cid, w in words.items()),
            key=lambda p: (-p[1], p[0]),
        )
        top = {cid for cid, score in brute[:5] if score >= settings.min_score}
        got = retrieve_scored(
            session,
            project_id=project_id,
            evaluator_type="precedent",
            query=item.query,
            response=item.response,
            settings=settings,
        )
        found += len(top & {cid for cid, _ in got.ranked})
        expected += len(top)
    return found / expected if expected else 1.0


STUDY_ITEMS = 1500
STUDY_K = (1, 3, 5, 10)
STUDY_MIN_SCORE = (0.05, 0.1, 0.2, 0.3)


def study(dataset: DataSet) -> str:
    """How k and the minimum score shape what memory can do, to choose their defaults: each item is decided
    from the items before it (leave-one-out in time order, every earlier item scored), by the precedent vote.
    Per setting: the share of items memory has a suggestion for, how often that suggestion is right, and the
    share it could decide alone at a 0.97 precision target by the same fixed-sequence test the server uses."""
    from casework.evaluators.precedent import precedent_verdict
    from casework.memory.calibration import Sample, calibrate
    from casework.memory.retrieval import Memory

    items = dataset.items[:STUDY_ITEMS]
    words = [ControlWords.of(i.query, i.response, i.reasoning, []) for i in items]
    asked = [Words.of(i.query, i.response) for i in items]
    neighbours: list[list[tuple[float, int]]] = []
    for index, interaction in enumerate(asked):
        scored = [(round(similarity(interaction, words[j]), 4), j) for j in range(index)]
        neighbours.append(
            sorted((p for p in scored if p[0] >= min(STUDY_MIN_SCORE)), key=lambda p: (-p[0], p[1]))[
                : max(STUDY_K)
            ]
        )
    definition = precedent(dataset.options)
    rows = [
        "| k | minimum score | items with a suggestion | suggestion right | decided alone at 0.97 |",
        "|---|---|---|---|---|",
    ]
    for k in STUDY_K:
        for minimum in STUDY_MIN_SCORE:
            samples = []
            for index, found in enumerate(neighbours):
                memories = [
                    Memory(control=Control(id=str(j), classification=items[j].label), score=score)  # type: ignore[call-arg]
                    for score, j in found
                    if score >= minimum
                ][:k]
                if not memories:
                    samples.append(Sample(0.0, None, False))
                    continue
                verdict = precedent_verdict(definition, memories)
                samples.append(
                    Sample(
                        verdict.confidence,
                        verdict.classification,
                        verdict.classification == items[index].label,
                    )
                )
            decided = [s for s in samples if s.predicted is not None]
            calibration = calibrate(samples, target=0.97, options=dataset.options)
            right = sum(s.correct for s in decided)
            mark = " (default)" if (k, minimum) == (5, 0.1) else ""
            rows.append(
                f"| {k}{mark} | {minimum} | {pct(len(decided) / len(samples))} | "
                f"{pct(right / len(decided)) if decided else 'n/a'} | {pct(calibration.coverage)} |"
            )
    return f"Retrieval settings on the first {len(items):,} items of {dataset.name}:\n\n" + "\n".join(rows)


def kappa(pairs: list[tuple[str, str]]) -> float | None:

    if len({p for p, _ in pairs} | {label for _, label in pairs}) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score([label for _, label in pairs], [p for p, _ in pairs]))


def pct(value: float) -> str:
    return f"{value:.1%}"


def report(dataset: DataSet, result: Replay) -> str:
    lines = [
        "| round | items | queued for people | expert decisions | decided by memory alone | right | precision [95% CI] | suggestions (accepted) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    everything: list[tuple[str, str, float]] = []
    for number, r in enumerate(result.rounds, 1):
        right = sum(p == label for p, label, _ in r.memory_alone)
        n = len(r.memory_alone)
        lo, hi = interval(right, n)
        precision = f"{pct(right / n)} [{pct(lo)}-{pct(hi)}]" if n else "n/a"
        lines.append(
            f"| {number} | {r.items} | {r.queued} | {r.expert} | {n} | {right} | {precision} | {r.suggestions} ({r.accepted}) |"
        )
        everything += r.memory_alone
    n = len(everything)
    right = sum(p == label for p, label, _ in everything)
    items = sum(r.items for r in result.rounds)
    majority = Counter(label for _, label, _ in everything).most_common(1)[0][1] / n if n else None
    k = kappa([(p, label) for p, label, _ in everything])
    lo, hi = interval(right, n)
    suggestions = sum(r.suggestions for r in result.rounds)
    accepted = sum(r.accepted for r in result.rounds)
    base = Counter(item.label for item in dataset.items).most_common(1)[0]
    summary = [
        f"- Items: {items:,} ({base[0]} {pct(base[1] / items)} of them, so always answering {base[0]} is right that often).",
        f"- Memory decided alone: {n:,} ({pct(n / items)} coverage); right {right:,}"
        + (f" = {pct(right / n)} [95% CI {pct(lo)}-{pct(hi)}]" if n else "")
        + ". Target: at least 97%, or abstain.",
        f"- On those same cases the majority class would be right {pct(majority)} of the time; Cohen's kappa of memory's decisions against the labels: "
        + (f"{k:.3f}" if k is not None else "n/a (one class only)")
        + "."
        if n
        else "- Memory abstained everywhere: it never had the evidence to decide alone (honest abstention).",
        f"- Reviews spent: {sum(r.expert for r in result.rounds):,}; memory's suggestions: {suggestions:,}, accepted by the expert: {accepted:,}"
        + (f" ({pct(accepted / suggestions)})" if suggestions else "")
        + ".",
        f"- Retrieval recall@5 against scoring every control (200 interactions): {pct(result.recall_at_5)} (target: within 2 points of 100%).",
        f"- Replayed in {result.seconds:.0f} s.",
    ]
    bins: dict[int, list[tuple[float, bool]]] = {}
    for confidence, correct in result.reliability:
        bins.setdefault(min(int(confidence * 10), 9), []).append((confidence, correct))
    reliability = ["| memory's confidence | verdicts | mean confidence | right |", "|---|---|---|---|"]
    gap = 0.0
    for b in sorted(bins):
        values = bins[b]
        shown = sum(c for c, _ in values) / len(values)
        right = sum(ok for _, ok in values) / len(values)
        gap += abs(shown - right) * len(values)
        reliability.append(
            f"| {b / 10:.1f}-{(b + 1) / 10:.1f} | {len(values):,} | {pct(shown)} | {pct(right)} |"
        )
    if result.reliability:
        reliability.append(
            f"\nExpected calibration error (the verdict-weighted gap between confidence and share right): "
            f"{gap / len(result.reliability):.3f}. Each confidence was shown before the expert decided: the "
            "calibration had not seen the decision it is checked against."
        )
    return (
        f"### {dataset.name}\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(summary)
        + "\n\nReliability (suggestions and decisions):\n\n"
        + "\n".join(reliability)
    )


def main(datasets: list[Callable[[], DataSet]] | None = None) -> None:
    sections = []
    # BENCH_LOOP_ITEMS: replay only the first N items of each set (its fixed order), for a shorter run; the
    # report says how many it replayed.
    limit = int(os.environ.get("BENCH_LOOP_ITEMS", "0")) or None
    for make in datasets or [dices, halueval]:
        dataset = make()
        if limit is not None and limit < len(dataset.items):
            dataset = DataSet(
                f"{dataset.name}, first {limit:,} of {len(dataset.items):,}",
                dataset.options,
                dataset.items[:limit],
                dataset.round_size,
            )
        # In memory when the machine has a tmpfs: this measures decisions, not the disk's fsyncs.
        scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
        with tempfile.TemporaryDirectory(dir=scratch) as home:
            result = asyncio.run(replay(dataset, Path(home)))
        section = report(dataset, result) + "\n\n" + study(dataset)
        print(section)
        sections.append(section)

    note = (
        "The precedent evaluator (memory alone: word similarity of query and response, no model); the label plays "
        "the expert, who works the queue oldest first; spot checks at the default 5%. Memory decides alone only "
        "where the lower bound of its measured precision reaches 0.97 (casework.memory.calibration)."
    )
    write_section("loop", "\n\n".join(sections) + "\n\n" + note)


if __name__ == "__main__":
    main()
