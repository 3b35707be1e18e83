"""Reporting: metric records -> tidy table, the paper's tables, trend statistics and figures."""
from .figures import write_figures
from .records import RecordError, gather
from .tables import write_tables
from .trends import trend_stats, write_trend_stats

__all__ = ["RecordError", "gather", "trend_stats", "write_figures", "write_tables", "write_trend_stats"]
