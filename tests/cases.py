"""Convolution problems shared by the test modules.

``CASES`` is a fixed, seeded list covering 1-D/2-D/3-D, stride, dilation,
groups, every padding spelling and mode, bias and both dtypes; ``case_strategy``
draws more with hypothesis. A method joins every test by being registered.
"""

import dataclasses
import itertools

import numpy as np
from hypothesis import strategies as st

import convlab as cl


@dataclasses.dataclass(frozen=True)
class Case:
    x_shape: tuple
    w_shape: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    padding_mode: str = "zeros"
    dtype: str = "float64"
    bias: bool = True

    @property
    def params(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    @property
    def id(self):
        spatial = "x".join(map(str, self.x_shape[2:]))
        kernel = "x".join(map(str, self.w_shape[2:]))
        return (f"{len(self.x_shape) - 2}d-n{self.x_shape[0]}c{self.x_shape[1]}-{spatial}-o{self.w_shape[0]}k{kernel}"
                f"-s{self.stride}-p{self.padding}-d{self.dilation}-g{self.groups}-{self.padding_mode}-{self.dtype}"
                .replace(" ", ""))

    def arrays(self, seed=0):
        """Random ``x, w, bias, grad_y`` for this case (``bias`` None when not used)."""
        rng = np.random.default_rng(seed)
        p = cl.plan(self.x_shape, self.w_shape, self.dtype, method="direct", **self.params)
        x = rng.standard_normal(self.x_shape).astype(self.dtype)
        w = rng.standard_normal(self.w_shape).astype(self.dtype)
        b = rng.standard_normal(self.w_shape[0]).astype(self.dtype) if self.bias else None
        gy = rng.standard_normal(p.output_shape).astype(self.dtype)
        return x, w, b, gy


def _cases():
    cases = []
    # every padding mode x every padding spelling, in 1-D, 2-D and 3-D
    spellings = {1: [0, 2, ((1, 3),), "valid", "same", "full"],
                 2: [1, (2, 0), ((0, 2), (1, 1)), "valid", "same", "full"],
                 3: [1, ((1, 0), (0, 1), (2, 1)), "same", "full"]}
    shapes = {1: ((2, 4, 11), (6, 2, 3)), 2: ((2, 4, 9, 8), (6, 2, 3, 2)), 3: ((1, 2, 5, 6, 4), (3, 2, 2, 3, 2))}
    groups = {1: 2, 2: 2, 3: 1}
    for ndim, mode, dtype in itertools.product((1, 2, 3), sorted(cl.padding.PADDING_MODES), ("float64", "float32")):
        x_shape, w_shape = shapes[ndim]
        for padding in spellings[ndim]:
            cases.append(Case(x_shape, w_shape, padding=padding, groups=groups[ndim], padding_mode=mode,
                              dtype=dtype, bias=padding != 0))
    # stride, dilation and groups, mixed per dim
    cases += [
        Case((2, 3, 17), (4, 3, 4), stride=3, padding=2, dilation=2),
        Case((2, 6, 13), (6, 1, 5), stride=2, groups=6, padding_mode="reflect", padding=2),
        Case((2, 4, 12, 11), (8, 2, 3, 3), stride=(2, 3), padding=1, dilation=(2, 1), groups=2),
        Case((1, 4, 10, 10), (4, 1, 3, 3), stride=2, padding=(1, 2), groups=4, padding_mode="circular",
             dtype="float32"),
        Case((3, 6, 9, 7), (6, 2, 2, 4), stride=(1, 2), dilation=(3, 1), padding=((3, 0), (1, 2)), groups=3,
             padding_mode="replicate"),
        Case((2, 2, 6, 5, 7), (4, 1, 3, 2, 3), stride=(2, 1, 2), dilation=(1, 2, 1), padding=1, groups=2,
             padding_mode="reflect", dtype="float32"),
        Case((1, 3, 8, 8), (5, 3, 1, 1)),                       # 1x1 kernel
        Case((2, 3, 7, 7), (2, 3, 7, 7), padding="valid"),      # kernel as large as the input
        Case((1, 1, 20, 20), (1, 1, 9, 9), padding="full", dtype="float32"),
        Case((2, 8, 6, 6), (8, 1, 3, 3), padding="same", groups=8, dtype="float32"),  # depthwise
        Case((1, 2, 16, 16), (2, 2, 5, 5), padding=4, padding_mode="circular"),        # kernel that fits
    ]
    return cases


CASES = _cases()


@st.composite
def case_strategy(draw):
    """Small random cases (hypothesis), valid by construction."""
    ndim = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    mode = draw(st.sampled_from(sorted(cl.padding.PADDING_MODES)))
    limit = 6 if ndim == 3 else 9
    size = tuple(draw(st.integers(max(2, d * (k - 1) + 1), limit)) for k, d in zip(kernel, dilation))
    max_pad = [n - 1 if mode == "reflect" else n for n in size]
    padding = tuple((draw(st.integers(0, min(2, m))), draw(st.integers(0, min(2, m)))) for m in max_pad)
    if draw(st.booleans()) and all(s == 1 for s in stride):
        padding = draw(st.sampled_from(["same", "valid"]))
        if padding == "same" and mode == "reflect" and any(
                d * (k - 1) - d * (k - 1) // 2 >= n for k, d, n in zip(kernel, dilation, size)):
            padding = "valid"
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return Case((draw(st.integers(1, 2)), c_in, *size), (c_out, c_in // groups, *kernel), stride=stride,
                padding=padding, dilation=dilation, groups=groups, padding_mode=mode, dtype=dtype,
                bias=draw(st.booleans()))
