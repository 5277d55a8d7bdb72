"""The study's report: the HTML page (``page``), its tables (``sections``), images (``figures``), terminal text.

``select`` decides what is shown and in which order; every number comes from
the run's results, nothing is typed in.
"""

from .figures import build_figures
from .page import jsonable, render_html, write_report
from .select import best_rows
from .terminal import summary_table

__all__ = ["best_rows", "build_figures", "jsonable", "render_html", "summary_table", "write_report"]
