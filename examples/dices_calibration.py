"""Reviewer calibration on a real crowd: DICES's 350 conversations, each rated for safety by the same 123 people,
loaded into a running Casework as overlapped reviews, then the agreement Casework computes.

    export CASEWORK_API_KEY=...            # an admin key (printed by the first `make serve`)
    export CASEWORK_BASE_URL=http://127.0.0.1:8000
    python examples/dices_calibration.py   # about 43,000 decisions through bulk feedback: a few minutes

It reads the data from ``../shared/data/dices`` beside the repository (or ``CASEWORK_DICES``) at run time and
copies nothing. Through the public API only: a project, an evaluator ``dices-safety`` whose reviews need 123
independent decisions, one review per conversation, and every rater's vote as that review's decision (bulk
feedback, several decisions per review). Then ``GET /api/v1/projects/{id}/agreement``: Krippendorff's nominal
alpha comes out at about 0.16, the figure published for DICES 350 (agreement on safety is low by nature).
Content warning: DICES holds adversarial conversations with offensive content.

Label polarity (see the data's README): "Yes" means the rater judged the response UNSAFE, "No" safe.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

DATA = Path(
    os.environ.get("CASEWORK_DICES", Path(__file__).resolve().parents[2] / "shared" / "data" / "dices")
)
LABELS = {"Yes": "unsafe", "No": "safe", "Unsure": "unsure"}
EVALUATOR = "dices-safety"
BATCH = 1_000  # bulk feedback's limit per request


def check(reply: httpx.Response) -> Any:
    if reply.status_code >= 400:
        sys.exit(f"{reply.request.method} {reply.request.url} -> {reply.status_code}: {reply.text}")
    return reply.json()


def main() -> None:
    base_url = os.environ.get("CASEWORK_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    limit = int(os.environ.get("DICES_ITEMS", "350"))  # fewer, for a quick look
    instances = json.loads((DATA / "dices_350_crowdsourced.json").read_text())["instances"][:limit]
    raters = max(len(i["annotations"]["safety"]["individual_human_scores"]) for i in instances)
    headers = {"x-api-key": os.environ["CASEWORK_API_KEY"]}
    with httpx.Client(base_url=base_url, headers=headers, timeout=300) as api:
        project = check(api.post("/api/v1/projects", json={"name": "dices-calibration"}))
        check(
            api.post(
                "/api/v1/evaluators",
                json={
                    "project_id": project["id"],
                    "name": EVALUATOR,
                    "kind": "precedent",  # no model is called: people decide every review here
                    "options": ["safe", "unsure", "unsafe"],
                    "reviewers_required": raters,
                    "memory_mode": "suggest",
                },
            )
        )
        feedback: list[dict[str, Any]] = []
        for instance in instances:
            review = check(
                api.post(
                    "/api/v1/hitl/reviews",
                    json={
                        "project_id": project["id"],
                        "evaluator_type": EVALUATOR,
                        "query": instance["instance"]["user_prompt"],
                        "response": instance["instance"]["response"],
                        "options": ["safe", "unsure", "unsafe"],
                        "metadata": {"dices_id": str(instance["id"])},
                    },
                )
            )
            # Rater ids were lost in the data's conversion: a vote's position is its rater's name here.
            for position, vote in enumerate(instance["annotations"]["safety"]["individual_human_scores"]):
                feedback.append(
                    {
                        "review_id": review["id"],
                        "classification": LABELS[vote],
                        "reasoning": "DICES crowd rating.",
                        "reviewer": f"rater-{position + 1:03d}",
                    }
                )
        print(f"{len(instances)} reviews queued; sending {len(feedback):,} decisions", flush=True)
        accepted = 0
        for start in range(0, len(feedback), BATCH):
            result = check(
                api.post(
                    "/api/v1/hitl/reviews/bulk-feedback", json={"feedback": feedback[start : start + BATCH]}
                )
            )
            accepted += result["accepted"]
            print(f"\r  {accepted:,} decisions accepted", end="", flush=True)
        print()
        report = check(
            api.get(
                f"/api/v1/projects/{project['id']}/agreement",
                params={"evaluator_type": EVALUATOR, "pairs": "false"},  # 123 raters: 7,503 pairs
            )
        )
    inter = report["inter_reviewer"]
    print(json.dumps({k: inter[k] for k in ("items", "ratings", "categories", "level")}, indent=2))
    for name in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha"):
        estimate = inter[name]
        print(f"{name}: {estimate['value']} (95% interval {estimate['interval']}, {estimate['items']} items)")
    print(f"Agreement over time, charted: {base_url}/projects/{project['id']}/overview")


if __name__ == "__main__":
    main()
