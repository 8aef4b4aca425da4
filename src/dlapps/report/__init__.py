"""The shared report shell: the page, embedded PNGs, tables, figures and image grids.

Every area builds its section of a report from these pieces (``<area>/report.py``); this
package imports no area. ``dlapps report RUN...`` (in :mod:`dlapps.reports`) assembles the
sections of any mix of runs into one page.
"""

from dlapps.report.figures import COLORS, grid_image, pyplot, save_figure
from dlapps.report.html import (
    embed_png,
    fmt,
    html_table,
    markdown_table,
    page,
    text_table,
    write_page,
)

__all__ = ["COLORS", "embed_png", "fmt", "grid_image", "html_table", "markdown_table", "page", "pyplot",
           "save_figure", "text_table", "write_page"]
