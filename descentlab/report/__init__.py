"""The report: an offline HTML page with figures and tables, read only from the results store."""

from ._data import SummaryRow, summary
from .page import write_report

__all__ = ["SummaryRow", "summary", "write_report"]
