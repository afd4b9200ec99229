"""A small Markdown renderer for the bench report: headings, paragraphs, lists, fenced code,
pipe tables, images, links, inline code, bold and italics. Everything is HTML-escaped first;
images load only from the bench directory (``/bench/NAME``) and links only go to http(s) or
to bench files, so the page never reaches outside this machine on its own.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

_IMG = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+&quot;[^)]*&quot;)?\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_ULIST = re.compile(r"^\s*[-*+]\s+(.*)$")
_OLIST = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")

Resolve = Callable[[str], str | None]


def _inline(text: str, resolve: Resolve) -> str:
    """Escape ``text`` and render its inline marks."""
    codes: list[str] = []

    def keep_code(m: re.Match) -> str:
        codes.append(m.group(1))
        return f"\x00{len(codes) - 1}\x00"

    s = _CODE.sub(keep_code, html.escape(text, quote=True))

    def image(m: re.Match) -> str:
        alt, src = m.group(1), html.unescape(m.group(2))
        url = resolve(src)
        if url is None:
            return f"<em>[image {alt or src}]</em>"
        return f'<img src="{html.escape(url)}" alt="{alt}">'

    def link(m: re.Match) -> str:
        label, href = m.group(1), html.unescape(m.group(2))
        if re.match(r"^https?://", href):
            url: str | None = href
        else:
            url = resolve(href)
        if url is None:
            return label
        return f'<a href="{html.escape(url)}" target="_blank" rel="noopener">{label}</a>'

    s = _IMG.sub(image, s)
    s = _LINK.sub(link, s)
    s = _BOLD.sub(r"<strong>\1</strong>", s)
    s = _EM.sub(r"<em>\1</em>", s)
    return re.sub(r"\x00(\d+)\x00", lambda m: f"<code>{codes[int(m.group(1))]}</code>", s)


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)]


def render(text: str, resolve: Resolve) -> str:
    """Markdown ``text`` -> HTML. ``resolve(src)`` gives the URL of a local file the text
    refers to (an image, a linked file), or None to leave it out."""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            out.append("<p>" + _inline(" ".join(para), resolve) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            out.append("<pre><code>" + html.escape("\n".join(body)) + "</code></pre>")
            i += 1
            continue
        if not stripped:
            flush()
            i += 1
            continue
        m = _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2), resolve)}</h{level}>")
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]):
            flush()
            head = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(_cells(lines[i]))
                i += 1
            th = "".join(f"<th>{_inline(c, resolve)}</th>" for c in head)
            trs = "".join(
                "<tr>" + "".join(f"<td>{_inline(c, resolve)}</td>" for c in r) + "</tr>"
                for r in rows
            )
            out.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
            continue
        lm = _ULIST.match(line) or _OLIST.match(line)
        if lm:
            flush()
            tag = "ul" if _ULIST.match(line) else "ol"
            items = []
            while i < len(lines):
                m2 = (_ULIST if tag == "ul" else _OLIST).match(lines[i])
                if m2:
                    items.append(m2.group(1))
                elif lines[i].startswith((" ", "\t")) and lines[i].strip() and items:
                    items[-1] += " " + lines[i].strip()  # a continuation line
                else:
                    break
                i += 1
            lis = "".join(f"<li>{_inline(it, resolve)}</li>" for it in items)
            out.append(f"<{tag}>{lis}</{tag}>")
            continue
        para.append(stripped)
        i += 1
    flush()
    return "\n".join(out)
