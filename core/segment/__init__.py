"""Stage 3, segment: which people are in which segment, today.

In: ``person_features`` (written by :mod:`segsync.core.measure`) and the ``[segments]`` of the
config. Out: ``segment_members`` (person ids per segment) and ``segments`` (each segment's
definition hash, size and as-of day), rewritten in one transaction per run.

A segment is a query in a Shopify-style language, read in three steps: :mod:`.lexer` (text to
tokens), :mod:`.parser` (grammar, with the type rules of :mod:`.typecheck`) into the typed tree
of :mod:`.tree`; :mod:`.compiler` turns the tree into parameterised SQL for an as-of day.
:mod:`.templates` are named queries with parameters; :mod:`.membership` compiles every
configured segment (query, template or read-only SQL) and materialises its members.

Start reading at :func:`.membership.materialise`.
"""

from .compiler import compile_query
from .describe import describe_segment, people_with_key, why_member
from .membership import (
    CompiledSegment,
    compile_segment,
    explain,
    materialise,
    preview,
    stored_segments,
)
from .parser import parse
from .templates import TEMPLATES, describe_templates
