"""The package's shape: one-way imports, and a registered method joins everything.

The layer order itself is the contract in ``.importlinter`` (CI runs ``lint-imports``);
these tests check what that contract does not: that no import, not even one inside a
function, closes a cycle, and that registering is all a new method needs.
"""

import ast
import pathlib

import numpy as np
import pytest

import convlab as cl
from convlab.algorithms import Method, register, unregister
from convlab.report.figures import method_family
from convlab.tuning import Calibration, choose_method, predictions
from tests.cases import CASES
from tests.equivalence import check_against_direct

PACKAGE = pathlib.Path(cl.__file__).parent
# Imports inside functions that stay: lazy loading of the package's own heavy subpackages, and of
# the report's page, which brings matplotlib (seconds of import on a cold start) that `convlab --help`
# and `import convlab.report` should not pay for.
LAZY_OK = {("convlab", "__getattr__")}
# and of the compiled kernels, which bring numba (and compile on first use): never at `import convlab`.
DEFERS_HEAVY_IMPORTS = {"convlab.report.page", "convlab.kernels.direct", "convlab.kernels.winograd",
                        "convlab.kernels.im2col", "convlab.kernels.fft", "convlab.kernels.probe",
                        "convlab.dask"}  # numba, matplotlib; dask: an extra


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module, is_package, node):
    """Absolute convlab module names an import statement refers to."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "convlab"]
    base = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
    if target.split(".")[0] != "convlab":
        return []
    # "from .x import y" imports the submodule x.y when there is one, else the name y of x
    return [f"{target}.{a.name}" for a in node.names] + [target]


def _edges(module, is_package, node, files):
    targets = [t for t in _resolve(module, is_package, node) if t in files]
    submodules = [t for t in targets if t.rpartition(".")[0] in targets]
    return submodules or targets  # a package named only to reach its submodule is not an edge of its own


def _import_graph():
    """``{module: {(imported module, enclosing function or None)}}`` over every module of convlab."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges = set()

        def visit(node, function):
            for child in ast.iter_child_nodes(node):
                inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _edges(module, path.name == "__init__.py", child, files):
                        # a package is initialised before its submodules: naming it is no edge
                        if target in files and not module.startswith(target + ".") and target != module:
                            edges.add((target, function))
                visit(child, inner)

        visit(tree, None)
        graph[module] = edges
    return graph


def test_no_import_cycle_even_through_imports_inside_functions():
    graph = {m: {t for t, _ in edges} for m, edges in _import_graph().items()}
    # the package facade imports everything below it and nothing imports it back but the
    # applications on top, which import only the facade's public names
    graph["convlab"] = set()
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_imports_inside_functions_are_only_for_optional_heavy_dependencies():
    inside = sorted((m, t, f) for m, edges in _import_graph().items() for t, f in edges
                    if f is not None and (m, f) not in LAZY_OK and t not in DEFERS_HEAVY_IMPORTS)
    assert not inside, f"convlab modules imported inside functions (import them at the top): {inside}"


# --------------------------------------------------------------- a toy method joins everything
class Toy(Method):
    """Stride-1, undilated, ungrouped correlation in any dimension by ``einsum`` over sliding windows."""

    name, domain = "toy-einsum", "frequency"  # "frequency" only to show the report reads the attribute

    def unsupported_reason(self, spec):
        if set(spec.stride) != {1} or set(spec.dilation) != {1} or spec.groups != 1:
            return "stride 1, dilation 1 and groups 1 only"
        return None

    def _windows(self, spec, x):
        axes = tuple(range(2, 2 + spec.ndim))
        return np.lib.stride_tricks.sliding_window_view(spec.zero_pad(x), spec.kernel_size, axis=axes)

    def forward(self, spec, x, w):
        windows = self._windows(spec, x)  # (N, C, *out, *k)
        flat = windows.reshape(*windows.shape[:2 + spec.ndim], -1)
        return np.einsum("nc...k,ock->no...", flat, w.reshape(*w.shape[:2], -1))

    def backward_input(self, spec, grad_y, w):
        dxp = np.zeros((spec.batch, spec.in_channels, *spec.padded_size), spec.dtype)
        for offset in np.ndindex(*spec.kernel_size):
            window = tuple(slice(j, j + o) for j, o in zip(offset, spec.output_size))
            dxp[(Ellipsis, *window)] += np.einsum("no...,oc->nc...", grad_y, w[(Ellipsis, *offset)])
        return spec.crop_padding(dxp)

    def backward_weight(self, spec, grad_y, x):
        windows = self._windows(spec, x)
        flat = windows.reshape(spec.batch, spec.in_channels, -1, int(np.prod(spec.kernel_size)))
        gy = grad_y.reshape(spec.batch, spec.out_channels, -1)
        return np.einsum("nop,ncpk->ock", gy, flat).reshape(spec.w_shape)

    def cost(self, spec, terms, pass_="forward"):
        return {"product": 1e-12}  # absurdly cheap, so that auto must pick it wherever it can run


@pytest.fixture
def toy():
    register(Toy)
    yield Toy.name
    unregister(Toy.name)


def test_a_registered_method_joins_the_shared_suite(toy):
    assert toy in cl.methods()
    ran = [case.id for case in CASES if check_against_direct(toy, case)]
    assert len(ran) >= 5, f"the toy ran only {ran}"


def test_a_registered_method_joins_auto_with_its_own_cost(toy):
    spec = cl.spec((2, 3, 16, 16), (4, 3, 3, 3), padding=1)
    cal = Calibration.defaults()
    assert choose_method(spec, cal) == toy
    assert cl.plan((2, 3, 16, 16), (4, 3, 3, 3), padding=1).method == toy
    row = next(r for r in predictions(spec, cal) if r.method == toy)
    assert row.seconds == pytest.approx(1e-12)
    strided = cl.spec((2, 3, 16, 16), (4, 3, 3, 3), stride=2)
    assert choose_method(strided, cal) != toy  # its own support rules are respected


def test_a_registered_method_joins_the_report_by_its_domain(toy):
    assert method_family(toy) == "frequency"
    assert {method_family(m) for m in ("direct", "im2col", "winograd", "toeplitz")} == {"spatial"}
    assert {method_family(m) for m in ("fft", "fft_tiled")} == {"frequency"}


def test_register_refuses_a_method_that_does_not_declare_itself():
    class NoDomain(Toy):
        name, domain = "no-domain", None

    class NoCost(Method):
        name, domain = "no-cost", "spatial"
        forward = backward_input = backward_weight = Toy.forward

    with pytest.raises(TypeError, match="domain must be one of"):
        register(NoDomain)
    with pytest.raises(TypeError, match="cost"):
        register(NoCost)
    assert "no-domain" not in cl.methods() and "no-cost" not in cl.methods()
