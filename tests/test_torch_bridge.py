"""convlab.torch against PyTorch: gradcheck per method, the modules as drop-ins, and training."""

import numpy as np
import pytest

import convlab as cl

torch = pytest.importorskip("torch")
clt = pytest.importorskip("convlab.torch")
F = torch.nn.functional


@pytest.fixture(autouse=True)
def _quick_fftw_plans():
    with cl.fft_backend(cl.get_fft_backend().name, planner_effort="FFTW_ESTIMATE"):
        yield


def _tensor(shape, seed, requires_grad=True):
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.standard_normal(shape), dtype=torch.float64, requires_grad=requires_grad)


@pytest.mark.parametrize("method", cl.methods())
@pytest.mark.parametrize("ndim, x_shape, w_shape, params", [
    (1, (2, 2, 9), (3, 2, 3), {"padding": 1}),
    (2, (2, 2, 6, 5), (2, 2, 3, 3), {"padding": "same", "padding_mode": "reflect"}),
    (2, (1, 4, 6, 6), (4, 2, 3, 3), {"padding": (1, 2), "groups": 2, "padding_mode": "circular"}),
    (3, (1, 1, 4, 5, 4), (2, 1, 3, 3, 3), {"padding": 1, "padding_mode": "replicate"}),
])
def test_gradcheck_every_method(method, ndim, x_shape, w_shape, params):
    plan = cl.plan(x_shape, w_shape, np.float64, method="direct", **params)
    assert plan.with_method(method).method == method  # every method supports these plans: nothing skipped
    x, w, b = _tensor(x_shape, 0), _tensor(w_shape, 1), _tensor((w_shape[0],), 2)
    f = {1: clt.conv1d, 2: clt.conv2d, 3: clt.conv3d}[ndim]
    assert torch.autograd.gradcheck(lambda x, w, b: f(x, w, b, method=method, **params), (x, w, b))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("params", [{"stride": 2, "padding": 1, "dilation": 1}, {"padding": "same", "dilation": 2},
                                    {"padding": "valid", "groups": 2}, {"padding": 2, "padding_mode": "circular"}])
def test_modules_match_torch_forward_and_backward(ndim, params):
    base = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[ndim]
    ours = {1: clt.Conv1d, 2: clt.Conv2d, 3: clt.Conv3d}[ndim]
    torch.manual_seed(0)
    reference = base(4, 6, 3, dtype=torch.float64, **params)
    layer = ours(4, 6, 3, dtype=torch.float64, method="auto", **params)
    assert isinstance(layer, base) and "method='auto'" in repr(layer)
    layer.load_state_dict(reference.state_dict())
    assert layer.state_dict().keys() == reference.state_dict().keys()
    x = _tensor((2, 4) + (7,) * ndim, 3)
    y_ref = reference(x)
    (gx_ref, gw_ref, gb_ref) = torch.autograd.grad(y_ref.square().sum(), (x, reference.weight, reference.bias))
    y = layer(x)
    gx, gw, gb = torch.autograd.grad(y.square().sum(), (x, layer.weight, layer.bias))
    for got, expected in ((y, y_ref), (gx, gx_ref), (gw, gw_ref), (gb, gb_ref)):
        cl.tolerances.assert_close(got.detach().numpy(), expected.detach().numpy(), np.float64)


def test_only_needed_gradients_are_computed(monkeypatch):
    x, w = _tensor((1, 2, 8, 8), 4, requires_grad=False), _tensor((3, 2, 3, 3), 5)
    calls = []
    plan_type = type(cl.plan((1, 2, 8, 8), (3, 2, 3, 3)))
    original = plan_type.backward_input
    monkeypatch.setattr(plan_type, "backward_input", lambda self, *a: calls.append(1) or original(self, *a))
    clt.conv2d(x, w, method="direct").sum().backward()
    assert calls == [] and w.grad is not None


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch notes it copies the input for even kernels
def test_unbatched_and_empty_inputs_as_torch():
    x, w = _tensor((2, 9), 6), _tensor((3, 2, 4), 7)
    cl.tolerances.assert_close(clt.conv1d(x, w, padding="same").detach().numpy(),
                               F.conv1d(x, w, padding="same").detach().numpy(), np.float64)
    empty = _tensor((0, 2, 9), 8)
    y = clt.conv1d(empty, w, padding=1)
    assert y.shape == F.conv1d(empty, w, padding=1).shape == (0, 3, 8)
    y.sum().backward()
    assert empty.grad.shape == empty.shape and torch.count_nonzero(w.grad) == 0


