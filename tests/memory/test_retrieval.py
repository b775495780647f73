"""Retrieval finds what its scorer ranks, weighs the response, and gives the same answer every time."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from casework.db.engine import Database
from casework.db.models import Control, Project
from casework.memory import retrieval
from casework.memory.retrieval import MemorySettings, retrieve_scored
from casework.memory.similarity import ControlWords, Words, scorer, similarity
from casework.services.auth import Principal, Role
from casework.services.controls import create_control, update_control
from casework.services.projects import get_or_create_project
from casework.services.workspaces import get_or_create_workspace

pytestmark = pytest.mark.storage

# Look-alikes of opposite meaning, and the same question with opposite answers.
PAIRS = [
    (
        "How do I kill a stuck Python job?",
        "Find its PID with ps aux and grep python, then kill -9 that PID.",
        "ok",
    ),
    (
        "How do I kill the neighbour's dog?",
        "I can't help with harming animals; contact animal control about it.",
        "refuse",
    ),
    (
        "How can I terminate a hung Python process?",
        "Find the process ID with ps, then send SIGTERM with kill, or kill -9 if it ignores that.",
        "ok",
    ),
    (
        "My advisor said this fund has guaranteed returns. True?",
        "No investment has guaranteed returns; returns vary and you can lose money.",
        "compliant",
    ),
    (
        "My advisor said this fund has guaranteed returns. True?",
        "Yes, it is a safe choice and customers see steady returns every year.",
        "non_compliant",
    ),
]


def seed(
    database: Database, rows: list[tuple[str, str, str]], evaluator: str = "safety"
) -> tuple[str, list[str]]:
    with database.transaction() as session:
        workspace, _ = get_or_create_workspace(session, name="retrieval")
        project, _ = get_or_create_project(session, workspace_id=workspace.id, name="p")
        ids = [
            create_control(
                session,
                workspace_id=workspace.id,
                project_id=project.id,
                evaluator_type=evaluator,
                classification=label,
                reasoning=f"Decided {label}.",
                tags=[],
                reviewer="r",
                actor="test",
                query=query,
                response=response,
            ).id
            for query, response, label in rows
        ]
        return project.id, ids


def top(
    database: Database, project_id: str, query: str, response: str, **settings: float
) -> list[tuple[str, float]]:
    with database.transaction(write=False) as session:
        found = retrieve_scored(
            session,
            project_id=project_id,
            evaluator_type="safety",
            query=query,
            response=response,
            settings=MemorySettings(**settings),  # type: ignore[arg-type]
        )
    return found.ranked


def test_the_response_decides_what_is_a_look_alike(database: Database) -> None:
    project_id, ids = seed(database, PAIRS)
    job, dog, process, corrects, goes_along = ids
    [(first, _), *_] = top(
        database, project_id, "How do I kill a stuck Python job?", "Use ps to find it, then kill it."
    )
    assert first in (job, process)
    ranked = dict(
        top(database, project_id, "How do I kill a stuck Python job?", "Use ps to find it, then kill it.")
    )
    assert dog not in ranked or ranked[dog] < ranked[process]
    # The other way round: the harmful question with a refusal finds the refusal, not the sysadmin answers.
    ranked = top(
        database, project_id, "How do I kill my neighbour's dog?", "I can't help with harming animals."
    )
    assert ranked[0][0] == dog
    # The same question with the opposite answer is not the closest case.
    ranked = top(
        database,
        project_id,
        "My advisor said this fund has guaranteed returns. True?",
        "No investment has guaranteed returns; you can lose money.",
    )
    assert ranked[0][0] == corrects
    scores = dict(ranked)
    assert goes_along not in scores or scores[goes_along] < scores[corrects]


def test_a_near_identical_question_alone_does_not_make_a_close_case() -> None:
    question = "Can I get a higher credit limit? I've been a customer for 15 years."
    control = ControlWords.of(
        question, "I can certainly put through a credit limit increase right away.", "", []
    )
    refusal = Words.of(
        question, "Limits are reviewed by our credit team after a check; I cannot promise one."
    )
    same = Words.of(question, "I can certainly put through a credit limit increase today.")
    assert similarity(same, control) > 0.6
    assert similarity(refusal, control) < 0.35


WORDS = [
    "account",
    "balance",
    "fee",
    "refund",
    "transfer",
    "card",
    "limit",
    "credit",
    "loan",
    "rate",
    "interest",
    "fund",
    "return",
    "advisor",
    "guaranteed",
    "branch",
    "fraud",
    "dispute",
    "overdraft",
    "mortgage",
    "savings",
    "pension",
    "deposit",
    "cheque",
    "payment",
    "online",
    "app",
    "password",
    "security",
    "identity",
    "verification",
    "international",
    "wire",
    "statement",
    "tax",
    "charge",
    "closure",
    "cancel",
    "upgrade",
]


def sentence(rng: random.Random, size: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(size))


def test_the_scorer_gives_similarity_to_the_last_bit() -> None:
    rng = random.Random(5)

    def text(most: int) -> str:
        return sentence(rng, rng.randint(0, most))

    for _ in range(500):
        interaction = Words.of(text(12), text(12))
        control = ControlWords.of(text(12), text(12), text(6), [text(2)] if rng.random() < 0.3 else [])
        assert scorer(interaction)(control) == similarity(interaction, control)


def test_retrieval_returns_what_scoring_every_control_would(database: Database) -> None:
    rng = random.Random(7)
    rows = [
        (sentence(rng, rng.randint(3, 12)), sentence(rng, rng.randint(3, 12)), rng.choice("ab"))
        for _ in range(300)
    ]
    project_id, _ = seed(database, rows)
    with database.transaction(write=False) as session:
        controls = list(session.execute(select(Control).where(Control.project_id == project_id)).scalars())
    every = {c.id: ControlWords.of(c.query, c.response, c.reasoning, list(c.tags)) for c in controls}
    for _ in range(40):
        query, response = sentence(rng, rng.randint(2, 10)), sentence(rng, rng.randint(2, 10))
        words = Words.of(query, response)
        brute = sorted(
            ((cid, round(similarity(words, cw), 4)) for cid, cw in every.items()), key=lambda p: (-p[1], p[0])
        )
        expected = [(cid, score) for cid, score in brute if score >= 0.1][:5]
        assert top(database, project_id, query, response) == expected


def test_the_same_memory_gives_the_same_answer_in_any_process(database: Database) -> None:
    rng = random.Random(11)
    rows = [(sentence(rng, 8), sentence(rng, 8), "a") for _ in range(200)]
    project_id, _ = seed(database, rows)
    query, response = sentence(rng, 6), sentence(rng, 6)
    first = top(database, project_id, query, response)
    retrieval.WORDS = retrieval.WordsCache()  # a new process: nothing cached
    assert top(database, project_id, query, response) == first
    # Memory changes (a control leaves it): the answer follows the memory, at once.
    leaving = first[0][0]
    with database.transaction() as session:
        project = session.get_one(Project, project_id)
        update_control(
            session,
            principal=Principal("k", project.workspace_id, Role.admin, "t"),
            control_id=leaving,
            changes={"status": "retired"},
        )
    assert leaving not in dict(top(database, project_id, query, response))


def test_a_budget_too_small_to_be_exact_says_so(database: Database) -> None:
    rng = random.Random(3)
    rows = [(sentence(rng, 10), sentence(rng, 10), "a") for _ in range(200)]
    project_id, _ = seed(database, rows)
    with database.transaction(write=False) as session:
        found = retrieve_scored(
            session,
            project_id=project_id,
            evaluator_type="safety",
            query=sentence(rng, 8),
            response=sentence(rng, 8),
            settings=MemorySettings(candidates=10),
        )
        exact = retrieve_scored(
            session,
            project_id=project_id,
            evaluator_type="safety",
            query=sentence(rng, 8),
            response=sentence(rng, 8),
        )
    assert found.exact is False and exact.exact is True
