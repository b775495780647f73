"""Request and reply bodies, one module per resource: ``XCreate`` in, ``XPublic`` out."""