@pytest.mark.parametrize("call, error, match", [
    (lambda: clt.conv2d(torch.ones(1, 1, 4, 4, dtype=torch.float16), torch.ones(1, 1, 3, 3, dtype=torch.float16)),
     TypeError, "dtype"),
    (lambda: clt.conv2d(torch.ones(1, 1, 4, 4, dtype=torch.complex64), torch.ones(1, 1, 3, 3, dtype=torch.complex64)),
     TypeError, "dtype"),
    (lambda: clt.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3, dtype=torch.float64)), TypeError, "same dtype"),
    (lambda: clt.conv2d(torch.ones(1, 1, 4, 4, device="meta"), torch.ones(1, 1, 3, 3)), ValueError, "CPU"),
    (lambda: clt.conv2d(torch.ones(1, 4, 4), torch.ones(1, 1, 3)), ValueError, "weight of shape"),
    (lambda: clt.conv2d(torch.ones(4, 4), torch.ones(1, 1, 3, 3)), ValueError, "input of shape"),
    (lambda: clt.conv2d(torch.ones(1, 1, 8, 8), torch.ones(1, 1, 3, 3), stride=2, padding="same"), ValueError,
     "same"),
    (lambda: clt.Conv2d(1, 1, 3, method="nope")(torch.ones(1, 1, 8, 8)), ValueError, "method"),
])
def test_bad_input_raises_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_small_model_trains_as_with_torch():
    """Same initial weights, same data, same SGD steps: the loss curves coincide and go down."""
    def model(conv):
        torch.manual_seed(0)
        return torch.nn.Sequential(conv(1, 4, 3, padding=1, dtype=torch.float64), torch.nn.ReLU(),
                                   conv(4, 4, 5, padding=2, padding_mode="reflect", dtype=torch.float64),
                                   torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(4, 3, dtype=torch.float64))

    rng = np.random.default_rng(9)
    x = torch.tensor(rng.standard_normal((16, 1, 12, 12)))
    target = torch.tensor(rng.integers(0, 3, 16))
    curves = {}
    for name, conv in [("torch", torch.nn.Conv2d), ("fft", lambda *a, **k: clt.Conv2d(*a, method="fft", **k)),
                       ("auto", clt.Conv2d)]:
        net = model(conv)
        optimiser = torch.optim.SGD(net.parameters(), lr=0.5)
        losses = []
        for _ in range(6):
            optimiser.zero_grad()
            loss = F.cross_entropy(net(x), target)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        curves[name] = np.array(losses)
    assert curves["torch"][-1] < curves["torch"][0]
    for name in ("fft", "auto"):
        np.testing.assert_allclose(curves[name], curves["torch"], rtol=1e-9)


@pytest.mark.parametrize("x_shape, k, stride, padding, dilation, output_size", [
    ((1, 2, 5), 3, 2, 1, 1, (9,)), ((1, 2, 5), 3, 2, 1, 1, (10,)), ((2, 2, 4), 3, 3, 0, 2, (1, 3, 16)),
    ((1, 2, 4, 5), 2, (2, 3), 1, 1, (6, 14)),
])
def test_conv_transpose_output_size_as_torch(x_shape, k, stride, padding, dilation, output_size):
    ndim = len(x_shape) - 2
    base = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d}[ndim]
    reference = base(2, 3, k, stride=stride, padding=padding, dilation=dilation, dtype=torch.float64)
    x = _tensor(x_shape, 10, requires_grad=False)
    expected = reference(x, output_size=list(output_size)).detach().numpy()
    got = cl.conv_transpose(x.numpy(), reference.weight.detach().numpy(), reference.bias.detach().numpy(),
                            stride=stride, padding=padding, dilation=dilation, output_size=output_size)
    cl.tolerances.assert_close(got, expected, np.float64)


@pytest.mark.parametrize("output_size, error, match", [
    ((12,), cl.ConvError, "sizes from 9 to 10"), ((8,), cl.ConvError, "sizes from 9 to 10"),
    ((1, 2), cl.ConvError, "1 or 3 entries"), ("9", cl.ConvTypeError, "tuple of ints"),
])
def test_conv_transpose_output_size_errors(output_size, error, match):
    with pytest.raises(error, match=match):
        cl.conv_transpose(np.ones((1, 2, 5)), np.ones((2, 3, 3)), stride=2, padding=1, output_size=output_size)
    with pytest.raises(cl.ConvError, match="not both"):
        cl.conv_transpose(np.ones((1, 2, 5)), np.ones((2, 3, 3)), stride=2, padding=1, output_padding=1,
                          output_size=(10,))
