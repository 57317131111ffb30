"""Stata ``fmm`` syntax to :class:`~bayesfmm.FMM` and back: :func:`from_stata`, :func:`to_stata`.

``from_stata`` reads the standard syntax (``fmm 3, lcprob(z): regress y x``) and the hybrid
syntax (``fmm: (pointmass y) (poisson y x, lcprob(z))``, or ``fmm 2: (regress y1)
(poisson y2)`` with several responses per class), with weights (``[fweight=w]``,
``[pweight=w]``, ``[iweight=w]``), Stata's factor-variable notation (``i.g``, ``c.x``,
``a#b``, ``a##b``) and these options:

* **model options** (they define the model): ``lcprob(varlist)``, ``lcinvariant(...)``,
  ``lcbase(#)``; per component ``noconstant``, ``offset()``, ``exposure()``, ``lcprob()``
  (hybrid), ``ll()``/``ul()`` (tobit, truncreg, tpoisson), ``baseoutcome()`` (mlogit),
  ``dispersion()`` (nbreg), ``link()`` (betareg, glm), ``family()`` (glm), ``lbvalue()``
  (pointmass), ``distribution()`` and ``time`` (streg).
* **fit options** (they say how to fit it): ``vce()``, ``startvalues()``, ``draws()``,
  ``seed()``, ``emopts()``, ``iterate()``, ``tolerance()``, ``ltolerance()``,
  ``nrtolerance()``, ``difficult``, ``noestimate``, ``log``/``nolog``. An ``FMM`` holds no
  fit options, so a line with any of them is refused unless ``fit_options=True`` is passed:
  then ``from_stata`` returns ``(model, options)`` with the options as ``model.fit`` takes
  them (``{"vce": "robust"}``).

Anything else (``if``/``in``, ``aweight``, numbered ``constraints()``, ``from()``, ``level()``,
a family or command we do not have, time-series operators) raises
:class:`~bayesfmm.SpecificationError` naming it. ``streg`` components need the survival
time and failure indicator of a ``stset`` line written before the ``fmm`` line.

Examples
--------
>>> import bayesfmm as bf
>>> bf.from_stata("fmm 3, lcprob(z): regress y x")
FMM('y ~ x', family='gaussian', k=3, lcprob='~ z')
>>> bf.to_stata(bf.FMM("y ~ x", family="poisson", k=2))
'fmm 2: poisson y x'
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from bayesfmm.errors import SpecificationError
from bayesfmm.families.registry import _BUILDERS, canonical_name
from bayesfmm.model import FMM
from bayesfmm.spec import Component, ModelSpec

__all__ = ["from_stata", "to_stata", "FIT_OPTIONS"]

# option -> shortest abbreviation Stata accepts (the underlined part of the manual's syntax)
_ABBREV = {
    "lcprob": "lcprob", "lcinvariant": "lcinv", "lcbase": "lcbase", "vce": "vce",
    "startvalues": "startv", "draws": "draws", "seed": "seed", "emopts": "emopts",
    "iterate": "iter", "tolerance": "tol", "ltolerance": "ltol", "nrtolerance": "nrtol",
    "difficult": "dif", "noestimate": "noest", "log": "log", "nolog": "nolog",
    "constraints": "const", "from": "from", "level": "l", "noconstant": "nocons",
    "offset": "offset", "exposure": "exp", "baseoutcome": "b", "dispersion": "disp",
    "link": "l", "family": "f", "lbvalue": "lbvalue", "distribution": "d", "time": "time",
    "ll": "ll", "ul": "ul", "failure": "f",
}
FIT_OPTIONS = ("vce", "startvalues", "draws", "seed", "emopts", "iterate", "tolerance", "ltolerance",
               "nrtolerance", "difficult", "noestimate", "log", "nolog")
_REFUSED = {
    "constraints": "Stata's numbered constraints are not translated: give them to the model by name, "
    "bf.FMM(..., constraints=['[1]x = [2]x'])",
    "from": "from() needs a Stata matrix: pass start values as model.fit(df, from_=series)",
    "level": "level() is a display option: pass alpha= to summary(), conf_int() or lcprob()",
}
_WEIGHTS = {"fweight": "fweight", "fw": "fweight", "frequency": "fweight", "pweight": "pweight",
            "pw": "pweight", "iweight": "iweight", "iw": "iweight"}
# Stata command -> (family, the options it takes)
_COMMANDS = {
    "regress": ("gaussian", ()), "poisson": ("poisson", ()), "nbreg": ("nbinomial", ("dispersion",)),
    "tpoisson": ("tpoisson", ("ll",)), "logit": ("logit", ()), "probit": ("probit", ()),
    "cloglog": ("cloglog", ()), "ologit": ("ologit", ()), "oprobit": ("oprobit", ()),
    "mlogit": ("mlogit", ("baseoutcome",)), "betareg": ("beta", ("link",)),
    "tobit": ("tobit", ("ll", "ul")), "truncreg": ("truncreg", ("ll", "ul")), "intreg": ("intreg", ()),
    "glm": (None, ("family", "link")), "streg": ("streg", ("distribution", "time")),
    "pointmass": ("pointmass", ("lbvalue",)), "ivregress": ("ivregress", ()),
}
# ivregress's endogenous regressors and instruments: "(w1 w2 = z1 z2 z3)"
_IV_GROUP = re.compile(r"\(([^()=]*)=([^()]*)\)")
_COMPONENT_OPTIONS = ("noconstant", "offset", "exposure", "lcprob")
# glm family() -> our family; families whose only link is the one named
_GLM_FAMILIES = {"gaussian": "gaussian", "normal": "gaussian", "bernoulli": "bernoulli", "binomial": "binomial",
                 "poisson": "poisson", "nbinomial": "nbinomial", "gamma": "gamma", "lognormal": "lognormal",
                 "exponential": "exponential", "weibull": "weibull", "loglogistic": "loglogistic", "beta": "beta"}
_FIXED_LINK = {"gaussian": "identity", "poisson": "log", "nbinomial": "log", "lognormal": "identity",
               "exponential": "log", "weibull": "log", "loglogistic": "log"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- scanning ------------------------------------------------------------------------------
def _split_top(text: str, sep: str) -> tuple[str, str | None]:
    """``text`` split at the first ``sep`` outside parentheses and brackets."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            return text[:i], text[i + 1:]
    if depth != 0:
        raise SpecificationError(f"unbalanced parentheses in {text.strip()!r}")
    return text, None


