"""Choosing a method for ``method="auto"``.

For now a preference order over the registered methods, keeping those that
support the plan and whose workspace fits the limit. The cost model that
replaces the order is the subject of a later change.
"""

from .errors import WorkspaceLimitError

__all__ = ["choose_method"]


def choose_method(plan):
    """Name of the method ``method="auto"`` runs for ``plan``.

    Always returns a name: among the registered methods that support the plan
    and fit its workspace limit, the first in registration order; when none
    fits, raises :class:`convlab.WorkspaceLimitError`.
    """
    from .plan import fitting_methods
    from .methods.base import get_method, methods

    fit = fitting_methods(plan)
    if fit:
        return fit[0]
    name = methods()[0]
    raise WorkspaceLimitError(name, get_method(name).workspace_bytes(plan), plan.limit, ())
