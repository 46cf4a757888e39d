"""``python -m src.tools.bench model|infer|layers|loader [options]`` (see ``src/tools/bench/__init__.py``)."""
import sys

from ...cli import run_cli
from . import main

sys.exit(run_cli(main))
