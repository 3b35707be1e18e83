"""Reporting: metric and probe records -> tidy tables, the paper's tables, trend statistics and figures."""
from .figures import write_figures
from .probes import gather_probes, write_probe_figures, write_probe_tables
from .records import RecordError, gather
from .tables import write_tables
from .trends import trend_stats, write_trend_stats

__all__ = ["RecordError", "gather", "gather_probes", "write_probe_figures", "write_probe_tables", "trend_stats", "write_figures", "write_tables", "write_trend_stats"]