def _groups(text: str) -> list[str]:
    """The parenthesised groups of a hybrid model list: ``(a) (b)`` -> ``['a', 'b']``."""
    out, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                out.append(text[start:i])
            elif depth < 0:
                raise SpecificationError(f"unbalanced parentheses in {text.strip()!r}")
        elif depth == 0 and not ch.isspace():
            raise SpecificationError(
                f"hybrid syntax is a list of parenthesised models, (regress y x) (poisson y x); "
                f"found {text[i:].strip()!r} outside parentheses"
            )
    if depth != 0:
        raise SpecificationError(f"unbalanced parentheses in {text.strip()!r}")
    return out


def _options(text: str | None) -> list[tuple[str, str | None]]:
    """``a(1) b c(x y)`` -> ``[("a", "1"), ("b", None), ("c", "x y")]`` (names unabbreviated)."""
    out: list[tuple[str, str | None]] = []
    pos, text = 0, text or ""
    pattern = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
    while pos < len(text.rstrip()):
        match = pattern.match(text, pos)
        if not match:
            raise SpecificationError(f"cannot read the options at {text[pos:].strip()!r}")
        name, pos = match.group(1), match.end()
        arg = None
        if pos < len(text) and text[pos] == "(":
            depth = 0
            for end in range(pos, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            if depth != 0:
                raise SpecificationError(f"unbalanced parentheses in option {name}{text[pos:]}")
            arg, pos = text[pos + 1:end].strip(), end + 1
        out.append((_full_name(name), arg))
    return out


def _full_name(name: str) -> str:
    low = name.lower()
    for full, short in _ABBREV.items():
        if full.startswith(low) and len(low) >= len(short):
            return full
    return low


def _arg(name: str, arg: str | None) -> str:
    if not arg:
        raise SpecificationError(f"option {name}() needs an argument")
    return arg


def _number(name: str, arg: str | None) -> int | float:
    text = _arg(name, arg)
    try:
        value = float(text)
    except ValueError:
        raise SpecificationError(f"option {name}({text}) needs a number") from None
    return int(value) if value.is_integer() else value


def _number_or_column(name: str, arg: str | None) -> int | float | str:
    text = _arg(name, arg)
    try:
        return _number(name, text)
    except SpecificationError:
        if not _NAME.match(text):
            raise SpecificationError(f"option {name}({text}) needs a number or a variable name") from None
        return text


# -- varlists ------------------------------------------------------------------------------
def _term(token: str) -> str:
    """One Stata varlist element as a formulaic term."""
    if "##" in token:
        return " * ".join(_term(part) for part in token.split("##"))
    if "#" in token:
        return ":".join(_term(part) for part in token.split("#"))
    if token.startswith("i."):
        return f"C({_variable(token[2:], token)})"
    if token.startswith("c."):
        return _variable(token[2:], token)
    return _variable(token, token)


def _variable(name: str, token: str) -> str:
    if _NAME.match(name):
        return name
    if "." in name or "." in token:
        raise SpecificationError(
            f"the operator in {token!r} is not supported: i. and c. factor variables and # / ## "
            "interactions are; for base levels or time-series operators write the formula: bf.FMM('y ~ ...')"
        )
    raise SpecificationError(f"{token!r} is not a variable name (wildcards and ranges need the data: list the variables)")


def _rhs(tokens: list[str], constant: bool = True) -> str:
    terms = [_term(t) for t in tokens]
    if not terms:
        return "1" if constant else "0"
    return " + ".join(terms) + ("" if constant else " - 1")


# -- components ----------------------------------------------------------------------------
def _default(family: str, option: str) -> Any:
    parameter = inspect.signature(_BUILDERS[canonical_name(family)]).parameters.get(option)
    return None if parameter is None else parameter.default


def _glm_family(text: str | None, link: str | None, options: dict[str, Any]) -> str:
    words = _arg("family", text).split()
    name = _GLM_FAMILIES.get(words[0].lower())
    if name is None:
        raise SpecificationError(f"glm family({words[0]}) is not supported; families: {', '.join(sorted(_GLM_FAMILIES))}")
    if name == "binomial" and len(words) > 1:
        options["trials"] = _number_or_column("family(binomial)", words[1])
    elif name == "nbinomial" and len(words) > 1:
        options["dispersion"] = words[1].lower()
    elif len(words) > 1:
        raise SpecificationError(f"glm family({text}): {name} takes no argument")
    if link is not None:
        fixed = _FIXED_LINK.get(name)
        if fixed is not None and link != fixed:
            raise SpecificationError(f"glm family({name}) link({link}) is not supported: {name} has the {fixed} link only")
        if fixed is None and link != _default(name, "link"):
            options["link"] = link
    return name


def _component(text: str, stset: tuple[str, str | None] | None) -> Component:
    body, opts = _split_top(text, ",")
    iv = _IV_GROUP.search(body)
    iv_options: dict[str, Any] = {}
    if iv is not None:  # ivregress y x (w = z1 z2)
        body = body[: iv.start()] + " " + body[iv.end():]
        iv_options = {"endogenous": tuple(iv.group(1).split()), "instruments": tuple(iv.group(2).split())}
    words = body.split()
    if not words:
        raise SpecificationError("an empty component model: write, e.g., regress y x")
    command, variables = words[0].lower(), words[1:]
    if command not in _COMMANDS:
        raise SpecificationError(
            f"component model {words[0]!r} is not supported; supported: {', '.join(sorted(_COMMANDS))}"
        )
    family, takes = _COMMANDS[command]
    given = dict(_options(opts))
    for name in given:
        if name not in takes and name not in _COMPONENT_OPTIONS:
            raise SpecificationError(f"option {name}() is not supported for {command} in a component model")
    options: dict[str, Any] = {}
    link = given.get("link")
    if command == "glm":
        family = _glm_family(given.get("family"), None if link is None else link.lower(), options)
    elif link is not None and link.lower() != _default(family, "link"):
        options["link"] = link.lower()
    for name in ("ll", "ul"):
        if name in given:
            options[name] = _number_or_column(name, given[name])
    if "baseoutcome" in given:
        options["baseoutcome"] = _number_or_column("baseoutcome", given["baseoutcome"])
    if "dispersion" in given:
        options["dispersion"] = _arg("dispersion", given["dispersion"]).lower()
    if "lbvalue" in given:
        options["value"] = _number("lbvalue", given["lbvalue"])
    if iv is not None and command != "ivregress":
        raise SpecificationError(f"({iv.group(0)[1:-1].strip()}) is ivregress syntax: {command} takes no instruments")
    if command == "ivregress":
        if iv is None:
            raise SpecificationError("ivregress needs its endogenous regressors and instruments: ivregress y x (w = z1 z2)")
        options.update(iv_options)
    if command == "streg":
        if stset is None:
            raise SpecificationError("streg needs the survival time: put a line 'stset t, failure(died)' before the fmm line")
        response, failure = stset
        if failure is not None:
            options["failure"] = failure
        if "distribution" in given:
            options["distribution"] = _arg("distribution", given["distribution"]).lower()
        if "time" in given:
            options["metric"] = "aft"
    else:
        if not variables:
            raise SpecificationError(f"{command} needs a dependent variable: {command} y x1 x2")
        response, variables = _variable(variables[0], variables[0]), variables[1:]
        if command == "intreg":
            if not variables:
                raise SpecificationError("intreg needs two dependent variables: intreg lo hi x")
            options["upper"], variables = _variable(variables[0], variables[0]), variables[1:]
    formula = f"{response} ~ {_rhs(variables, 'noconstant' not in given)}"
    lcprob = f"~ {_rhs(_arg('lcprob', given['lcprob']).split())}" if "lcprob" in given else None
    extra = {name: _arg(name, given[name]) for name in ("offset", "exposure") if name in given}
    return Component(formula, family, lcprob=lcprob, **extra, **options)


# -- the fmm line --------------------------------------------------------------------------
def _fit_option(name: str, arg: str | None, out: dict[str, Any]) -> None:
    if name == "vce":
        words = _arg("vce", arg).split()
        out["vce"] = {"cl": "cluster", "clu": "cluster", "r": "robust", "rob": "robust"}.get(words[0], words[0])
        if out["vce"] == "cluster":
            if len(words) != 2:
                raise SpecificationError("vce(cluster) needs one cluster variable: vce(cluster id)")
            out["cluster"] = words[1]
    elif name == "startvalues":
        method, sub = _split_top(_arg(name, arg), ",")
        words = method.split()
        out["startvalues"] = words[0] if len(words) == 1 else tuple(words)
        for key, value in _options(sub):
            _fit_option(key, value, out)
    elif name in ("draws", "seed", "iterate"):
        out[name] = int(_number(name, arg))
    elif name in ("tolerance", "ltolerance", "nrtolerance"):
        out[name] = float(_number(name, arg))
    elif name == "emopts":
        em: dict[str, Any] = {}
        for key, value in _options(arg):
            if key not in ("iterate", "tolerance", "ltolerance"):
                raise SpecificationError(f"emopts({key}) is not supported; emopts takes iterate, tolerance, ltolerance")
            _fit_option(key, value, em)
        out["emopts"] = em
    else:  # difficult, noestimate, log, nolog
        out[{"nolog": "log"}.get(name, name)] = name != "nolog"


def _prefix(text: str) -> tuple[int | None, tuple[str, str] | None, dict[str, Any], dict[str, Any]]:
    """``fmm 3 [pw=w], lcprob(z) vce(robust)`` -> (k, weights, model options, fit options)."""
    head, opts = _split_top(text, ",")
    match = re.match(r"^\s*fmm\b\s*(\d+)?\s*(?:\[\s*(\w+)\s*=\s*(\w+)\s*\])?\s*$", head)
    if not match:
        rest = re.sub(r"^\s*fmm\s*\d*", "", head).strip()
        word = rest.split()[0] if rest.split() else rest
        if word in ("if", "in"):
            raise SpecificationError(f"'{word}' is not supported: select the rows of the data frame before fitting")
        raise SpecificationError(f"cannot read {head.strip()!r}: expected 'fmm [#] [weight] [, options]'")
    k = int(match.group(1)) if match.group(1) else None
    weights = None
    if match.group(2):
        kind = _WEIGHTS.get(match.group(2).lower())
        if kind is None:
            raise SpecificationError(f"weight type {match.group(2)!r} is not supported; use fweight, pweight or iweight")
        weights = (match.group(3), kind)
    model: dict[str, Any] = {}
    fit: dict[str, Any] = {}
    for name, arg in _options(opts):
        if name in _REFUSED:
            raise SpecificationError(f"option {name}() is not supported: {_REFUSED[name]}")
        if name == "lcprob":
            model["lcprob"] = f"~ {_rhs(_arg(name, arg).split())}"
        elif name == "lcinvariant":
            words = _arg(name, arg).split()
            model["lcinvariant"] = words[0] if len(words) == 1 else words
        elif name == "lcbase":
            model["lcbase"] = int(_number(name, arg))
        elif name in FIT_OPTIONS:
            _fit_option(name, arg, fit)
        else:
            raise SpecificationError(f"fmm option {name}() is not supported")
    return k, weights, model, fit


def _stset(line: str) -> tuple[str, str | None]:
    body, opts = _split_top(re.sub(r"^\s*stset\b", "", line), ",")
    words = body.split()
    if len(words) != 1:
        raise SpecificationError(f"stset needs one time variable: stset t, failure(died); got {line.strip()!r}")
    failure = None
    for name, arg in _options(opts):
        if name != "failure":
            raise SpecificationError(f"stset option {name}() is not supported (only failure())")
        failure = _variable(_arg(name, arg).split("==")[0].strip(), arg or "")
    return _variable(words[0], words[0]), failure


def from_stata(command: str, *, fit_options: bool = False) -> FMM | tuple[FMM, dict[str, Any]]:
    """The :class:`~bayesfmm.FMM` that a Stata ``fmm`` command line describes.

    Parameters
    ----------
    command
        An ``fmm`` line in standard syntax (``"fmm 3, lcprob(z): regress y x"``) or hybrid
        syntax (``"fmm: (pointmass y) (poisson y x, lcprob(z))"``). A ``stset t,
        failure(d)`` line may come first (for ``streg`` components); lines are separated by
        newlines.
    fit_options
        Return ``(model, options)``, where ``options`` holds the line's fit options
        (``vce``, ``startvalues``, ...) as ``model.fit`` takes them. Without it a line with
        fit options raises, naming them.

    Returns
    -------
    FMM, or (FMM, dict) with ``fit_options=True``.

    Raises
    ------
    SpecificationError
        Naming any option, command, family or operator not supported.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.from_stata("fmm: (pointmass art) (poisson art fem ment, lcprob(kid5))")
    FMM([Component('art ~ 1', family='pointmass'), Component('art ~ fem + ment', family='poisson', lcprob='~ kid5')])
    >>> bf.from_stata("fmm 2, vce(robust): poisson y x", fit_options=True)[1]
    {'vce': 'robust'}
    """
    if not isinstance(command, str):
        raise SpecificationError(f"from_stata takes a Stata command line (a string), got {type(command).__name__}")
    lines = [line.strip() for line in command.replace(";", "\n").splitlines() if line.strip()]
    stset = None
    while lines and lines[0].startswith("stset"):
        stset = _stset(lines.pop(0))
    if len(lines) != 1 or not re.match(r"^fmm\b", lines[0]):
        raise SpecificationError(f"expected one 'fmm ...: model' line (after an optional stset line), got {command!r}")
    prefix, body = _split_top(lines[0], ":")
    if body is None or not body.strip():
        raise SpecificationError("an fmm line needs a colon and a model: fmm 3: regress y x")
    k, weights, structure, fit = _prefix(prefix)
    if fit and not fit_options:
        names = ", ".join(sorted({"cluster": "vce", "log": "log"}.get(n, n) for n in fit))
        raise SpecificationError(
            f"{names}: fit option(s), not part of the model; call bf.from_stata(line, fit_options=True) "
            "to get (model, options) and fit with model.fit(df, **options)"
        )
    if weights is not None:
        structure.update(weights=weights[0], weight_type=weights[1])
    body = body.strip()
    if body.startswith("("):
        components = [_component(group, stset) for group in _groups(body)]
        model = FMM(components, k=k, **structure)
    else:
        if k is None:
            raise SpecificationError("standard syntax needs the number of classes: fmm 3: regress y x")
        comp = _component(body, stset)
        options = {"offset": comp.offset, "exposure": comp.exposure, **comp.options}
        if comp.lcprob is not None:
            raise SpecificationError("lcprob() goes with fmm in standard syntax: fmm 3, lcprob(z): regress y x")
        model = FMM(comp.formula, family=comp.family_name, k=k, **structure,
                    **{key: value for key, value in options.items() if value is not None})
    return (model, fit) if fit_options else model


# -- back to Stata -------------------------------------------------------------------------
_STATA_COMMAND = {family: command for command, (family, _) in _COMMANDS.items() if family}
_STATA_COMMAND.update({"nbinomial": "nbreg", "beta": "betareg", "gaussian": "regress"})


def _varlist(rhs: str) -> tuple[list[str], bool]:
    """A formula's right-hand side as Stata variables, and whether it keeps the constant."""
    text = rhs.replace(" ", "")
    constant = True
    for end in ("-1", "+0"):
        if text.endswith(end):
            text, constant = text[: -len(end)], False
    if text.startswith("0+"):
        text, constant = text[2:], False
    if text in ("1", "0", ""):
        return [], constant and text != "0"
    out = []
    for term in text.split("+"):
        parts = re.split(r"(\*|:)", term)
        words = []
        for part in parts:
            if part in ("*", ":"):
                words.append("##" if part == "*" else "#")
                continue
            match = re.fullmatch(r"C\((\w+)\)", part)
            if match:
                words.append(f"i.{match.group(1)}")
            elif _NAME.match(part):
                words.append(f"c.{part}" if len(parts) > 1 else part)
            else:
                raise SpecificationError(f"the term {part!r} has no Stata varlist form (create the variable first)")
        out.append("".join(words))
    return out, constant


def _component_line(comp: Component, stset: dict[str, Any]) -> str:
    family = comp.family_name
    options = dict(comp.options)
    lhs, rhs = (side.strip() for side in comp.formula.split("~", 1))
    variables, constant = _varlist(rhs)
    opts: list[str] = []
    iv_group: list[str] = []
    if family == "streg":
        stset["line"] = f"stset {lhs}" + (f", failure({options.pop('failure')})" if options.get("failure") else "")
        options.pop("failure", None)
        command, depvars = "streg", []
        if options.get("distribution"):
            opts.append(f"distribution({options.pop('distribution')})")
        if options.pop("metric", None) == "aft":
            opts.append("time")
    elif family in ("gamma", "lognormal", "exponential", "weibull", "loglogistic", "bernoulli", "binomial"):
        command, depvars = "glm", [lhs]
        trials = options.pop("trials", None)
        opts.append(f"family({family}{'' if trials in (None, 1) or family != 'binomial' else f' {trials}'})")
        if options.get("link"):
            opts.append(f"link({options.pop('link')})")
    elif family in _STATA_COMMAND:
        command, depvars = _STATA_COMMAND[family], [lhs]
        if family == "intreg":
            depvars.append(options.pop("upper"))
        if family == "pointmass" and "value" in options:
            opts.append(f"lbvalue({options.pop('value')})")
        if family == "ivregress":
            endogenous, instruments = options.pop("endogenous"), options.pop("instruments")
            iv_group = [f"({' '.join(endogenous)} = {' '.join(instruments)})"]
    else:
        raise SpecificationError(f"family {family!r} has no Stata fmm component model")
    if family not in ("gamma", "lognormal", "exponential", "weibull", "loglogistic", "bernoulli", "binomial") and "metric" in options:
        raise SpecificationError(f"{family} with metric= has no Stata fmm form")
    for name in ("metric",):
        if options.get(name) not in (None, _default(family, name)):
            raise SpecificationError(f"{family} with {name}={options[name]!r} has no Stata glm form")
        options.pop(name, None)
    opts += [f"{key}({value})" for key, value in options.items()]
    if not constant:
        opts.insert(0, "noconstant")
    opts += [f"{key}({getattr(comp, key)})" for key in ("offset", "exposure") if getattr(comp, key)]
    if comp.lcprob:
        opts.append(f"lcprob({' '.join(_varlist(comp.lcprob.split('~', 1)[1])[0])})")
    line = " ".join([command, *depvars, *variables, *iv_group])
    return line + (", " + " ".join(opts) if opts else "")


def to_stata(model: ModelSpec) -> str:
    """The Stata ``fmm`` line of ``model`` (preceded by its ``stset`` line for ``streg``).

    Refuses what Stata's ``fmm`` cannot write: ``group=``, ``equal=``, ``nested=``,
    ``constraints=`` and formulas with transformations.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.to_stata(bf.FMM("y ~ x + C(g)", family="nbreg", k=3, lcprob="~ z", lcbase=2))
    'fmm 3, lcprob(z) lcbase(2): nbreg y x i.g'
    """
    for name in ("group", "equal", "nested", "constraints"):
        if getattr(model, name):
            raise SpecificationError(f"{name}= has no Stata fmm option: this model has no fmm line")
    stset: dict[str, Any] = {}
    opts = []
    if model.lcprob:
        opts.append(f"lcprob({' '.join(_varlist(model.lcprob.split('~', 1)[1])[0])})")
    if model.lcinvariant != "none":
        value = model.lcinvariant
        opts.append(f"lcinvariant({value if isinstance(value, str) else ' '.join(value)})")
    if model.lcbase != 1:
        opts.append(f"lcbase({model.lcbase})")
    head = "fmm" if model.hybrid else f"fmm {model.k}"
    if model.weights:
        head += f" [{model.weight_type}={model.weights}]"
    head += (", " + " ".join(opts) if opts else "") + ":"
    lines = [_component_line(comp, stset) for comp in model.components]
    body = " ".join(f"({line})" for line in lines) if model.hybrid or len(lines) > 1 else lines[0]
    fmm = f"{head} {body}"
    return f"{stset['line']}\n{fmm}" if stset else fmm
