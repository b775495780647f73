"""Casework: self-hosted human-in-the-loop LLM evaluation with evaluation memory.

The SDK's public face::

    import casework
    client = casework.Client()              # CASEWORK_API_KEY, CASEWORK_BASE_URL
    policy = casework.Evaluators.custom(...)  # or built-ins by name: "correctness", "hallucination", ...
"""

from casework import errors
from casework.sdk.client import Client
from casework.sdk.evaluators import CustomEvaluator, Evaluators

__version__ = "0.1.0"

__all__ = ["Client", "CustomEvaluator", "Evaluators", "__version__", "errors"]
