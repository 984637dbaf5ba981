"""CSV cells that a spreadsheet would run as formulas, made inert on export and restored on import.

A cell starting with ``= + - @``, a tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets (a comment
like ``=HYPERLINK(...)`` or ``+cmd|...`` would run when the exported file is opened). Export puts
a ``'`` in front of such a cell, which spreadsheets show as text; import removes exactly that one
``'``. A cell that already starts with ``'`` gets one too, so import can tell an added ``'`` from
one the text had: export and import are inverse on every string, and a plain number (``-1``) is
left alone because it is no formula.
"""

import re

# OWASP's list: tab and carriage return start a formula too ("\t=cmd|..." is run once trimmed).
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def escape(cell: str) -> str:
    if cell.startswith(_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(cell):
        return _ESCAPE + cell
    if cell.startswith(_ESCAPE):
        return _ESCAPE + cell
    return cell


def unescape(cell: str) -> str:
    if cell.startswith(_ESCAPE) and cell[1:2] in (*_TRIGGERS, _ESCAPE):
        return cell[1:]
    return cell
