"""Benchmark suites: small TOML files that list the convolution problems to measure.

A suite file has a few top-level settings and a list of ``[[case]]`` tables.
In a case, ``size`` and ``kernel`` may each be a list of ints: the case then
expands to one problem per value (per pair, when both are lists)::

    name = "mine"
    dtype = "float32"                        # the dtype that is timed
    accuracy_dtypes = ["float32", "float64"] # each is checked against float64 direct
    repeats = 5                              # timed samples per method (interleaved)
    warmup = 1                               # untimed calls before the samples
    min_sample_s = 0.002                     # a sample repeats a call until it lasts this long
    time_budget_s = 0.5                      # slower single calls are not timed further
    fft_planner_effort = "FFTW_MEASURE"      # optional: FFTW planning of the FFT methods

    [[case]]
    group = "kernel"        # which figures use it: one of GROUPS
    name = "image"
    ndim = 2
    batch = 1
    channels = 1
    out_channels = 1
    size = 128              # per spatial dim
    kernel = [3, 7, 15, 31] # per spatial dim; a list sweeps it
    padding = "same"        # anything convlab.plan accepts; also stride, dilation, groups

A ``map`` case (a crossover map: the winner per cell of a grid) may also
give ``channels`` as a list; it expands to every (channels, size, kernel),
with ``out_channels`` equal to ``channels`` unless given.

The suites shipped with convlab (``quick``, ``standard``, ``full``) live beside
this module and are found by name; ``papers`` is built from the claims data of
:mod:`convlab.report.papers`.
"""

import dataclasses
import itertools
import math
import pathlib

from ..case import Case as _ProblemCase

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["Case", "Suite", "load_suite", "parse_suite", "check_suite", "suite_names", "GROUPS"]

SUITE_DIR = pathlib.Path(__file__).with_name("suites")
# Suites that are programs rather than lists of cases: name -> module whose run_cli(args) the CLI runs.
PROGRAM_SUITES = {"scale": "convlab.report.scale"}

# group -> what it is for; the figures select cases by group.
GROUPS = {
    "kernel": "time against kernel size at a fixed input (figure 1)",
    "input": "time, memory and accuracy against input size, one sweep per kernel (figures 2, 4, 5)",
    "layer": "typical layers: forward and backward per method (figure 3)",
    "paper": "layers of published claims: the papers table (convlab.report.papers)",
    "map": "a kernel size × channels or kernel size × input size grid: the winner per cell (figure 12)",
}
SUITE_KEYS = frozenset({"name", "description", "dtype", "accuracy_dtypes", "repeats", "warmup",
                        "min_sample_s", "time_budget_s", "fft_planner_effort", "case"})
CASE_KEYS = frozenset({"group", "name", "ndim", "batch", "channels", "out_channels", "size", "kernel",
                       "stride", "padding", "dilation", "groups", "padding_mode"})
DTYPES = ("float32", "float64")
BUILT_IN = {}
"""Suites built in Python rather than read from TOML: name -> function returning the :class:`Suite`
(:mod:`convlab.report.papers` adds ``"papers"`` when imported, as :mod:`convlab.report` does)."""


