"""Test support shared across the harness's own test folders (``tests.support.<module>``)."""
