"""Repository root: load lamplighter's pytest plugin (options, markers, stack, report)."""

pytest_plugins = ("fixtures.plugin",)
