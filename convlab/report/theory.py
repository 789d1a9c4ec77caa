"""Figures of the theory: the convolution theorem on a photograph, and the circulant matrix.

Both are computed on the spot (they take well under a second) and do not
depend on the measurements.
"""

import numpy as np
import scipy.fft
import scipy.linalg
from matplotlib.figure import Figure

from ..api import conv2d
from ..operators import circulant_eigenvalues, conv_matrix
from ..planning import plan

__all__ = ["photo", "motion_blur_kernel", "figure_theorem", "figure_circulant", "THEORY_FIGURES"]


def photo(size=256):
    """Grace Hopper, as bundled with matplotlib, in grey, centre-cropped and subsampled to ``size²``.

    Returns
    -------
    ndarray of float64, shape ``(size, size)``, values in [0, 1]
    """
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = matplotlib.image.imread(f, format="jpg").astype(np.float64) / 255.0
    grey = rgb[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma
    side = min(grey.shape)
    top, left = (grey.shape[0] - side) // 2, (grey.shape[1] - side) // 2
    step = max(side // size, 1)
    return grey[top:top + side:step, left:left + side:step][:size, :size]


def motion_blur_kernel(length=21, angle_deg=30.0):
    """A normalised line kernel: the blur of a camera moving ``length`` pixels at ``angle_deg``.

    Examples
    --------
    >>> k = motion_blur_kernel(5, 0.0)
    >>> k.shape, float(k.sum()), float(k[2].sum())
    ((5, 5), 1.0, 1.0)
    """
    k = np.zeros((length, length))
    c = (length - 1) / 2
    t = np.linspace(-c, c, 8 * length)
    rows = np.rint(c - t * np.sin(np.radians(angle_deg))).astype(int)
    cols = np.rint(c + t * np.cos(np.radians(angle_deg))).astype(int)
    k[rows, cols] = 1.0
    return k / k.sum()


def _show(fig, ax, image, title, cmap="gray", colorbar=False, **kwargs):
    im = ax.imshow(image, cmap=cmap, **kwargs)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        fig.colorbar(im, ax=ax, shrink=0.8)
    return im


def theorem_arrays(x, h):
    """The arrays of the convolution theorem for circular convolution of ``x`` with centred ``h``.

    Returns a dict with the spectra ``X``, ``H``, ``XH``, the inverse
    transform ``freq`` and the spatial result ``spatial``: convlab's direct
    method on ``h`` flipped (a correlation with the flipped kernel is the
    convolution) with ``padding="same"`` and ``padding_mode="circular"``.
    """

    k = h.shape[0]
    centred = np.zeros_like(x)
    centred[:k, :k] = h
    centred = np.roll(centred, (-(k // 2), -(k // 2)), axis=(0, 1))  # kernel centre at index 0
    X, H = scipy.fft.fft2(x), scipy.fft.fft2(centred)
    freq = scipy.fft.ifft2(X * H).real
    spatial = conv2d(x[None, None], h[::-1, ::-1][None, None].copy(), padding="same",
                     padding_mode="circular", method="direct")[0, 0]
    return dict(X=X, H=H, XH=X * H, freq=freq, spatial=spatial)


def figure_theorem(results=None, size=256, kernel_length=21):
    """Figure 6: the convolution theorem on a photograph, step by step."""
    x = photo(size)
    h = motion_blur_kernel(kernel_length)
    a = theorem_arrays(x, h)
    log_mag = lambda z: np.log10(np.abs(scipy.fft.fftshift(z)) + 1e-6)
    diff = a["freq"] - a["spatial"]
    fig = Figure(figsize=(9, 5.6), layout="constrained")  # 9 inches: legible on a 900 px page
    axes = fig.subplots(2, 4).ravel()
    _show(fig, axes[0], x, f"input x ({size}×{size})")
    _show(fig, axes[1], h, f"kernel h: motion blur\n{kernel_length}×{kernel_length}", cmap="magma")
    _show(fig, axes[2], log_mag(a["X"]), "log10 |X|, X = DFT x\n(centred)", cmap="viridis", colorbar=True)
    _show(fig, axes[3], log_mag(a["H"]), "log10 |H|\n(h zero-padded to x)", cmap="viridis", colorbar=True)
    _show(fig, axes[4], log_mag(a["XH"]), "log10 |X·H|\npointwise product", cmap="viridis", colorbar=True)
    _show(fig, axes[5], a["freq"], "inverse DFT of X·H")
    _show(fig, axes[6], a["spatial"], "spatial: convlab direct\ncircular padding")
    limit = max(np.abs(diff).max(), 1e-300)
    _show(fig, axes[7], diff, f"difference\nmax |Δ| = {np.abs(diff).max():.1e}", cmap="RdBu_r",
          colorbar=True, vmin=-limit, vmax=limit)
    fig.suptitle("Convolution theorem: x ⊛ h = IDFT(DFT(x) · DFT(h)) for circular convolution", fontsize=11)
    caption = (f"Motion-blurring a photograph by sliding the kernel (bottom, third) and by multiplying "
               f"spectra (bottom, second) agree to {np.abs(diff).max():.1e}, float64 rounding.")
    return fig, caption


def circulant_arrays(n=6, k=3, seed=0):
    """The dense circulant matrix ``C`` of an ``n×n`` circular 'same' correlation with a random ``k×k``
    kernel, ``F C F⁻¹`` in the 2-D Fourier basis, and the kernel's eigenvalues from
    :func:`convlab.operators.circulant_eigenvalues`."""

    w = np.random.default_rng(seed).standard_normal((k, k))
    p = plan((1, 1, n, n), (1, 1, k, k), np.float64, padding="same", padding_mode="circular", method="direct")
    c = conv_matrix(p, w[None, None], dense=True)
    f1 = scipy.linalg.dft(n)
    f = np.kron(f1, f1)  # 2-D DFT of a C-order ravel
    fourier = f @ c @ np.linalg.inv(f)
    return dict(w=w, C=c, fourier=fourier, eigenvalues=circulant_eigenvalues(w, (n, n)).ravel())


def figure_circulant(results=None, n=6, k=3):
    """Figure 7: the doubly-block-circulant matrix and its diagonal form in the Fourier basis."""
    a = circulant_arrays(n, k)
    diag = np.diagonal(a["fourier"])
    off = a["fourier"] - np.diag(diag)
    mismatch = np.abs(diag - a["eigenvalues"]).max()
    fig = Figure(figsize=(9, 8), layout="constrained")  # 2×2 panels: legible on a 900 px page
    axes = fig.subplots(2, 2).ravel()
    limit = np.abs(a["w"]).max()
    _show(fig, axes[0], a["w"], f"kernel w ({k}×{k})", cmap="RdBu_r", colorbar=True, vmin=-limit, vmax=limit)
    limit = np.abs(a["C"]).max()
    im = axes[1].imshow(a["C"], cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[1].set_title(f"C: {n * n}×{n * n} doubly block circulant\n(circular 'same' correlation, {n}×{n} input)",
                      fontsize=9)
    axes[1].set_xlabel("input index (row-major)")
    axes[1].set_ylabel("output index (row-major)")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    im = axes[2].imshow(np.log10(np.abs(a["fourier"]) + 1e-17), cmap="viridis", vmin=-17)
    axes[2].set_title(f"log10 |F C F⁻¹|: diagonal\n(max off-diagonal {np.abs(off).max():.1e})", fontsize=9)
    axes[2].set_xlabel("frequency index")
    axes[2].set_ylabel("frequency index")
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    ax = axes[3]
    index = np.arange(diag.size)
    ax.plot(index, diag.real, "o", color="C0", label="Re diag(F C F⁻¹)")
    ax.plot(index, diag.imag, "s", color="C1", label="Im diag(F C F⁻¹)")
    ax.plot(index, a["eigenvalues"].real, "-", color="C0", linewidth=0.8, label="Re 2-D DFT of w (flipped)")
    ax.plot(index, a["eigenvalues"].imag, "-", color="C1", linewidth=0.8, label="Im 2-D DFT of w (flipped)")
    ax.set_xlabel("frequency index (row-major)")
    ax.set_ylabel("eigenvalue")
    ax.set_title(f"diagonal = DFT of the kernel (max |difference| {mismatch:.1e})", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle("A circular convolution is a circulant matrix; the 2-D DFT diagonalises it", fontsize=11)
    caption = (f"The {n * n}×{n * n} matrix of a {k}×{k} kernel becomes diagonal in the Fourier basis, "
               f"and its diagonal is the kernel's 2-D DFT (convlab.operators.circulant_eigenvalues).")
    return fig, caption


THEORY_FIGURES = {
    "6_convolution_theorem": ("The convolution theorem on a photograph", figure_theorem),
    "7_circulant_matrix": ("The circulant matrix and its Fourier diagonal", figure_circulant),
}
