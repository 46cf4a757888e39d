"""Fixtures shared by several test modules."""
from __future__ import annotations

import os
from typing import Iterator, List

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Every test process runs MindSpore on CPU. Chosen here, before any test runs a kernel: once a
    kernel has run, ``mindspore.set_device`` raises, so modules that call it themselves would
    otherwise pass or fail depending on which test file a process ran first."""
    import mindspore as ms

    ms.set_device("CPU")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (VIDEO_ZOO_RUN_SLOW=1 does the same)")


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Tests marked ``slow`` (whole training runs, several msrun jobs, full-size exports) are
    skipped unless asked for: the default run, and CI, stay within their time budget."""
    if config.getoption("--run-slow") or os.environ.get("VIDEO_ZOO_RUN_SLOW", "") not in ("", "0"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or VIDEO_ZOO_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pynative() -> Iterator[None]:
    """Run the test in PyNative mode on CPU (another module may have left graph mode set), then
    restore the previous mode. Modules that need it for every test use
    ``pytestmark = pytest.mark.usefixtures("pynative")``."""
    import mindspore as ms

    try:
        ms.set_device("CPU")
    except RuntimeError:  # the runtime already runs in this process (an earlier test started it)
        assert ms.get_context("device_target") == "CPU"
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=previous)
