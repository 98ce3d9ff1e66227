"""The alert rules in README.md: valid YAML and valid PromQL (promtool, where installed), using per-namespace series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


def rules_text() -> str:
    """The ``# rules.yml`` part of the README's Prometheus example."""
    lines = README.read_text().splitlines()
    start = lines.index("# rules.yml") + 1
    end = lines.index("```", start)
    return "\n".join(lines[start:end]) + "\n"


def exprs() -> dict[str, str]:
    """Alert name to expression, joined from folded (``>-``) blocks; read by indentation, so no YAML library."""
    out: dict[str, str] = {}
    lines = rules_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("- alert:"):
            name = line.split(":", 1)[1].strip()
            j = next(k for k in range(i, len(lines)) if lines[k].strip().startswith("expr:"))
            first = lines[j].split(":", 1)[1].strip()
            indent = len(lines[j]) - len(lines[j].lstrip())
            body = [first] if first != ">-" else []
            for cont in lines[j + 1:]:
                if len(cont) - len(cont.lstrip()) <= indent:
                    break
                body.append(cont.strip())
            out[name] = " ".join(body)
    return out


def test_rules_alert_on_every_namespace() -> None:
    e = exprs()
    assert e["ConntrackDropping"] == "rate(cttop_namespace_stat_drop_total[5m]) > 0"
    assert e["ConntrackEarlyDrop"] == "rate(cttop_namespace_stat_early_drop_total[5m]) > 0"
    assert e["ConntrackNamespaceNearlyFull"].startswith('cttop_namespace_entries{netns!="(other)"} / ')
    assert e["ConntrackNodeEntriesHigh"] == "cttop_node_fill_ratio > 0.9"
    assert "node_nf_conntrack_stat" not in " ".join(e.values())  # those are the exported namespace's only
    assert e["CttopExporterDown"].startswith("cttop_up == 0")


def test_rules_are_yaml() -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(rules_text())
    parsed = {r["alert"]: " ".join(r["expr"].split()) for g in doc["groups"] for r in g["rules"]}
    assert parsed == exprs()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    f = tmp_path / "rules.yml"
    f.write_text(rules_text())
    r = subprocess.run(["promtool", "check", "rules", str(f)], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 5 rules found" in r.stdout
