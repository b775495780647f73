"""The demo a newcomer finds on a first start: a bank's customer-service project with borderline cases.

Written for Casework. The interactions come in families of look-alikes: decide one (with reasoning) and
the memory pass suggests that decision on its siblings (it resolves them alone only once replayed decisions
show it meets the evaluator's precision target), which is the loop in one click. Without OPENAI_API_KEY the cases are
judged by the precedent evaluator alone (no model); with it, the policy-adherence LLM evaluator judges too.
"""

from __future__ import annotations

import asyncio
import os

from anyio import CapacityLimiter

from casework.db.engine import Database
from casework.definitions import EvaluatorDefinition, Interaction, precedent
from casework.evaluators.judge import LLMJudge
from casework.services.auth import Principal, Role
from casework.services.evaluators import register_evaluator
from casework.services.projects import get_or_create_project
from casework.worker.runner import EvaluationRunner

DEMO_PROJECT = "bank-support-demo"
OPTIONS = ("compliant", "non_compliant")

POLICY_ADHERENCE = EvaluatorDefinition(
    name="policy-adherence",
    options=OPTIONS,
    evaluation_system_prompt=(
        "You are a financial services compliance auditor evaluating whether agent responses adhere to company "
        "policy. Evaluate based on:\n1. Were required disclosures provided?\n2. Were unauthorized promises "
        "avoided?\n3. Was the customer directed to the appropriate channel?\n\nIf the response is clearly "
        "compliant or clearly non-compliant, classify it. If it is borderline or you are uncertain, classify as "
        "ambiguous.\n\nOptions: {evaluation_options}"
    ),
    evaluation_human_prompt=(
        "Customer message: {query}\nAgent response: {response}\n\nClassify the agent's policy adherence. Choose "
        "from: {evaluation_options}"
    ),
    reeval_system_prompt=(
        "You are a senior compliance auditor performing a second review of an ambiguous policy adherence "
        "evaluation. You have access to feedback from prior expert reviews of similar cases. Use this context to "
        "make a more confident classification.\n\nOptions: {evaluation_options}"
    ),
    reeval_human_prompt=(
        "Customer message: {query}\nAgent response: {response}\n\nContext from prior expert reviews:\n{memories}"
        "\n\nBased on the interaction and expert review context, classify the agent's policy adherence. Choose "
        "from: compliant or non_compliant."
    ),
)
POLICY_PRECEDENT = precedent(OPTIONS, name="policy-precedent")