@dataclasses.dataclass(frozen=True, init=False)
class Case(_ProblemCase):
    """One convolution problem of a suite: a :class:`convlab.case.Case` that belongs to a figure group.

    Attributes
    ----------
    group : str
        One of :data:`GROUPS`.
    name : str
        The sweep it belongs to within the group (for example ``"k=3"``).
    x_shape, w_shape : tuple of int
        ``(N, C_in, *spatial)`` and ``(C_out, C_in // groups, *kernel)``.
    stride, padding, dilation, groups, padding_mode
        As accepted by :func:`convlab.plan`.
    dtype : str
        Inherited; the report times every case in the suite's dtype instead.

    Examples
    --------
    >>> c = Case("layer", "demo", (1, 2, 8, 8), (4, 2, 3, 3), padding="same")
    >>> c.id, c.kernel, c.size, c.plan("direct").output_shape
    ('layer/demo/n8/k3', 3, 8, (1, 4, 8, 8))
    """

    group: str = "layer"

    def __init__(self, group, name, x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", dtype="float32"):
        # The suite's positional order (group and name first) over the harness record's fields.
        values = dict(group=group, name=name, x_shape=x_shape, w_shape=w_shape, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, padding_mode=padding_mode, dtype=dtype)
        for key, value in values.items():
            object.__setattr__(self, key, value)
        self.__post_init__()

    @property
    def ndim(self):
        return len(self.x_shape) - 2

    @property
    def size(self):
        """Input size along the first spatial dim."""
        return self.x_shape[2]

    @property
    def kernel(self):
        """Kernel size along the first spatial dim."""
        return self.w_shape[2]

    @property
    def id(self):
        base = f"{self.group}/{self.name}/n{self.size}/k{self.kernel}"
        # a map's cells may differ in channels alone
        return f"{base}/c{self.x_shape[1]}" if self.group == "map" else base

    @property
    def label(self):
        """A short human description: ``2-D 1x4x64² k3 same``."""
        n, c = self.x_shape[:2]
        sup = {1: "", 2: "²", 3: "³"}.get(self.ndim, "")
        extra = "".join(f" {key}={value}" for key, value in
                        (("stride", self.stride), ("dilation", self.dilation), ("groups", self.groups))
                        if value != 1)
        pad = self.padding if isinstance(self.padding, str) else f"pad={self.padding}"
        return f"{self.ndim}-D {n}×{c}→{self.w_shape[0]} {self.size}{sup} k{self.kernel}{sup} {pad}{extra}"

    def to_dict(self):
        """The case as the results file stores it (``dtype`` is the suite's, not stored per case)."""
        d = dataclasses.asdict(self)
        del d["dtype"]
        d.update(id=self.id, label=self.label, ndim=self.ndim, x_shape=list(self.x_shape),
                 w_shape=list(self.w_shape))
        return d


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named list of :class:`Case` and the measurement settings that go with it.

    Usually read from TOML by :func:`load_suite`; the settings are passed on to
    :func:`convlab.report.measure_case`, which documents them in full.

    Attributes
    ----------
    name : str
    cases : tuple of Case
    description : str
    dtype : {"float32", "float64"}
        The dtype timed.
    accuracy_dtypes : tuple of str
        Dtypes whose error against float64 ``direct`` is recorded.
    repeats, warmup : int
        Timed rounds, and untimed calls before them.
    min_sample_s : float
        A timing sample repeats the call until it lasts at least this long.
    time_budget_s : float
        A method slower than this per call is skipped on the larger cases of its sweep.
    fft_planner_effort : str
        FFTW planner flag while measuring; ``""`` keeps the one in force.
    methods : tuple of str
        The methods measured when none are asked for; empty: every registered one.
    path : str
        The TOML file it came from, if any.

    Examples
    --------
    >>> suite = Suite("demo", (Case("layer", "demo", (1, 1, 8, 8), (1, 1, 3, 3)),), repeats=1)
    >>> [case.id for case in suite.cases], suite.settings()["repeats"]
    (['layer/demo/n8/k3'], 1)
    """

    name: str
    cases: tuple
    description: str = ""
    dtype: str = "float32"
    accuracy_dtypes: tuple = DTYPES
    repeats: int = 5
    warmup: int = 1
    min_sample_s: float = 0.002
    time_budget_s: float = 1.0
    fft_planner_effort: str = ""
    methods: tuple = ()
    path: str = ""

    def settings(self):
        """Everything but the cases, as a JSON-ready dict."""
        d = dataclasses.asdict(self)
        del d["cases"]
        d["accuracy_dtypes"] = list(self.accuracy_dtypes)
        d["methods"] = list(self.methods)
        return d


def suite_names():
    """Names of the suites shipped with convlab.

    Examples
    --------
    >>> suite_names()
    ('full', 'papers', 'quick', 'standard')
    """
    return tuple(sorted({p.stem for p in SUITE_DIR.glob("*.toml")} | set(BUILT_IN)))


def load_suite(suite):
    """Read a suite by name (``"quick"``, ``"standard"``, ``"full"``, ``"papers"``) or from a TOML file path.

    Returns
    -------
    Suite

    Examples
    --------
    >>> s = load_suite("quick")
    >>> s.name, s.dtype, len(s.cases) > 10
    ('quick', 'float32', True)
    """
    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, str) and suite in BUILT_IN:
        return BUILT_IN[suite]()
    path = pathlib.Path(suite)
    if str(suite) in suite_names():
        path = SUITE_DIR / f"{suite}.toml"
    elif not path.is_file():
        raise ValueError(f"suite must be one of {suite_names()} or the path of a TOML file, but got {suite!r}")
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return parse_suite(data, default_name=path.stem, path=str(path))


def _check_keys(where, table, allowed):
    unknown = set(table) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _ints(where, key, value):
    values = value if isinstance(value, list) else [value]
    if not values or not all(_is_int(v) and v >= 1 for v in values):
        raise ValueError(f"{where}: {key} must be a positive int or a list of them, but got {value!r}")
    return values


def _expand(where, index, table):
    """One ``[[case]]`` table -> the :class:`Case` objects it stands for."""
    where = f"{where}, case {index}" + (f" ({table['name']!r})" if isinstance(table.get("name"), str) else "")
    if not isinstance(table, dict):
        raise ValueError(f"{where}: each [[case]] must be a table, but got {table!r}")
    _check_keys(where, table, CASE_KEYS)
    group = table.get("group")
    if group not in GROUPS:
        raise ValueError(f"{where}: group must be one of {sorted(GROUPS)}, but got {group!r}")
    name = table.get("name", group)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: name must be a non-empty string, but got {name!r}")
    for key in ("size", "kernel"):
        if key not in table:
            raise ValueError(f"{where}: {key} is required")
    ndim = table.get("ndim", 2)
    if not _is_int(ndim) or ndim not in (1, 2, 3):
        raise ValueError(f"{where}: ndim must be 1, 2 or 3, but got {ndim!r}")
    batch, channels = table.get("batch", 1), table.get("channels", 1)
    out_channels, groups = table.get("out_channels"), table.get("groups", 1)
    # a crossover map sweeps channels too (C_out follows C_in unless given)
    channel_list = _ints(where, "channels", channels) if group == "map" and isinstance(channels, list) else None
    for key, value in (("batch", batch), ("channels", channels if channel_list is None else 1),
                       ("out_channels", 1 if out_channels is None else out_channels), ("groups", groups)):
        _ints(where, key, value if not isinstance(value, list) else None)
    params = {key: (tuple(v) if isinstance(v, list) else v) for key, v in table.items()
              if key in ("stride", "padding", "dilation", "padding_mode")}
    cases = []
    for c, n, k in itertools.product(channel_list or [channels], _ints(where, "size", table["size"]),
                                     _ints(where, "kernel", table["kernel"])):
        cases.append(Case(group, name, (batch, c) + (n,) * ndim,
                          (c if out_channels is None else out_channels, c // groups) + (k,) * ndim, groups=groups,
                          **params))
    return cases


def _setting(where, data, key, default, kind):
    """Setting ``key`` of a suite, checked: ``"count"`` (int >= 1), ``"int"`` (int >= 0),
    ``"seconds"`` (finite number >= 0), ``"budget"`` (finite number > 0) or ``"text"``."""
    value = data.get(key, default)
    if kind == "text":
        ok = isinstance(value, str)
        allowed = "a string"
    elif kind in ("count", "int"):
        low = 1 if kind == "count" else 0
        ok = _is_int(value) and value >= low
        allowed = f"an int >= {low}"
    else:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (value > 0 if kind == "budget" else value >= 0))
        allowed = f"a finite number {'> 0' if kind == 'budget' else '>= 0'} (seconds)"
    if not ok:
        raise ValueError(f"{where}: {key} must be {allowed}, but got {value!r}")
    return float(value) if kind in ("seconds", "budget") else value


def parse_suite(data, default_name="suite", path=""):
    """Build a :class:`Suite` from the parsed TOML dict ``data``; errors name the file, the case and the key.

    Every setting is checked, and every case is validated by
    :func:`check_suite` (the problem planned with ``method="direct"``), so a
    bad suite fails here, before anything is measured.
    """
    where = f"suite {path or default_name!r}"
    if not isinstance(data, dict):
        raise ValueError(f"{where}: must be a table of settings and [[case]] tables, but got {data!r}")
    _check_keys(where, data, SUITE_KEYS)
    tables = data.get("case", [])
    if not isinstance(tables, list):
        raise ValueError(f"{where}: case must be a list of [[case]] tables, but got {tables!r}")
    cases = tuple(c for i, table in enumerate(tables) for c in _expand(where, i, table))
    if not cases:
        raise ValueError(f"{where} has no [[case]] tables")
    dtype = data.get("dtype", "float32")
    accuracy = data.get("accuracy_dtypes", list(DTYPES))
    if not isinstance(accuracy, list) or not accuracy:
        raise ValueError(f"{where}: accuracy_dtypes must be a non-empty list of {DTYPES}, but got {accuracy!r}")
    for value in (dtype, *accuracy):
        if value not in DTYPES:
            raise ValueError(f"{where}: suite dtypes must be among {DTYPES}, but got {value!r}")
    effort = data.get("fft_planner_effort", "")
    if effort not in ("", "FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE"):
        raise ValueError(f"{where}: fft_planner_effort must be an FFTW planner flag such as 'FFTW_ESTIMATE', "
                         f"but got {effort!r}")
    suite = Suite(name=_setting(where, data, "name", default_name, "text"), cases=cases,
                  description=_setting(where, data, "description", "", "text"), dtype=dtype,
                  accuracy_dtypes=tuple(accuracy), repeats=_setting(where, data, "repeats", 5, "count"),
                  warmup=_setting(where, data, "warmup", 1, "int"),
                  min_sample_s=_setting(where, data, "min_sample_s", 0.002, "seconds"),
                  time_budget_s=_setting(where, data, "time_budget_s", 1.0, "budget"),
                  fft_planner_effort=effort, path=path)
    check_suite(suite)
    return suite


def check_suite(suite, dtype=None):
    """Check every setting and every case of ``suite`` before anything is measured.

    Each case is planned with ``method="direct"`` in the timed and every
    accuracy dtype (convlab's own validation: its message names the
    parameter), and its arrays (``x``, ``w``, ``y`` in float64, as the
    reference needs them) must fit in the workspace limit.

    Raises
    ------
    ValueError
        Naming the suite (its file when it has one), the case and the
        parameter.

    Examples
    --------
    >>> bad = Suite("demo", (Case("layer", "demo", (1, 1, 4, 4), (1, 1, 5, 5)),))
    >>> check_suite(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: suite 'demo', case 'layer/demo/n4/k5': kernel size 5 ... larger than the padded input size 4
    """
    import convlab as cl

    where = f"suite {suite.path or suite.name!r}"
    data = {key: getattr(suite, key) for key in ("name", "description", "repeats", "warmup", "min_sample_s",
                                                  "time_budget_s")}
    for key, kind in (("name", "text"), ("description", "text"), ("repeats", "count"), ("warmup", "int"),
                      ("min_sample_s", "seconds"), ("time_budget_s", "budget")):
        _setting(where, data, key, None, kind)
    dtypes = {dtype or suite.dtype, *suite.accuracy_dtypes}
    if not dtypes <= set(DTYPES):
        raise ValueError(f"{where}: suite dtypes must be among {DTYPES}, but got {sorted(dtypes)}")
    limit = cl.get_workspace_limit()
    ids = []
    for case in suite.cases:
        if not isinstance(case, Case):
            raise ValueError(f"{where}: cases must be convlab.report.Case, but got {case!r}")
        try:
            for dt in sorted(dtypes | {"float64"}):
                p = case.plan("direct", dt)
        except (cl.ConvError, ValueError, TypeError) as exc:
            raise ValueError(f"{where}, case {case.id!r}: {exc}") from None
        needed = 8 * (math.prod(p.x_shape) + math.prod(p.w_shape) + math.prod(p.output_shape))
        if needed > limit:
            raise ValueError(f"{where}, case {case.id!r}: x, w and y need {needed / 2**20:.0f} MiB in float64, "
                             f"over the workspace limit of {limit / 2**20:.0f} MiB (convlab.set_workspace_limit)")
        ids.append(case.id)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{where} lists these cases twice: {duplicates}")
