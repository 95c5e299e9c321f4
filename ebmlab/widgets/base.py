"""What every ebmlab widget shares: it is a plain Python object holding an ipywidgets ``view``.

Keeping the view as an attribute (rather than subclassing a widget) keeps ebmlab's attribute
names clear of the traitlets a widget already defines; Jupyter displays the object through
``_repr_mimebundle_``, which hands over to the view.
"""

from __future__ import annotations

from typing import Any

import ipywidgets


class View:
    """Base class: subclasses set ``self.view`` to the widget tree they draw in."""

    view: ipywidgets.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Close the view and every widget inside it (frees their frontend models)."""
        _close_tree(self.view)


def _close_tree(widget: ipywidgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
