#!/usr/bin/env python3
"""Makes the hybrid-reference test PDFs of tests/data/pdf/ (ISO 32000-1, 7.5.8.4).

A hybrid-reference file has a classic cross-reference table whose trailer carries /XRefStm: the
offset of a cross-reference stream that lists the objects kept in object streams. Readers that
know PDF 1.5 follow it; older ones see only the table. Microsoft Word's "Save as PDF" writes them.

Both files have two pages of text. What only the stream knows: the second page, both fonts, the
document information dictionary, and a page content stream's /Resources are in one object stream,
so that a writer that loses the stream loses fonts, a page and the Info.

  hybrid-single.pdf  one section: the table (which lists only the uncompressed objects) and its
                     trailer with /XRefStm.
  hybrid-word.pdf    Word's layout: a full table (the packed objects as free entries) whose
                     trailer has no /XRefStm, then an empty last section "xref 0 0" whose trailer
                     has /XRefStm and /Prev (the full table).

Deterministic (fixed /ID, no dates): run it again and the files are byte-identical.
Usage: python3 make-hybrid.py [OUTDIR]   (default: the directory of this script)
"""
import os
import struct
import sys
import zlib

ID = "[<4B59534F2D48594252494430303030303031> <4B59534F2D48594252494430303030303031>]"


def content(lines, font):
    ops = ["BT", "/%s 14 Tf" % font, "72 760 Td", "18 TL"]
    for line in lines:
        ops.append("(%s) '" % line)
    ops.append("ET")
    return "\n".join(ops).encode("ascii")


def build(layout):
    # Uncompressed objects: (num, bytes of the body). Compressed: (num, body) in object stream 20.
    plain = {}
    packed = {}
    c1 = content(["Hybrid-reference test document, page 1.",
                  "Cong van so 123/UBND-VP: text that pdftotext must find again."], "F1")
    c2 = content(["Page 2 is kept in an object stream.",
                  "Its font and resources are compressed objects too."], "F2")
    plain[1] = b"<< /Type /Catalog /Pages 2 0 R /Lang (vi-VN) >>"
    plain[2] = b"<< /Type /Pages /Kids [3 0 R 10 0 R] /Count 2 /MediaBox [0 0 595 842] >>"
    plain[3] = b"<< /Type /Page /Parent 2 0 R /Resources 12 0 R /Contents 4 0 R >>"
    plain[4] = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(zlib.compress(c1)) + \
        zlib.compress(c1) + b"\nendstream"
    plain[5] = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(zlib.compress(c2)) + \
        zlib.compress(c2) + b"\nendstream"
    packed[10] = b"<< /Type /Page /Parent 2 0 R /Resources 13 0 R /Contents 5 0 R >>"
    packed[11] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    packed[12] = b"<< /Font << /F1 11 0 R >> /ProcSet [/PDF /Text] >>"
    packed[13] = b"<< /Font << /F2 14 0 R >> /ProcSet [/PDF /Text] >>"
    packed[14] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /WinAnsiEncoding >>"
    packed[15] = b"<< /Title (Hybrid-reference test) /Producer (kyso tests/data/pdf/make-hybrid.py) >>"

    # The object stream.
    header = b""
    body = b""
    order = sorted(packed)
    for n in order:
        header += b"%d %d " % (n, len(body))
        body += packed[n] + b"\n"
    raw = header + body
    objstm = zlib.compress(raw)
    plain[20] = (b"<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n"
                 % (len(order), len(header), len(objstm))) + objstm + b"\nendstream"
    size = 22  # 21 is the cross-reference stream

    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets = {}
    for n in sorted(plain):
        offsets[n] = len(out)
        out += b"%d 0 obj\n" % n + plain[n] + b"\nendobj\n"

    # The cross-reference stream: type 2 entries for the packed objects (and itself, type 1).
    xrefstm_at = len(out)
    rows = b""
    index = []
    for n in order:
        rows += struct.pack(">BIH", 2, 20, order.index(n))
        index += [n, 1]
    rows += struct.pack(">BIH", 1, xrefstm_at, 0)
    index += [21, 1]
    data = zlib.compress(rows)
    out += (b"21 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Index [%s] /Filter /FlateDecode "
            b"/Length %d >>\nstream\n" % (size, " ".join(map(str, index)).encode(), len(data))
            + data + b"\nendstream\nendobj\n")

    offsets[21] = xrefstm_at
    table_at = len(out)
    out += b"xref\n"
    if layout == "single":
        # The table lists only the uncompressed objects (one subsection per run of numbers): the
        # packed ones are in the stream alone.
        runs = []
        for n in [0] + sorted(offsets):
            if runs and runs[-1][0] + len(runs[-1][1]) == n:
                runs[-1][1].append(n)
            else:
                runs.append((n, [n]))
        for first, nums in runs:
            out += b"%d %d\r\n" % (first, len(nums))
            for n in nums:
                out += (b"0000000000 65535 f\r\n" if n == 0 else b"%010d 00000 n\r\n" % offsets[n])
    else:
        # Every object number, the packed ones free, as Word writes them.
        out += b"0 %d\n" % size
        out += b"0000000000 65535 f\r\n"
        for n in range(1, size):
            out += b"%010d 00000 n\r\n" % offsets[n] if n in offsets else b"0000000000 00000 f\r\n"
    common = b"/Size %d /Root 1 0 R /Info 15 0 R /ID %s" % (size, ID.encode())
    if layout == "single":
        out += b"trailer\n<< %s /XRefStm %d >>\nstartxref\n%d\n%%%%EOF\n" % (common, xrefstm_at,
                                                                           table_at)
    else:
        out += b"trailer\n<< %s >>\nstartxref\n%d\n%%%%EOF\n" % (common, table_at)
        last_at = len(out)
        out += (b"xref\n0 0\ntrailer\n<< %s /Prev %d /XRefStm %d >>\nstartxref\n%d\n%%%%EOF\n"
                % (common, table_at, xrefstm_at, last_at))
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for layout in ("single", "word"):
        with open(os.path.join(outdir, "hybrid-%s.pdf" % layout), "wb") as f:
            f.write(build(layout))


if __name__ == "__main__":
    main()