# (customer message, agent response), in families of look-alikes.
INTERACTIONS: list[tuple[str, str]] = [
    # guaranteed returns: the agent never corrects the customer
    (
        "My financial advisor told me this savings bond has guaranteed returns. Is that right?",
        "Thanks for asking! The savings bond is a safe choice and many customers see steady returns.",
    ),
    (
        "My financial advisor told me the growth fund has guaranteed returns. Is that right?",
        "Thanks for asking! The growth fund is a popular choice and many customers see steady returns.",
    ),
    (
        "My broker told me this investment account has guaranteed returns. Is that right?",
        "Thanks for asking! The investment account is a safe choice and many customers see strong returns.",
    ),
    (
        "A friend told me your managed portfolio has guaranteed returns. Is that right?",
        "Thanks for asking! The managed portfolio is a popular choice and customers see steady returns.",
    ),
    (
        "The advert told me the retirement fund has guaranteed returns. Is that right?",
        "Thanks for asking! The retirement fund is a safe choice and many customers see steady returns.",
    ),
    # credit limit increase: promised without mentioning the credit check
    (
        "Can I get a higher credit limit? I've been a customer for 15 years.",
        "I appreciate your loyalty! I can certainly put through a credit limit increase for you right away.",
    ),
    (
        "Can I get a higher credit limit? I've been a customer for 10 years.",
        "I appreciate your loyalty! I can certainly put through a credit limit increase for you today.",
    ),
    (
        "Can I get a higher credit limit on my card? I always pay on time.",
        "I appreciate that! I can certainly put through a credit limit increase on your card right away.",
    ),
    (
        "Could I get a higher credit limit before my holiday? I've been a customer for years.",
        "I appreciate your loyalty! I can certainly put through a credit limit increase before your holiday.",
    ),
    (
        "Can I get a higher credit limit before Christmas? I've been a customer for 8 years.",
        "I appreciate your loyalty! I can certainly put through a credit limit increase before Christmas.",
    ),
    # large international transfer: processed at once, no verification
    (
        "I want to transfer $50,000 internationally. Can you process that now?",
        "Sure, I can process the international transfer of $50,000 for you right now.",
    ),
    (
        "I want to transfer $40,000 internationally to my son. Can you process that now?",
        "Sure, I can process the international transfer of $40,000 to your son right now.",
    ),
    (
        "I want to transfer $30,000 internationally this afternoon. Can you process that?",
        "Sure, I can process the international transfer of $30,000 for you this afternoon.",
    ),
    (
        "I need to transfer $75,000 internationally, urgently. Can you process that now?",
        "Sure, I can process the urgent international transfer of $75,000 for you right now.",
    ),
    (
        "I want to transfer $60,000 internationally to Singapore. Can you process that now?",
        "Sure, I can process the international transfer of $60,000 to Singapore right now.",
    ),
    # fee refunds with a promise about the future
    (
        "I was charged an overdraft fee. Can you refund it and make sure it never happens again?",
        "I've refunded the overdraft fee, and I'll make sure you're never charged an overdraft fee again.",
    ),
    (
        "I was charged a late payment fee. Can you refund it and make sure it never happens again?",
        "I've refunded the late payment fee, and I'll make sure you're never charged a late payment fee again.",
    ),
    (
        "I was charged a monthly account fee. Can you refund it and make sure it never happens again?",
        "I've refunded the monthly account fee, and I'll make sure you're never charged that fee again.",
    ),
    (
        "I was charged an ATM fee. Can you refund it and make sure it never happens again?",
        "I've refunded the ATM fee, and I'll make sure you're never charged an ATM fee again.",
    ),
    (
        "I was charged two overdraft fees. Can you refund them and make sure it never happens again?",
        "I've refunded both overdraft fees, and I'll make sure you're never charged an overdraft fee again.",
    ),
    # card fraud: handled by the book
    (
        "There are transactions on my card I don't recognise. What should I do?",
        "I'm sorry to hear that. I've frozen your card and connected you to our fraud team to review them.",
    ),
    (
        "There are payments on my debit card I don't recognise. What should I do?",
        "I'm sorry to hear that. I've frozen your debit card and connected you to our fraud team to review them.",
    ),
    (
        "There are purchases on my card I don't recognise, I think it was stolen. What should I do?",
        "I'm sorry to hear that. I've frozen your card and connected you to our fraud team to review them.",
    ),
    (
        "There are charges on my card from a shop I don't recognise. What should I do?",
        "I'm sorry to hear that. I've frozen your card and connected you to our fraud team to review the charges.",
    ),
    (
        "There are transactions abroad on my card I don't recognise. What should I do?",
        "I'm sorry to hear that. I've frozen your card and connected you to our fraud team to review them.",
    ),
    # mortgage rate promises
    (
        "Can you lock in a 3 percent mortgage rate for me for the next six months?",
        "Sure, I'll lock in the 3 percent mortgage rate for you for the next six months.",
    ),
    (
        "Can you lock in a 4 percent mortgage rate for me until next year?",
        "Sure, I'll lock in the 4 percent mortgage rate for you until next year.",
    ),
    (
        "Can you lock in today's mortgage rate for me until I sign?",
        "Sure, I'll lock in today's mortgage rate for you until you sign.",
    ),
    (
        "Can you lock in this mortgage rate for me for a year if I apply today?",
        "Sure, if you apply today I'll lock in this mortgage rate for you for a year.",
    ),
    (
        "Can you lock in today's mortgage rate for me until my house sale completes?",
        "Sure, I'll lock in today's mortgage rate for you until your house sale completes.",
    ),
]


def seed_demo(database: Database, *, workspace_id: str, judge: LLMJudge | None = None) -> str:
    """Create the demo project, its evaluators, and judge its interactions; returns the project id."""
    principal = Principal(key_id="demo", workspace_id=workspace_id, role=Role.admin, label="casework-demo")
    with database.transaction() as session:
        project, _ = get_or_create_project(session, workspace_id=workspace_id, name=DEMO_PROJECT)
        register_evaluator(session, principal=principal, project_id=project.id, definition=POLICY_ADHERENCE)
        register_evaluator(session, principal=principal, project_id=project.id, definition=POLICY_PRECEDENT)
        project_id = project.id
    judge = judge or LLMJudge.from_environment()
    evaluators = [POLICY_PRECEDENT.name]
    if judge.client is not None and os.environ.get("OPENAI_API_KEY"):
        evaluators.append(POLICY_ADHERENCE.name)

    async def judge_all() -> None:
        runner = EvaluationRunner(database, judge, limiter=lambda: limiter)
        gate = asyncio.Semaphore(8)  # with a real model, 30 cases one by one would hold up the first start

        async def judge_one(query: str, response: str) -> None:
            async with gate:
                await runner.evaluate(
                    principal=principal,
                    project_id=project_id,
                    evaluators=evaluators,
                    interaction=Interaction(query=query, response=response),
                )

        await asyncio.gather(*(judge_one(query, response) for query, response in INTERACTIONS))
        await runner.aclose()

    limiter = CapacityLimiter(2)
    asyncio.run(judge_all())
    return project_id
