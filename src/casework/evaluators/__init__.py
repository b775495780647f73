"""Evaluators: definitions (built-in and custom), prompt formatting, the LLM judge, and the precedent judge."""
