"""Parameter names and the ``[class]equation:term`` grammar of constraints and tests.

Parameters are named as ``[class]term``, ``[class]equation:term`` (needed when a class has
several responses with the same term) and ``[class]Class:term`` for the class model
(multinomial logit; the base class has none). ``_cons`` is accepted for ``Intercept``.
A bare ``[class]term`` looks in the class's response equations first, then in its class
equation, so ``[2]Intercept`` is the intercept of class 2's response and
``[2]Class:Intercept`` its logit. In a 1-class model the ``[1]`` may be left out.

Everything here works on a parameter layout: any object with ``index`` (the
``(class, equation, term)`` MultiIndex), ``size``, ``k`` and ``base`` (the 0-based base
class), which :class:`bayesfmm.params.ParamLayout` provides. So the constraints of a model
(:mod:`bayesfmm.constraints`), which are parsed before the layout is final, and the tests of
a fit (:mod:`bayesfmm.inference`) share one grammar.
"""

from __future__ import annotations

import difflib
import re

import numpy as np

from bayesfmm.errors import SpecificationError

__all__ = ["CLASS_EQUATION", "param_label", "parameter_names", "parse_constraints", "describe_equation"]

CLASS_EQUATION = "Class"
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def param_label(key: tuple) -> str:
    """``[class]equation:term`` of one ``(class, equation, term)`` key.

    Examples
    --------
    >>> param_label((2, "y", "x1"))
    '[2]y:x1'
    """
    return f"[{key[0]}]{key[1]}:{key[2]}"


def parameter_names(layout) -> list[str]:
    """Every parameter of ``layout`` as ``[class]equation:term``, in its order."""
    return [param_label(key) for key in layout.index]


