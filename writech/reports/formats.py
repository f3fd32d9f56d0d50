"""The output formats a report is rendered in, and their file extensions."""

from __future__ import annotations

from typing import Final, Literal

Format = Literal["html", "json", "markdown"]
FORMATS: Final[tuple[Format, ...]] = ("html", "json", "markdown")
EXTENSIONS: Final[dict[Format, str]] = {"html": "html", "json": "json", "markdown": "md"}
