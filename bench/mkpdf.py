#!/usr/bin/env python3
"""Writes a valid, deterministic PDF of about SIZE bytes for the kyso benchmarks.

    mkpdf.py OUT SIZE [--pages N] [--seed S]

SIZE accepts suffixes K, M, G (powers of 1024). The file has N pages of text; the bulk is one
uncompressed DeviceGray image XObject (pseudo-random bytes from a seeded generator, so the same
arguments always give the same bytes) drawn on page 1. The image is written in 1 MiB chunks,
so a 1 GiB file needs no more than a few MiB of memory. The cross-reference table is classic
(uncompressed), with exact offsets.
"""
import argparse
import random
import sys

CHUNK = 1 << 20


def parse_size(s: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper()
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("size")
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--seed", type=int, default=20240607)
    a = ap.parse_args()
    target = parse_size(a.size)
    pages = max(1, a.pages)

    # Objects: 1 catalog, 2 pages, 3 font, 4 image, then (page, content) pairs.
    page_ids = [5 + 2 * i for i in range(pages)]
    content_ids = [6 + 2 * i for i in range(pages)]
    nobj = 4 + 2 * pages

    # Image geometry: width 1024, height chosen so the image is about the target size less
    # the overhead of everything else (~1 KiB per page is generous).
    overhead = 2048 + 600 * pages
    width = 1024
    height = max(1, (target - overhead) // width)
    img_len = width * height

    rng = random.Random(a.seed)
    offsets = [0] * (nobj + 1)
    with open(a.out, "wb") as f:
        pos = 0

        def w(b: bytes) -> None:
            nonlocal pos
            f.write(b)
            pos += len(b)

        def obj(num: int, body: bytes) -> None:
            offsets[num] = pos
            w(b"%d 0 obj\n" % num + body + b"\nendobj\n")

        w(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        kids = b" ".join(b"%d 0 R" % p for p in page_ids)
        obj(2, b"<< /Type /Pages /Kids [ %s ] /Count %d >>" % (kids, pages))
        obj(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")

        offsets[4] = pos
        w(b"4 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d "
          b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\nstream\n"
          % (width, height, img_len))
        left = img_len
        while left:
            n = min(CHUNK, left)
            w(rng.randbytes(n))
            left -= n
        w(b"\nendstream\nendobj\n")

        for i in range(pages):
            text = (b"BT /F1 18 Tf 72 760 Td (kyso benchmark page %d of %d) Tj ET\n"
                    % (i + 1, pages))
            if i == 0:
                text += b"q 468 0 0 300 72 400 cm /Im0 Do Q\n"
            obj(page_ids[i],
                b"<< /Type /Page /Parent 2 0 R /MediaBox [ 0 0 612 792 ] "
                b"/Resources << /Font << /F1 3 0 R >> /XObject << /Im0 4 0 R >> >> "
                b"/Contents %d 0 R >>" % content_ids[i])
            obj(content_ids[i], b"<< /Length %d >>\nstream\n" % len(text) + text
                + b"\nendstream")

        xref = pos
        w(b"xref\n0 %d\n" % (nobj + 1))
        w(b"0000000000 65535 f \n")
        for n in range(1, nobj + 1):
            w(b"%010d 00000 n \n" % offsets[n])
        w(b"trailer\n<< /Size %d /Root 1 0 R /ID [ <%032x> <%032x> ] >>\nstartxref\n%d\n%%%%EOF\n"
          % (nobj + 1, a.seed, a.seed, xref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
