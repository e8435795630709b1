"""trustwatch analysis: sentiment and trust scores, trend rollups, spike alerts, the trend report.

``enrich`` and ``write_report`` are what the enrich_posts DAG and the ``trustwatch enrich`` /
``trustwatch report`` commands call.
"""

from trustwatch.analysis.report import write_report
from trustwatch.analysis.scoring import SCORER_NAME, SCORER_VERSION, Scorer
from trustwatch.analysis.trends import enrich, rebuild

__all__ = ["SCORER_NAME", "SCORER_VERSION", "Scorer", "enrich", "rebuild", "write_report"]
