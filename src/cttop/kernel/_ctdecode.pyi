# The compiled decoder (_ctdecode.c); decode.py is its reference and fallback.
from cttop.model import Row

CONSTANTS: dict[str, int]

def dump(buf: bytes | bytearray | memoryview, pos: int, out: list[Row], /) -> int: ...
def events(buf: bytes | bytearray | memoryview, pos: int, out: list[tuple[int, Row]], /) -> int: ...
