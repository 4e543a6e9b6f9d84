"""pytest-timeout bounds test bodies, never the session fixtures that install a stack."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

SUITE = '''
import time
import pytest

@pytest.fixture(scope="session")
def slow_install():
    time.sleep(2.5)  # longer than the timeout: an install or a load run
    return "installed"

def test_uses_the_install(slow_install):
    assert slow_install == "installed"

def test_that_hangs():
    time.sleep(5)
'''


def test_a_slow_session_fixture_survives_and_a_hanging_test_does_not(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\ntimeout = 1\ntimeout_func_only = true\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_that_hangs*Timeout*"])


def test_the_project_config_keeps_fixtures_out_of_the_timeout(
        pytestconfig: pytest.Config) -> None:
    assert pytestconfig.getini("timeout_func_only") is True
