"""Casework: self-hosted human-in-the-loop LLM evaluation with evaluation memory.

The SDK's public face::

    import casework
    session = casework.init(project_name="hitl-demo", run_name="run-1",
                            evaluators=["correctness", casework.Evaluators.custom(...)])
    # ...instrument your LLM client (OpenInference); its calls are traced and evaluated on the server
    client = casework.Client()              # the REST API: CASEWORK_API_KEY, CASEWORK_BASE_URL
"""

from casework import errors
from casework.sdk.client import AsyncClient, Client
from casework.sdk.evaluators import CustomEvaluator, Evaluators
from casework.sdk.session import Session, init

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "CustomEvaluator",
    "Evaluators",
    "Session",
    "__version__",
    "errors",
    "init",
]
