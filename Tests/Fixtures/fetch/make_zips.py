#!/usr/bin/env python3
"""Writes the small, deliberately broken zip archives the fetch tests extract from.

    python3 make_zips.py OUTDIR

good.zip      members `data/a.txt` (deflated) and `b.txt` (stored)
slip.zip      `good.txt` plus a member named `../evil` (zip-slip)
crc.zip       one stored member `a.txt` whose CRC-32 in both headers is wrong
lying.zip     one deflated member `a.txt` whose headers declare 100 bytes fewer than it expands to
corrupt.zip   good.zip with its compressed data overwritten by garbage
notzip.zip    plain text, not an archive
big.zip       one deflated member `zeros.bin` of 1,000,000 zero bytes (for the size cap)
"""
import os
import struct
import sys
import zipfile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
A = b"".join(b"line %d of member a, some text to compress\n" % i for i in range(200))
B = b"member b\n"


def path(name):
    return os.path.join(out, name)


with zipfile.ZipFile(path("good.zip"), "w") as z:
    z.writestr(zipfile.ZipInfo("data/a.txt"), A, compress_type=zipfile.ZIP_DEFLATED)
    z.writestr(zipfile.ZipInfo("b.txt"), B, compress_type=zipfile.ZIP_STORED)

with zipfile.ZipFile(path("slip.zip"), "w") as z:
    z.writestr("good.txt", B)
    z.writestr("../evil", b"escaped\n")


def patch_headers(name, crc=None, size=None):
    """Rewrites the CRC-32 and/or uncompressed size of the only member in both headers."""
    data = bytearray(open(path(name), "rb").read())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    if crc is not None:
        struct.pack_into("<I", data, local + 14, crc)
        struct.pack_into("<I", data, central + 16, crc)
    if size is not None:
        struct.pack_into("<I", data, local + 22, size)
        struct.pack_into("<I", data, central + 24, size)
    open(path(name), "wb").write(bytes(data))


with zipfile.ZipFile(path("crc.zip"), "w") as z:
    z.writestr(zipfile.ZipInfo("a.txt"), A, compress_type=zipfile.ZIP_STORED)
with zipfile.ZipFile(path("crc.zip")) as z:
    real = z.getinfo("a.txt").CRC
patch_headers("crc.zip", crc=real ^ 0x5A5A5A5A)

with zipfile.ZipFile(path("lying.zip"), "w") as z:
    z.writestr(zipfile.ZipInfo("a.txt"), A, compress_type=zipfile.ZIP_DEFLATED)
patch_headers("lying.zip", size=len(A) - 100)

data = bytearray(open(path("good.zip"), "rb").read())
with zipfile.ZipFile(path("good.zip")) as z:
    info = z.getinfo("data/a.txt")
start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
for i in range(start, start + info.compress_size):
    data[i] = (i * 37 + 11) & 0xFF
open(path("corrupt.zip"), "wb").write(bytes(data))

open(path("notzip.zip"), "wb").write(b"this is not a zip archive\n" * 10)

with zipfile.ZipFile(path("big.zip"), "w") as z:
    z.writestr(zipfile.ZipInfo("zeros.bin"), b"\0" * 1_000_000, compress_type=zipfile.ZIP_DEFLATED)
