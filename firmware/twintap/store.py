# Flash files written atomically: write "<name>.tmp", then rename over "<name>". A board
# that loses power mid-write keeps the previous file; a left-over .tmp is ignored unless the
# main file is missing (power lost between the remove and the rename on FAT).
import json
import os


def load(path, default=None):
    for p in (path, path + ".tmp"):
        try:
            with open(p) as f:
                return json.load(f)
        except (OSError, ValueError):
            continue
    return default


def save(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    replace(tmp, path)


def replace(tmp, path):
    # rename tmp over path (atomic on littlefs and POSIX)
    try:
        os.rename(tmp, path)
    except OSError:  # FAT will not rename over an existing file
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)


def remove(path):
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
