"""Remediation: plans that change conntrack, confirmed by a person, journaled and (mostly) undoable.

Every plan has the same surface (see :mod:`cttop.actions.plan`)::

    plan = FlushFlows(spec, "udp dport 53")      # validates input; reads, never writes
    plan.describe(); plan.commands(); plan.warnings(); plan.undoable
    result = plan.apply()                        # ActionResult, or ActionError and no change
    undo_plan(spec, result.id).apply()           # derived from the journal's record, never replayed

The plans:

- :class:`SetSysctls` (``spec, {name: value}, persist=PersistPaths()``): tunables,
  listed with defaults, meanings and writability by :func:`tunables.states`;
- :class:`AddNotrack` (``spec, "udp dport 53"``; it refuses a filter no rule can express before the table
  is read, then counts the NAT'd flows the rules match, a dump chunk at a time), :class:`RemoveNotrack`
  (``spec, [ids] | None``), and :func:`list_rules` / :func:`rule_groups` (one per change) for the rules screen;
- :class:`DeleteFlows` (``spec, rows``) and :class:`FlushFlows` (``spec, filter``):
  not undoable;
- :func:`undo_plan` (``spec, id=None, persist=, force=``): the undo of a journaled change, as a plan.

:func:`read_only` says whether writes are refused (``--read-only``,
``CTTOP_READ_ONLY=1``); :func:`drift.check` lists values cttop set that someone
changed since. :class:`Journal` reads the journal for the journal screen; a record
that fails its kind's schema (:mod:`cttop.actions.schema`) is listed as damaged
and never acted on.
"""

from cttop.actions import drift, tunables
from cttop.actions import journal as _journal
from cttop.actions import schema as _schema
from cttop.actions.errors import ActionError
from cttop.actions.flows import DeleteFlows, FlushFlows
from cttop.actions.journal import Journal, Record
from cttop.actions.notrack.plans import AddNotrack, RemoveNotrack, RuleGroup, rule_groups
from cttop.actions.notrack.rules import NotrackRule, list_rules
from cttop.actions.persist import PersistPaths
from cttop.actions.plan import ActionResult, Plan, read_only, set_read_only
from cttop.actions.sysctl_plan import SetSysctls
from cttop.actions.undo import undo_plan

# Every record read is checked against its kind's schema; the check lives above the journal (see journal.py).
_journal.VALIDATOR = _schema.damage

__all__ = [
    "ActionError", "ActionResult", "AddNotrack", "DeleteFlows", "FlushFlows", "Journal", "NotrackRule",
    "PersistPaths", "Plan", "Record", "RemoveNotrack", "RuleGroup", "SetSysctls", "drift", "list_rules",
    "read_only", "rule_groups", "set_read_only", "tunables", "undo_plan",
]