def _read_name(text: str, i: int) -> int:
    """End of a term name starting at ``i``: stops at an operator or a space outside
    brackets, so ``Treatment[T.b]``, ``np.log(x)`` and ``I(x - 1)`` are single names."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and (ch in "+-*/=" or ch.isspace()):
            break
        i += 1
    return i


def _tokens(text: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "+-*/=":
            out.append(("op", ch))
            i += 1
        elif ch == "[":
            close = text.find("]", i)
            if close < 0:
                raise SpecificationError(f"unclosed '[' in {text!r}: write [class]term, e.g. [2]x1")
            end = _read_name(text, close + 1)
            if end == close + 1:
                raise SpecificationError(f"no term after {text[i:close + 1]!r} in {text!r}: write [class]term")
            out.append(("name", (text[i + 1 : close].strip(), text[close + 1 : end])))
            i = end
        elif ch.isdigit() or ch == ".":
            match = _NUMBER.match(text, i)
            if not match:
                raise SpecificationError(f"cannot read a number at {text[i:]!r} in {text!r}")
            out.append(("num", float(match.group(0))))
            i = match.end()
        elif ch.isalpha() or ch == "_":
            end = _read_name(text, i)
            out.append(("name", (None, text[i:end])))
            i = end
        else:
            raise SpecificationError(f"unexpected {ch!r} in {text!r}")
    return out


def _resolve(layout, class_text: str | None, rest: str) -> int:
    """Position of the parameter ``[class_text]rest`` in the layout."""
    index = list(layout.index)
    names = [param_label(key) for key in index]
    written = f"[{class_text}]{rest}" if class_text is not None else rest
    if class_text is None:
        if layout.k != 1:
            raise SpecificationError(f"{rest!r}: name the class, e.g. [1]{rest} (the model has {layout.k} classes)")
        class_ = 1
    else:
        text = class_text[:-6] if class_text.endswith(".Class") else class_text
        if not text.isdigit() or not 1 <= int(text) <= layout.k:
            raise SpecificationError(f"{written!r}: the class in [ ] must be a number from 1 to {layout.k}")
        class_ = int(text)
    equations = list(dict.fromkeys(key[1] for key in index if key[0] == class_))
    equation, term = None, rest
    if ":" in rest:
        head, tail = rest.split(":", 1)
        if head in equations or head == CLASS_EQUATION:
            equation, term = head, tail
    term = "Intercept" if term == "_cons" else term
    positions = {key: i for i, key in enumerate(index)}
    if equation is not None:
        found = [positions[(class_, equation, term)]] if (class_, equation, term) in positions else []
    else:
        responses = [e for e in equations if e != CLASS_EQUATION]
        found = [positions[(class_, e, term)] for e in responses if (class_, e, term) in positions]
        if len(found) > 1:
            options = " or ".join(f"[{class_}]{e}:{term}" for e in responses if (class_, e, term) in positions)
            raise SpecificationError(f"{written!r} is ambiguous: write {options}")
        if not found and (class_, CLASS_EQUATION, term) in positions:
            found = [positions[(class_, CLASS_EQUATION, term)]]
    if found:
        return found[0]
    hint = ""
    if equation == CLASS_EQUATION and class_ == layout.base + 1:
        hint = f" (class {class_} is the base class: its logit is fixed at 0)"
    target = f"[{class_}]{equation}:{term}" if equation else f"[{class_}]{term}"
    short = [n.split("]", 1)[0] + "]" + n.split(":", 1)[1] for n in names]
    close = difflib.get_close_matches(target, names + short, n=4, cutoff=0.5)
    close = list(dict.fromkeys(close))
    suggestion = f"; close matches: {', '.join(close)}" if close else f"; parameters: {', '.join(names[:12])}"
    raise SpecificationError(f"unknown parameter {written!r}{hint}{suggestion}")


def _side(layout, tokens: list, text: str) -> tuple[np.ndarray, float]:
    """``a . b + const`` of one side of an equation."""
    a = np.zeros(layout.size)
    const = 0.0
    i = 0
    if not tokens:
        raise SpecificationError(f"an empty side in {text!r}")
    while i < len(tokens):
        sign = 1.0
        while i < len(tokens) and tokens[i][0] == "op" and tokens[i][1] in "+-":
            sign = -sign if tokens[i][1] == "-" else sign
            i += 1
        coef, position, divide = sign, None, False
        expect_factor = True
        while i < len(tokens):
            kind, value = tokens[i]
            if expect_factor:
                if kind == "num":
                    coef = coef / value if divide else coef * value
                elif kind == "name":
                    if position is not None or divide:
                        raise SpecificationError(f"{text!r} is not linear in the parameters")
                    position = _resolve(layout, *value)
                else:
                    raise SpecificationError(f"unexpected {value!r} in {text!r}")
                expect_factor = False
                i += 1
            elif kind == "op" and value in "*/":
                divide = value == "/"
                expect_factor = True
                i += 1
            elif kind == "op" and value in "+-":
                break
            else:
                shown = value if kind == "op" else (f"[{value[0]}]{value[1]}" if kind == "name" else value)
                raise SpecificationError(f"expected an operator before {shown!r} in {text!r}")
        if expect_factor:
            raise SpecificationError(f"{text!r} ends with an operator")
        if position is None:
            const += coef
        else:
            a[position] += coef
    return a, const


def parse_constraints(layout, expression: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Parse ``"[1]x1 = [2]x1"`` (or ``"lhs = mid = rhs"``) into ``R b = r``.

    Without ``=`` the expression is set equal to 0. Returns ``(R, r, had_equals)``.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise SpecificationError(f"a hypothesis must be a non-empty string such as '[1]x1 = [2]x1', got {expression!r}")
    tokens = _tokens(expression)
    sides: list[list] = [[]]
    for token in tokens:
        if token == ("op", "="):
            sides.append([])
        else:
            sides[-1].append(token)
    parsed = [_side(layout, side, expression) for side in sides]
    if len(parsed) == 1:
        a, const = parsed[0]
        return a[None, :], np.array([-const]), False
    rows, rhs = [], []
    for (a1, c1), (a2, c2) in zip(parsed[:-1], parsed[1:]):
        rows.append(a1 - a2)
        rhs.append(c2 - c1)
    return np.array(rows), np.array(rhs), True


def describe_equation(layout, row: np.ndarray, rhs: float) -> str:
    """``R b = r`` row written with parameter names: ``[2]y:x1 - [1]y:x1 = 0``."""
    names = [param_label(key) for key in layout.index]
    parts = []
    for i in np.flatnonzero(row):
        coef = row[i]
        sign = "-" if coef < 0 else "+"
        size = "" if abs(coef) == 1 else f"{abs(coef):g}*"
        parts.append(f"{sign} {size}{names[i]}")
    text = " ".join(parts).lstrip("+ ")
    if text.startswith("- "):
        text = "-" + text[2:]
    return f"{text} = {rhs:g}"
