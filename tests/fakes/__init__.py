"""Local fakes of the tools' APIs, over real HTTP: each checks what the real one checks (authentication, required
fields, the shape of what is sent) and records every request, so tests assert what the tool would have seen."""
