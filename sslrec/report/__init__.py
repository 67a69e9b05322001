"""Experiment reports: tables, significance tests and plots over run directories.

``python -m sslrec.report DIR [DIR ...]`` writes report.md, report.csv and PNG plots;
notebooks call :func:`build_report` and :func:`write_report` directly.
"""

from sslrec.report.build import DEFAULT_METRICS, Report, Row, build_report, write_report

__all__ = ["DEFAULT_METRICS", "Report", "Row", "build_report", "write_report"]
