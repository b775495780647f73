"""Evaluation memory: retrieving the controls relevant to an interaction and writing them into {memories}."""
