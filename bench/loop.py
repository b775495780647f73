"""The loop, replayed on HaluEval (shared/data): does the queue shrink as memory grows, and are the verdicts
memory makes right?

The precedent evaluator (no model) judges each interaction from the expert decisions so far; every ambiguous
case goes to review, where HaluEval's human label plays the expert and its hallucination spans the reasoning.
Rounds of interactions follow one another; per round: the share of items that were ambiguous (the reviews
spent) and the accuracy of the confident verdicts against the human labels.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from anyio import CapacityLimiter

from bench.results import halueval_rows, write_section
from casework.db import migrate
from casework.db.engine import Database
from casework.evaluators.definitions import precedent
from casework.evaluators.judge import Interaction, LLMJudge
from casework.evaluators.runner import EvaluationRunner
from casework.services.auth import Principal, Role
from casework.services.bootstrap import bootstrap
from casework.services.evaluators import register_evaluator
from casework.services.projects import get_or_create_project
from casework.services.reviews import Feedback, submit_feedback

ROUND_SIZE = 500
EVALUATOR = precedent(("faithful", "hallucinated"), name="hallucination-precedent")


def reasoning(row: dict[str, object]) -> str:
    spans = row.get("hallucination_spans") or []
    if row["hallucination"] == "yes":
        return (
            "Invented or unsupported: " + "; ".join(str(s) for s in spans)
            if spans
            else "States invented facts."
        )
    return "The answer stays with what is known and asked."


async def replay(
    database: Database, principal: Principal, project_id: str, rows: list[dict[str, object]]
) -> list[tuple[int, int, int, int]]:
    limiter = CapacityLimiter(2)
    runner = EvaluationRunner(database, LLMJudge(None), limiter=lambda: limiter)
    results = []
    for start in range(0, len(rows), ROUND_SIZE):
        batch = rows[start : start + ROUND_SIZE]
        ambiguous = confident = correct = 0
        for row in batch:
            label = "hallucinated" if row["hallucination"] == "yes" else "faithful"
            [evaluation] = await runner.evaluate(
                principal=principal,
                project_id=project_id,
                evaluators=[EVALUATOR.name],
                interaction=Interaction(query=str(row["user_query"]), response=str(row["chatgpt_response"])),
            )
            if evaluation.review_id:
                ambiguous += 1
                with database.transaction() as session:  # the expert decides
                    submit_feedback(
                        session,
                        principal=principal,
                        review_id=evaluation.review_id,
                        feedback=Feedback(label, reasoning(row), "halueval-annotator"),
                    )
            else:
                confident += 1
                correct += evaluation.classification == label
        results.append((len(batch), ambiguous, confident, correct))
        print(
            f"  round {len(results)}: {ambiguous}/{len(batch)} ambiguous, {correct}/{confident} confident right"
        )
    await runner.aclose()
    return results


def main() -> None:
    rows = halueval_rows()
    random.Random(11).shuffle(rows)
    with tempfile.TemporaryDirectory() as home:
        database = Database.from_url(f"sqlite:///{Path(home) / 'loop.db'}")
        migrate.upgrade(database)
        with database.transaction() as session:
            key = bootstrap(session)
            assert key is not None
            workspace_id = key.api_key.workspace_id
            project, _ = get_or_create_project(session, workspace_id=workspace_id, name="halueval-loop")
            principal = Principal(key_id="bench", workspace_id=workspace_id, role=Role.admin, label="bench")
            register_evaluator(session, principal=principal, project_id=project.id, definition=EVALUATOR)
            project_id = project.id
        results = asyncio.run(replay(database, principal, project_id, rows))
        database.dispose()
    lines = [
        "| round | items | ambiguous (reviews spent) | confident | confident and right | memory so far |",
        "|---|---|---|---|---|---|",
    ]
    memory = 0
    for number, (items, ambiguous, confident, correct) in enumerate(results, 1):
        memory += ambiguous
        accuracy = f"{correct / confident:.0%}" if confident else "n/a"
        lines.append(
            f"| {number} | {items} | {ambiguous} ({ambiguous / items:.0%}) | {confident} | {correct} ({accuracy}) | {memory} controls |"
        )
    base_rate = sum(r["hallucination"] == "no" for r in rows) / len(rows)
    table = "\n".join(lines)
    print(table)
    note = (
        f"HaluEval general: {len(rows):,} ChatGPT answers, one human label each ({base_rate:.0%} faithful, so "
        "always answering faithful would be right that often). The precedent evaluator uses word overlap only "
        "(no model, no embeddings): it is confident only where an earlier decided case is a near look-alike."
    )
    write_section("loop", f"{table}\n\n{note}")


if __name__ == "__main__":
    main()
