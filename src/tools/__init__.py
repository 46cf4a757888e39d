"""Command-line tools: ``python -m src.tools.<name> --help``."""
