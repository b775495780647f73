"""The human-in-the-loop tutorial, steps 3 to 8, as a script: traced OpenAI calls in, ambiguous verdicts to the
review queue, expert feedback back in as evaluation memory, and a look-alike case decided confidently.

    export CASEWORK_API_KEY=...            # printed by the first `make serve`
    export CASEWORK_BASE_URL=http://127.0.0.1:8000
    export OPENAI_API_KEY=...              # and OPENAI_BASE_URL for any OpenAI-compatible endpoint
    pip install httpx openai openinference-instrumentation-openai
    python examples/tutorial.py

The code is the tutorial's, with a few additions so that it works on any project state (run it twice, or on
a project with other evaluators): ``session.flush()`` waits until Casework has evaluated what was sent (the
tutorial says "after the evaluation pipeline processes the traces"); it lists only its own evaluator's
reviews and decides each by what the customer asked, never by its place in the list; a review queued without
a confidence prints as such; and every reply is checked, so a refused decision says why instead of failing
later on a missing key.
"""

import os

import httpx
from openai import OpenAI
from openinference.instrumentation.openai import OpenAIInstrumentor

import casework
from casework import Evaluators

# 3. Generate ambiguous evaluations ---------------------------------------------------------------------------
policy_evaluator = Evaluators.custom(
    name="policy-adherence",
    options=["compliant", "non_compliant"],
    evaluation_system_prompt=(
        "You are a financial services compliance auditor evaluating whether "
        "agent responses adhere to company policy. Evaluate based on:\n"
        "1. Were required disclosures provided?\n"
        "2. Were unauthorized promises avoided?\n"
        "3. Was the customer directed to the appropriate channel?\n\n"
        "If the response is clearly compliant or clearly non-compliant, classify it. "
        "If it is borderline or you are uncertain, classify as ambiguous.\n\n"
        "Options: {evaluation_options}"
    ),
    evaluation_human_prompt=(
        "Customer message: {query}\n"
        "Agent response: {response}\n\n"
        "Classify the agent's policy adherence. Choose from: {evaluation_options}"
    ),
    reeval_system_prompt=(
        "You are a senior compliance auditor performing a second review of an "
        "ambiguous policy adherence evaluation. You have access to feedback from "
        "prior expert reviews of similar cases. Use this context to make a more "
        "confident classification.\n\n"
        "Options: {evaluation_options}"
    ),
    reeval_human_prompt=(
        "Customer message: {query}\n"
        "Agent response: {response}\n\n"
        "Context from prior expert reviews:\n{memories}\n\n"
        "Based on the interaction and expert review context, classify the agent's "
        "policy adherence. Choose from: compliant or non_compliant."
    ),
)

# Initialize Casework with the custom evaluator
session = casework.init(
    project_name="hitl-demo",
    run_name="feedback-loop-demo",
    evaluators=["correctness", policy_evaluator],
)

OpenAIInstrumentor().instrument()
client = OpenAI()

borderline_interactions = [
    {
        "system": "You are a bank customer service agent. Follow company policy strictly.",
        "user": "Can I get a higher credit limit? I've been a customer for 15 years.",
    },
    {
        "system": "You are a bank customer service agent. Follow company policy strictly.",
        "user": "I want to transfer $50,000 internationally. Can you process that now?",
    },
    {
        "system": "You are a bank customer service agent. Follow company policy strictly.",
        "user": "My financial advisor told me this account has guaranteed returns. Is that right?",
    },
]

for interaction in borderline_interactions:
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": interaction["system"]},
            {"role": "user", "content": interaction["user"]},
        ],
        temperature=0.7,
    )
    answer = response.choices[0].message.content or ""
    print(f"Q: {interaction['user']}")
    print(f"A: {answer[:120]}...\n")
    session.flush()  # added: wait until Casework has evaluated it

# 4. Retrieve pending HITL reviews ---------------------------------------------------------------------------
CASEWORK_BASE_URL = os.environ["CASEWORK_BASE_URL"]
CASEWORK_API_KEY = os.environ["CASEWORK_API_KEY"]

headers = {
    "x-api-key": CASEWORK_API_KEY,
    "Content-Type": "application/json",
}

