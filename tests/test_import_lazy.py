"""``import bayesfmm`` loads what a fit needs; the rest of the public names load on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import bayesfmm as bf

LAZY_MODULES = ["bayesfmm.selection", "bayesfmm.bootstrap", "bayesfmm.parallel", "bayesfmm.bayes.sbc",
                "bayesfmm.stata", "bayesfmm.plotting", "bayesfmm.datasets"]


def test_every_public_name_resolves():
    missing = [name for name in bf.__all__ if not hasattr(bf, name)]
    assert missing == []
    assert set(bf.__all__) <= set(dir(bf))


def test_lazy_names_are_the_objects_of_their_modules():
    from bayesfmm.bootstrap import bootstrap_lrt
    from bayesfmm.selection import select
    from bayesfmm.stata import from_stata

    assert bf.select is select and bf.bootstrap_lrt is bootstrap_lrt and bf.from_stata is from_stata


def test_unknown_attribute_raises_attribute_error():
    try:
        bf.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:  # pragma: no cover
        raise AssertionError("bf.no_such_name did not raise")


def test_import_does_not_load_the_tools_a_fit_does_not_need():
    code = ("import json, sys, bayesfmm; "
            f"print(json.dumps([m for m in {LAZY_MODULES!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
