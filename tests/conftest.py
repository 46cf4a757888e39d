"""Fixtures shared by several test modules."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture
def pynative() -> Iterator[None]:
    """Run the test in PyNative mode on CPU (another module may have left graph mode set), then
    restore the previous mode. Modules that need it for every test use
    ``pytestmark = pytest.mark.usefixtures("pynative")``."""
    import mindspore as ms

    ms.set_device("CPU")
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=previous)
