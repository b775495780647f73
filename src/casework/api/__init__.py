"""HTTP: parse, authorise, call one service, shape the reply."""