# List pending HITL reviews for this project (added: of this evaluator only; others have other options)
response = httpx.get(
    f"{CASEWORK_BASE_URL}/api/v1/hitl/reviews",
    headers=headers,
    params={
        "project_id": session.project_id,
        "status": "pending",
        "evaluator_type": policy_evaluator.name,
    },
)
response.raise_for_status()
reviews = response.json()["reviews"]
print(f"Pending reviews: {len(reviews)}\n")
for review in reviews:
    confidence = "none" if review["confidence"] is None else f"{review['confidence']:.2f}"
    print(f"Review ID: {review['id']}")
    print(f"  Evaluator: {review['evaluator_type']}")
    print(f"  Query: {review['query'][:80]}...")
    print(f"  Response: {review['response'][:80]}...")
    print(f"  Initial classification: {review['classification']} (ambiguous)")
    print(f"  Confidence: {confidence}")
    print()


def review_about(words: str) -> dict | None:
    """The pending review whose customer message mentions ``words`` (added: not the list's first or second;
    on a second run memory may have decided it already)."""
    return next((r for r in reviews if words in r["query"].lower()), None)


def submitted(reply: httpx.Response) -> str:
    """The decision's status, or the server's reason for refusing it (added)."""
    if reply.is_error:
        raise SystemExit(f"Feedback refused ({reply.status_code}): {reply.json()['error']['message']}")
    return reply.json()["status"]


# 5. Submit expert feedback ------------------------------------------------------------------------------------
credit = review_about("credit limit")
if credit is not None:
    feedback_1 = httpx.post(
        f"{CASEWORK_BASE_URL}/api/v1/hitl/reviews/{credit['id']}/feedback",
        headers=headers,
        json={
            "classification": "compliant",
            "reasoning": (
                "The agent correctly offered to review the credit limit request and "
                "referenced the customer's account history. However, the agent should "
                "have disclosed that a credit limit increase triggers a hard credit "
                "inquiry. Mark as compliant with a note about the missing disclosure — "
                "this is a coaching opportunity, not a policy violation."
            ),
            "reviewer": "compliance@bank.example",
            "tags": ["credit-limit", "disclosure-gap", "coaching"],
        },
    )
    print(f"Feedback submitted: {submitted(feedback_1)}")

guaranteed = review_about("guaranteed returns")
if guaranteed is not None:
    feedback_2 = httpx.post(
        f"{CASEWORK_BASE_URL}/api/v1/hitl/reviews/{guaranteed['id']}/feedback",
        headers=headers,
        json={
            "classification": "non_compliant",
            "reasoning": (
                "The customer referenced 'guaranteed returns' from their financial "
                "advisor. The agent should have immediately corrected this — no "
                "investment product has guaranteed returns, and failing to address "
                "this creates regulatory risk under SEC/FINRA suitability rules. "
                "The agent's response was evasive rather than corrective."
            ),
            "reviewer": "compliance@bank.example",
            "tags": ["guaranteed-returns", "suitability", "regulatory-risk"],
        },
    )
    print(f"Feedback submitted: {submitted(feedback_2)}")

# 7. Verify the feedback loop --------------------------------------------------------------------------------
response = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[
        {"role": "system", "content": "You are a bank customer service agent."},
        {
            "role": "user",
            "content": "My broker promised me guaranteed returns on this product. Can you confirm?",
        },
    ],
    temperature=0.7,
)
print(f"Response: {response.choices[0].message.content}")
session.flush()  # added: wait until Casework has evaluated it

response = httpx.get(
    f"{CASEWORK_BASE_URL}/api/v1/hitl/reviews",
    headers=headers,
    params={
        "project_id": session.project_id,
        "status": "pending",
        "evaluator_type": policy_evaluator.name,
    },
)
pending = response.json()["reviews"]
print(f"Pending reviews after feedback: {len(pending)}")

# 8. List controls (evaluation memory) -----------------------------------------------------------------------
response = httpx.get(
    f"{CASEWORK_BASE_URL}/api/v1/controls",
    headers=headers,
    params={"project_id": session.project_id},
)
controls = response.json()["controls"]
print(f"Total controls: {len(controls)}\n")
for control in controls:
    print(f"Control ID: {control['id']}")
    print(f"  Evaluator: {control['evaluator_type']}")
    print(f"  Classification: {control['classification']}")
    print(f"  Reasoning: {control['reasoning'][:100]}...")
    print(f"  Tags: {control['tags']}")
    print(f"  Created: {control['created_at']}")
    print(f"  Reviewer: {control['reviewer']}")
    print()

session.shutdown()
