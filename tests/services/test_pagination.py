"""Cursors are client input: property tests (hypothesis) that any string is either a key of the right types or
an InvalidCursor, never anything a database would choke on, and that every key survives the round trip."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from casework.errors import InvalidCursor
from casework.services.pagination import decode_cursor, encode_cursor
from casework.text import text_problem

# Every key shape the API pages by: (time, id), (priority, time, id), (id number,).
SHAPES = [(datetime, str), (int, datetime, str), (int,)]

aware_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
).filter(lambda t: t.utcoffset() is not None)
ids = st.text(max_size=60).filter(lambda value: text_problem(value) is None)
integers = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
PART = {datetime: aware_times, str: ids, int: integers}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


# Parts that look like a key's: times with or without a zone, at the edges of the calendar, ids, numbers.
plausible_parts = (
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(datetime.isoformat)
    | st.datetimes(timezones=st.timezones()).map(datetime.isoformat)
    | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2020-01-01"])
    | st.text(max_size=300)
    | st.integers()
    | st.floats()
    | st.booleans()
    | json_values
)


def as_cursor(raw: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def assert_well_typed(key: tuple[Any, ...], shape: tuple[type, ...]) -> None:
    assert len(key) == len(shape)
    for part, kind in zip(key, shape, strict=True):
        if kind is datetime:
            assert isinstance(part, datetime) and part.utcoffset() == timedelta(0)
        elif kind is int:
            assert type(part) is int and abs(part) < 2**63
        else:
            assert isinstance(part, str) and text_problem(part) is None and len(part) <= 200


@settings(max_examples=200, deadline=None)
@given(data=st.data(), shape=st.sampled_from(SHAPES))
def test_every_key_survives_the_round_trip(data: st.DataObject, shape: tuple[type, ...]) -> None:
    key = tuple(data.draw(PART[kind]) for kind in shape)
    decoded = decode_cursor(encode_cursor(*key), types=shape)
    assert_well_typed(decoded, shape)
    # The same instant (compared in UTC: a local time in a zone's fold is never equal to any other zone's).
    assert decoded == tuple(p.astimezone(timezone.utc) if isinstance(p, datetime) else p for p in key)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), shape=st.sampled_from(SHAPES))
def test_any_cursor_is_a_well_typed_key_or_invalid(data: st.DataObject, shape: tuple[type, ...]) -> None:
    cursor = data.draw(
        st.text(max_size=200)
        | json_values.map(as_cursor)
        | st.lists(plausible_parts, min_size=len(shape), max_size=len(shape)).map(as_cursor)
    )
    try:
        key = decode_cursor(cursor, types=shape)
    except InvalidCursor as error:
        assert error.status_code == 422
        json.dumps(error.to_dict()).encode()  # the error itself can be written back
        return
    assert_well_typed(key, shape)


def test_the_cursors_the_issue_names_are_invalid() -> None:
    for raw in (
        ["2020-01-01", {}],  # a time without a zone, an object for an id
        ["2020-01-01T00:00:00+00:00", "a\u0000b"],
        ["0001-01-01T00:00:00+14:00", "ctl_1"],  # year 0 in UTC
        [True, "2020-01-01T00:00:00+00:00", "rev_1"],
        [1e400, "2020-01-01T00:00:00+00:00", "rev_1"],
    ):
        shape = SHAPES[1] if len(raw) == 3 else SHAPES[0]
        try:
            decode_cursor(as_cursor(raw), types=shape)
        except InvalidCursor:
            continue
        raise AssertionError(f"{raw} was accepted")
    deep = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    try:
        decode_cursor(deep, types=SHAPES[0])
    except InvalidCursor:
        pass
    else:
        raise AssertionError("a deeply nested cursor was accepted")


def test_times_keep_their_instant_in_utc() -> None:
    when = datetime(2026, 3, 27, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    (decoded,) = decode_cursor(encode_cursor(when), types=(datetime,))
    assert decoded == when and decoded.tzinfo == timezone.utc
