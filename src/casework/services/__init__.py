"""Use cases. Each function takes the database session first and keyword arguments after; no web framework here."""
