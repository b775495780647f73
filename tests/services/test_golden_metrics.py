"""The price table of golden-set runs' cost estimates: the setting and a run's own prices are checked alike."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from casework.config import Settings
from casework.errors import ValidationFailed
from casework.services.golden_metrics import cost, validate_prices


def test_the_model_prices_setting_is_json_checked_on_start() -> None:
    table = Settings(model_prices='{"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}').model_price_table
    assert table == {"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}
    assert Settings(model_prices="").model_price_table == {}
    for bad in ("{not json", '{"m": {"prompt": 1}}', '{"m": {"prompt": -1, "completion": 0}}', "[1]"):
        with pytest.raises(ValidationError):
            Settings(model_prices=bad)


def test_cost_is_tokens_at_the_price_per_million_and_unknown_without_either() -> None:
    price = validate_prices({"m": {"prompt": 2, "completion": 8}})["m"]
    assert cost({"prompt_tokens": 1_000, "completion_tokens": 500}, price) == 0.006
    assert cost({"prompt_tokens": None, "completion_tokens": None}, price) is None
    assert cost({"prompt_tokens": 1_000, "completion_tokens": 500}, None) is None
    with pytest.raises(ValidationFailed):
        validate_prices({"m": {"prompt": True, "completion": 1}})
