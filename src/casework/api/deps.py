"""Request dependencies: the unit of work (one transaction) and the caller's identity.

Endpoints are ``async``; each runs its one service call, and the commit, in a single worker-thread hop through
:class:`UnitOfWork`. One hop per request instead of one per sync dependency keeps latency low under load.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, Request, Response, params
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from casework.db.engine import Database
from casework.errors import Unauthenticated, ValidationFailed
from casework.services.auth import Principal, authenticate, hash_secret
from casework.text import clean_text, text_problem

P = ParamSpec("P")
T = TypeVar("T")

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_END = object()


@dataclass(frozen=True)
class Reply:
    """What a write answers: a body and its status."""

    body: BaseModel
    status_code: int = 200


def created_or_existing(public: Callable[[Any], BaseModel]) -> Callable[[tuple[Any, bool]], Reply]:
    """The reply of a get-or-create service's ``(object, created)``: 201 when it is new, 200 when it existed."""
    return lambda result: Reply(public(result[0]), 201 if result[1] else 200)


class UnitOfWork:
    """Runs one service function in one transaction, off the event loop: committed when it returns, rolled
    back when it raises, and before the response is sent either way."""

    def __init__(self, database: Database, *, write: bool, limiter: CapacityLimiter | None = None) -> None:
        self.database = database
        self.write = write
        self.limiter = limiter
        self._used = False

    async def __call__(
        self, function: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        self._claim()
        return await to_thread.run_sync(lambda: self._run(function, *args, **kwargs), limiter=self.limiter)

    async def reply(
        self,
        shape: Callable[[T], Reply],
        function: Callable[Concatenate[Session, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> tuple[T, Response]:
        """For a write: ``function``'s result, and the reply ``shape`` makes of it, serialised before the commit.
        A reply that cannot be written then rolls the work back, and the 500 changes nothing, instead of
        answering an error for work that stays done (and may break every later read of it)."""
        self._claim()

        def run(session: Session) -> tuple[T, Response]:
            result = function(session, *args, **kwargs)
            reply = shape(result)
            body = reply.body.model_dump_json().encode()
            return result, Response(body, status_code=reply.status_code, media_type="application/json")

        return await to_thread.run_sync(lambda: self._run(run), limiter=self.limiter)

    async def stream(
        self, function: Callable[Concatenate[Session, P], Iterator[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[T]:
        """For a streamed reply: call ``function`` now (so its errors are ordinary error replies), then pull its
        items one thread hop at a time, all in one read transaction that ends with the stream."""
        self._claim()
        session = self.database.session(write=False)
        try:
            items = await to_thread.run_sync(lambda: function(session, *args, **kwargs), limiter=self.limiter)
        except BaseException:
            await to_thread.run_sync(session.close, limiter=self.limiter)
            raise
        return self._pull(session, items)

    async def _pull(self, session: Session, items: Iterator[T]) -> AsyncIterator[T]:
        try:
            while True:
                item: T | object = await to_thread.run_sync(next, items, _END, limiter=self.limiter)
                if item is _END:
                    return
                yield item  # type: ignore[misc]  # not _END, so a T
        finally:
            await to_thread.run_sync(session.close, limiter=self.limiter)

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError(
                "one request, one transaction: call one service function that does the whole job"
            )
        self._used = True

    def _run(self, function: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self.database.transaction(write=self.write) as session:
            return function(session, *args, **kwargs)


async def storable_text(request: Request) -> None:
    """Path ids, query parameters and form fields obey casework.text's rule (JSON bodies: their schemas do):
    a NUL is refused with 422 here on both databases, instead of reaching PostgreSQL, which cannot store it."""
    route = request.scope.get("route")
    declared = _query_names(route)
    fields: list[tuple[str, str, Any]] = [("path", k, v) for k, v in request.path_params.items()]
    fields += [("query", k, v) for k, v in request.query_params.multi_items() if k in declared]
    body_field = getattr(route, "body_field", None)
    if body_field is not None and isinstance(body_field.field_info, params.Form):
        form: FormData = await request.form()  # parsed already for the endpoint; this reads the same copy
        fields += [("body", k, v) for k, v in form.multi_items() if isinstance(v, str)]
    for where, name, value in fields:
        problem = text_problem(name) or (text_problem(value) if isinstance(value, str) else None)
        if problem:
            name = clean_text(name)
            raise ValidationFailed(
                f"{where}.{name}: {problem}.",
                details={"errors": [{"loc": [where, name], "message": problem, "type": "value_error"}]},
            )


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(route: Any) -> frozenset[str]:
    """The query parameters a route reads (its own and its dependencies'): the others it ignores, and so do we."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return frozenset()
    names = _QUERY_NAMES.get(id(dependant))
    if names is None:
        found: set[str] = set()
        pending = [dependant]
        while pending:
            current = pending.pop()
            found.update(field.alias for field in current.query_params)
            pending.extend(current.dependencies)
        names = _QUERY_NAMES[id(dependant)] = frozenset(found)
    return names


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def database_threads(request: Request) -> CapacityLimiter:
    """The threads that run database work (made at start-up). Few on SQLite: its queries are short and
    CPU-bound, and more threads only queue for the GIL (bench/startup.py measured 40 threads at half the
    throughput of 2). More on PostgreSQL, whose queries mostly wait on the network with the GIL released."""
    limiter: CapacityLimiter = request.app.state.database_threads
    return limiter


async def unit_of_work(request: Request) -> UnitOfWork:
    return UnitOfWork(
        get_database(request), write=request.method not in _READ_METHODS, limiter=database_threads(request)
    )


async def write_unit_of_work(request: Request) -> UnitOfWork:
    """For the rare GET that writes (a one-time sign-in link): on SQLite a read transaction cannot safely
    become a write one, so it starts as a writer."""
    return UnitOfWork(get_database(request), write=True, limiter=database_threads(request))


async def read_unit_of_work(request: Request) -> UnitOfWork:
    """A read transaction beside a write request's own: for the page a form comes back to when its write was
    refused (and rolled back)."""
    return UnitOfWork(get_database(request), write=False, limiter=database_threads(request))


Db = Annotated[UnitOfWork, Depends(unit_of_work)]
ReadDb = Annotated[UnitOfWork, Depends(read_unit_of_work)]
WriteDb = Annotated[UnitOfWork, Depends(write_unit_of_work)]


class KeyCache:
    """Recently authenticated keys, for ``ttl_seconds``: most requests then need no key lookup.

    A revoked key stops working on every process within the TTL.
    """

    def __init__(
        self, ttl_seconds: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._entries.pop(key_hash, None)
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if self.ttl_seconds <= 0:
            return
        self._entries[key_hash] = (self._clock() + self.ttl_seconds, principal)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def api_key_from_request(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _lookup(database: Database, secret: str) -> Principal | None:
    with database.transaction(write=False) as session:
        return authenticate(session, secret=secret)


async def current_principal(request: Request) -> Principal:
    secret = api_key_from_request(request)
    if secret is None:
        raise Unauthenticated("Send an API key in the x-api-key header (or Authorization: Bearer <key>).")
    cache: KeyCache = request.app.state.key_cache
    key_hash = hash_secret(secret)
    principal = cache.get(key_hash)
    if principal is None:
        principal = await to_thread.run_sync(
            _lookup, get_database(request), secret, limiter=database_threads(request)
        )
        if principal is None:
            raise Unauthenticated("This API key is not valid, or it was revoked.")
        cache.put(key_hash, principal)
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
