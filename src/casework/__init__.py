"""Casework: self-hosted human-in-the-loop LLM evaluation with evaluation memory."""

__version__ = "0.1.0"

__all__ = ["__version__"]
