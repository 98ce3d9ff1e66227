"""The alert rules in README.md: valid YAML, alerting on the per-namespace series.

(`promtool check rules` accepted them when they were written: "SUCCESS: 5 rules found".
It is not run here: Debian ships it only inside the Prometheus server package.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

README = Path(__file__).parents[2] / "README.md"


def rules_text() -> str:
    """The ``# rules.yml`` part of the README's Prometheus example."""
    lines = README.read_text().splitlines()
    start = lines.index("# rules.yml") + 1
    end = lines.index("```", start)
    return "\n".join(lines[start:end]) + "\n"


def exprs() -> dict[str, str]:
    """Alert name to its expression, on one line."""
    doc = yaml.safe_load(rules_text())
    return {r["alert"]: " ".join(r["expr"].split()) for g in doc["groups"] for r in g["rules"]}


def test_rules_alert_on_every_namespace() -> None:
    e = exprs()
    assert len(e) == 5
    assert e["ConntrackDropping"] == "rate(cttop_namespace_stat_drop_total[5m]) > 0"
    assert e["ConntrackEarlyDrop"] == "rate(cttop_namespace_stat_early_drop_total[5m]) > 0"
    assert e["ConntrackNamespaceNearlyFull"].startswith('cttop_namespace_entries{netns!="(other)"} / ')
    assert e["ConntrackNodeEntriesHigh"] == "cttop_node_fill_ratio > 0.9"
    assert "node_nf_conntrack_stat" not in " ".join(e.values())  # those are the exported namespace's only
    assert e["CttopExporterDown"].startswith("cttop_up == 0")
