"""``cttop replay``: a recording read (:mod:`.reader`), indexed (:mod:`.index`) and played back as a Source
(:mod:`.playback`).

Recordings are attached to bug reports: untrusted input. Everything read is bounded, so a crafted file costs
bounded memory whatever it claims, and opening one reads it through once, so damage is found then, never halfway
through a session.
"""
