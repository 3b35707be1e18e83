"""Reporting: metric, layer and probe records -> tidy tables, the paper's tables, trend statistics and figures."""
from .alignment import alignment_physics, alignment_trend, write_alignment_physics
from .captions import RunFacts
from .figures import write_figures
from .layers import best_layers, gather_layers, write_layer_figures
from .probes import (
    gather_physics,
    gather_probes,
    write_alignment_figures,
    write_physics_depth_figures,
    write_physics_table,
    write_probe_figures,
    write_probe_tables,
)
from .records import RecordError, gather
from .tables import write_tables
from .trends import trend_stats, write_trend_stats

__all__ = ["RecordError", "RunFacts", "alignment_physics", "alignment_trend", "best_layers", "gather", "gather_layers", "gather_physics", "gather_probes", "write_alignment_figures", "write_alignment_physics", "write_physics_depth_figures", "write_physics_table", "write_probe_figures", "write_probe_tables", "trend_stats", "write_figures", "write_layer_figures", "write_tables", "write_trend_stats"]
