"""trustwatch analysis: sentiment and trust scores, trend rollups, spike alerts, the trend report.

``enrich`` and ``write_report`` are what the enrich_posts DAG and the ``trustwatch enrich`` /
``trustwatch report`` commands call.
"""

from analysis.report import write_report
from analysis.scoring import SCORER_NAME, SCORER_VERSION, Scorer
from analysis.trends import enrich, rebuild

__all__ = ["SCORER_NAME", "SCORER_VERSION", "Scorer", "enrich", "rebuild", "write_report"]
