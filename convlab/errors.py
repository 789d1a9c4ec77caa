"""Exceptions raised by convlab.

Every error caused by user input is raised from one validation layer
(:mod:`convlab.plan`) and names the parameter, the value received and what
is allowed.
"""

__all__ = ["ConvError", "ConvTypeError", "UnsupportedPlanError", "WorkspaceLimitError"]


class ConvError(ValueError):
    """A parameter or array has a value convlab cannot accept."""


class ConvTypeError(TypeError):
    """A parameter or array has a type convlab cannot accept."""


class UnsupportedPlanError(ConvError):
    """A method was asked explicitly for a plan it does not support."""


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
    fitting : tuple of str
        Registered methods whose workspace fits the limit for the same plan.
    """

    def __init__(self, method, needed, limit, fitting=()):
        self.method, self.needed, self.limit = method, int(needed), int(limit)
        self.fitting = tuple(fitting)
        alternatives = ", ".join(repr(m) for m in self.fitting) or "none"
        super().__init__(
            f"method={method!r} needs {_mib(self.needed)} of workspace but the "
            f"workspace limit is {_mib(self.limit)}; methods that fit: {alternatives} "
            f"(raise the limit with convlab.set_workspace_limit or plan(..., workspace_limit=...))"
        )


def _mib(nbytes):
    return f"{nbytes / 2**20:.1f} MiB ({nbytes} bytes)"
