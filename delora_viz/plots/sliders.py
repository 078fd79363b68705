"""``show_interactive``: any ``plot_*`` function wired to ipywidgets controls, shown first as a plain image at the
controls' default values, so a headless run and a reader without a live kernel see the figure too.
"""

from __future__ import annotations


def show_interactive(plot, **controls) -> None:
    """Display ``plot(**defaults)`` as a plain image, then the controls; each change redraws it in place.

    ``controls``: keyword -> ipywidgets control (its ``value`` is the default). The image is displayed with
    a display id and updated in place, so a live kernel shows one figure that follows the sliders, while a
    headless run (CI) or a reader without a kernel sees the figure at the defaults. Returns None, so that a
    cell ending with the call does not display the controls a second time.
    """
    import ipywidgets as widgets  # the [notebooks] extra; only needed here
    from IPython.display import display

    def values():
        return {key: control.value for key, control in controls.items()}

    handle = display(plot(**values()), display_id=True)
    box = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))

    def redraw(_change=None):
        handle.update(plot(**values()))

    for control in controls.values():
        control.observe(redraw, names="value")
    display(box)
