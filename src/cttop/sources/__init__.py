"""Where the live view's data comes from: the kernel (``live``), or a recording (``record`` writes it, ``replay`` reads it)."""
