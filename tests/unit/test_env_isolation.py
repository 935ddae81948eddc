"""Tests do not leak environment variables into later tests.

Seen in the full suite: a test ran `alpha users set-password` in this process with a .env holding ALPHA_DEMO=1; the
CLI loaded it into os.environ, monkeypatch did not restore what it had not set itself, and a later test's subprocess
ran in demo mode and failed ("no console users yet ... demo_users.yaml"). tests/conftest.py now puts os.environ
back as it was after every test. These two tests run in order: the first leaks, the second must not see it."""
from __future__ import annotations

import os

LEAK = "ALPHA_TEST_LEAK_CHECK"


def test_a_test_that_sets_a_variable_behind_monkeypatchs_back():
    os.environ[LEAK] = "1"
    os.environ["ALPHA_ENV_FILE"] = "/somewhere/else.env"


def test_the_next_test_does_not_see_it():
    assert LEAK not in os.environ
    assert os.environ.get("ALPHA_ENV_FILE") != "/somewhere/else.env"
