"""`shared.runtime.tune_collector`: the youngest generation's threshold comes from the settings."""

import gc
from collections.abc import Iterator

import pytest

from shared.runtime import tune_collector
from shared.settings import Settings


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_threshold_is_set_and_the_older_generations_kept(settings: Settings) -> None:
    gc.set_threshold(700, 11, 12)
    tune_collector(settings.model_copy(update={"gc_young_threshold": 25_000}))
    assert gc.get_threshold() == (25_000, 11, 12)


def test_zero_keeps_what_python_has(settings: Settings) -> None:
    gc.set_threshold(700, 11, 12)
    tune_collector(settings.model_copy(update={"gc_young_threshold": 0}))
    assert gc.get_threshold() == (700, 11, 12)
