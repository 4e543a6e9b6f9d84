"""openai-parser: the EPP's default request parser (the parsing itself is request_parse).

Configs may name it (``parser: {pluginRef: openai-parser}``); it is the only parser here.
"""

from __future__ import annotations

from scheduler_ref.plugins.base import Parser


class OpenAIParser(Parser):
    type_name = "openai-parser"
