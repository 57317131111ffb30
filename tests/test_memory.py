"""The allocator setting a fit makes (bayesfmm.memory): on glibc, once, and off on request."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from bayesfmm.memory import keep_freed_pages; print(keep_freed_pages(), keep_freed_pages())"


def _run(env_value: str | None) -> list[str]:
    env = dict(os.environ)
    env.pop("BAYESFMM_KEEP_PAGES", None)
    if env_value is not None:
        env["BAYESFMM_KEEP_PAGES"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt only")
def test_thresholds_are_set_once_on_glibc():
    assert _run(None) == ["True", "True"]


def test_environment_turns_it_off():
    assert _run("0") == ["False", "False"]


@pytest.mark.parametrize("value", ["off", "false", "2"])
def test_a_wrong_value_names_the_variable(value):
    env = dict(os.environ, BAYESFMM_KEEP_PAGES=value)
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "SpecificationError" in out.stderr
    assert f"BAYESFMM_KEEP_PAGES={value!r}: expected 0 (off) or 1 (on)" in out.stderr
