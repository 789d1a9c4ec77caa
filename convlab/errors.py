"""Exceptions raised by convlab.

Every error caused by user input is raised from one validation layer
(:mod:`convlab.problem`) and names the parameter, the value received and what
is allowed.
"""

__all__ = ["ConvError", "ConvTypeError", "UnsupportedPlanError", "WorkspaceLimitError"]


class ConvError(ValueError):
    """A parameter or array has a value convlab cannot accept.

    The message names the parameter, the value received and what is allowed.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> try:
    ...     cl.conv(np.ones((1, 4, 8, 8)), np.ones((6, 2, 3, 3)), groups=3)
    ... except cl.ConvError as exc:
    ...     print(exc)
    groups=3 must divide C_in=4
    """


class ConvTypeError(TypeError):
    """A parameter or array has a type convlab cannot accept.

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> try:
    ...     cl.conv(np.ones((1, 1, 8)), np.ones((1, 1, 3)), stride=1.5)
    ... except cl.ConvTypeError as exc:
    ...     print(exc)
    stride must be an int or a tuple of 1 ints, but got 1.5
    """


class UnsupportedPlanError(ConvError):
    """A method was asked explicitly for a plan it does not support.

    Examples
    --------
    >>> import convlab as cl
    >>> try:
    ...     cl.plan((1, 1, 16, 16), (1, 1, 3, 3), stride=2, method="winograd")
    ... except cl.UnsupportedPlanError as exc:
    ...     print(exc)
    method='winograd' does not support this plan: stride=(2, 2): Winograd tiles need stride 1 in every dim
    """


class WorkspaceLimitError(MemoryError):
    """A method would need more workspace memory than the limit allows.

    Attributes
    ----------
    method : str
        The method that refused.
    needed : int
        Its estimate of the workspace, in bytes.
    limit : int
        The workspace limit in force, in bytes.
    fitting : tuple of str or None
        Registered methods whose workspace fits the limit for the same problem
        (``None`` when the refusal is not a method's, e.g. building a matrix).

    Examples
    --------
    >>> import numpy as np, convlab as cl
    >>> p = cl.plan((1, 1, 64, 64), (1, 1, 3, 3), method="direct", workspace_limit=1024)
    >>> try:
    ...     p.forward(np.ones((1, 1, 64, 64)), np.ones((1, 1, 3, 3)))
    ... except cl.WorkspaceLimitError as exc:
    ...     print(exc.method, exc.needed > exc.limit)
    direct True
    """

    def __init__(self, method, needed, limit, fitting=None):
        self.method, self.needed, self.limit = method, int(needed), int(limit)
        self.fitting = None if fitting is None else tuple(fitting)
        alternatives = ("" if self.fitting is None else
                        "; methods that fit: " + (", ".join(repr(m) for m in self.fitting) or "none"))
        super().__init__(
            f"method={method!r} needs {_mib(self.needed)} of workspace but the "
            f"workspace limit is {_mib(self.limit)}{alternatives} "
            f"(raise the limit with convlab.set_workspace_limit or plan(..., workspace_limit=...))"
        )


def _mib(nbytes):
    return f"{nbytes / 2**20:.1f} MiB ({nbytes} bytes)"
