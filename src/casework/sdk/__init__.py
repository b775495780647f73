"""The Python SDK: a typed client for the Casework API."""
