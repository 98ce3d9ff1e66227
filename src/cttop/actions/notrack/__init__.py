"""NOTRACK rules that exempt traffic from connection tracking: add, list, remove, persist.

cttop keeps its rules in a table of its own, ``table inet cttop``, with base
chains ``pre`` (hook prerouting) and ``out`` (hook output) at priority raw (-300),
so they run before conntrack and never mix with anyone else's rules. Every rule
carries the comment ``cttop:<change id>``: listing groups by it, and undo removes
exactly the rules of one change. When the last cttop rule goes, so does the
table, leaving the ruleset as it was found.

Without ``nft``, the same matches go to the raw table with ``iptables -t raw -I
PREROUTING|OUTPUT ... -j CT --notrack`` (and ip6tables), tagged the same way.

Each change is one transaction (``nft -f``, ``iptables-restore --noflush``), so the
kernel takes all of it or none of it.

Rule text is never read back from the journal. Undoing an addition removes the
rules found in the live ruleset by their comment (nft: by handle); undoing a
removal derives the rules again from the filter expressions they were made from.
"""
