# The client's half of the value codec (values.py): sizes and command-line text. Reached
# through values.parse & co. (values.__getattr__).
from .values import _SIZES, ASCII, BOOLEAN, FLOAT32, _index

INT8 = 0x01
INT16 = 0x02
INT32 = 0x03
UINT16 = 0x22
UINT32 = 0x23

DOMAIN_TARGET = 0
DOMAIN_GPIO = 1

def size(t, count=1):
    return _SIZES[_index(t)] * count


def parse(t, text, count=1):
    # Command-line text -> Python value ("true", "12", "1.5", "hello", "1,2,3")
    if t == ASCII:
        return text
    if count > 1:
        return [parse(t, x.strip()) for x in text.split(",")]
    if t == BOOLEAN:
        low = text.strip().lower()
        if low in ("1", "true", "on", "yes"):
            return True
        if low in ("0", "false", "off", "no"):
            return False
        raise ValueError("not a boolean: %r" % text)
    if t == FLOAT32:
        return float(text)
    return int(text, 0)
