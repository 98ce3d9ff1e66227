"""The main screen's keys: the key group machinery and footer (:mod:`.base`), one group per feature (:mod:`.view`,
:mod:`.remedy`, :mod:`.host`, :mod:`.incident`, :mod:`.replay`), and keys taken one at a time, in the order typed
(:mod:`.order`)."""
