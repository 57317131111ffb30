"""Specifications are immutable and validated at construction."""

from __future__ import annotations

import dataclasses

import pytest

import bayesfmm as bf


def test_standard_syntax():
    model = bf.FMM("thickness ~ 1", family="regress", k=3)
    assert model.k == 3 and not model.hybrid
    assert model.components[0].family_name == "gaussian"
    assert model.responses == ("thickness",)
    assert model.class_components(2) == model.components
    assert model.class_lcprob(0) is None  # base class


def test_hybrid_syntax_one_component_per_class():
    model = bf.FMM([
        bf.Component("y ~ x", family="gaussian"),
        bf.Component("y ~ 1", family="lognormal", lcprob="~ z"),
    ])
    assert model.hybrid and model.k == 2
    assert model.class_components(1)[0].family_name == "lognormal"
    assert model.class_lcprob(1) == "~ z"
    assert model.class_lcprob(0) is None


def test_list_with_k_puts_every_component_in_every_class():
    model = bf.FMM([bf.Component("y1 ~ x"), bf.Component("y2 ~ 1", family="lognormal")], k=3)
    assert not model.hybrid and model.k == 3
    assert len(model.class_components(2)) == 2
    assert model.responses == ("y1", "y2")


def test_specs_are_frozen():
    model = bf.FMM("y ~ 1", k=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.k = 3
    comp = bf.Component("y ~ x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        comp.formula = "y ~ 1"
    with pytest.raises(TypeError):
        comp.options["value"] = 1


def test_family_options_go_to_components_in_hybrid_syntax():
    with pytest.raises(bf.SpecificationError, match="give family and its options to each Component"):
        bf.FMM([bf.Component("y ~ 1")], family="gaussian")


def test_repr_is_informative():
    assert "lognormal" in repr(bf.Component("y ~ x", family="lognormal", lcprob="~ z"))
