"""Test support shared across the harness's own test folders (``tests.support.<module>``)."""

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"  # the test data the repository carries
