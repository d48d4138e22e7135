"""The API's one parser. Its own module, importing nothing of ours: DRF reads the parser setting while its
views module is being imported, so this must not import anything that imports DRF's views."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JsonParser(JSONParser):
    """DRF's JSON parser, with JSON nested too deep for the parser (a few hundred thousand ``[`` fit in the
    body limit) answered as malformed JSON rather than a server error."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON nested too deep.") from exc
