"""The report: an offline HTML page with figures and tables, read only from the results store."""

from .page import write_report

__all__ = ["write_report"]
