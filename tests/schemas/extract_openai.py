#!/usr/bin/env python3
"""Extracts trimmed, self-contained JSON Schemas (draft 2020-12) of OpenAI's answers from
OpenAI's published OpenAPI description, into tests/schemas/openai/*.json.

    python3 tests/schemas/extract_openai.py /path/to/openai-openapi.json

The description used is openai/openai-openapi at commit f85dbe2. What is kept: every
`type`, `enum`, `const`, `required`, `properties`, `items`, `anyOf`/`oneOf`/`allOf`,
`additionalProperties` and bounds; OpenAPI's `nullable: true` becomes a union with `null`.
What is dropped: descriptions, titles, examples, `x-*` vendor keys, `discriminator`,
`deprecated`. Every referenced component lands in the file's `$defs`, so each file stands
alone. Where the published description disagrees with the real API, the patches listed in
tests/schemas/EXCEPTIONS.md (its ```json blocks) are applied last; that file is the one
place such differences are recorded. The tests read only the committed output.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Output file → the component it describes.
TARGETS = {
    "chat_completion.json": "CreateChatCompletionResponse",
    "chat_completion_chunk.json": "CreateChatCompletionStreamResponse",
    "response.json": "Response",
    "response_stream_event.json": "ResponseStreamEvent",
    "completion.json": "CreateCompletionResponse",
    # OpenAI says the streamed legacy completion chunk has the same shape as the answer.
    "completion_chunk.json": "CreateCompletionResponse",
    "embedding_list.json": "CreateEmbeddingResponse",
    "model_list.json": "ListModelsResponse",
    "model.json": "Model",
    "error.json": "ErrorResponse",
}

DROP = {"description", "title", "example", "examples", "discriminator", "deprecated", "externalDocs"}
# Keywords whose value is a map of name → schema.
SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "dependentSchemas"}
# Keywords whose value is a schema.
SCHEMA_ONE = {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
# Keywords whose value is a list of schemas.
SCHEMA_LIST = {"anyOf", "oneOf", "allOf", "prefixItems"}


def trim(node, refs: set, me: str):
    """A trimmed copy of schema `node` (inside component `me`); component names it
    references are added to `refs`. Draft 2019-09's `$recursiveRef: "#"` becomes a `$ref`
    to `me`."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise ValueError(f"not a schema: {node!r}")
    out: dict = {}
    for key, value in node.items():
        if key in DROP or key.startswith("x-") or key in ("nullable", "$recursiveAnchor"):
            continue
        if key == "$recursiveRef" and value == "#":
            refs.add(me)
            out["$ref"] = f"#/$defs/{me}"
            continue
        if key == "$ref":
            name = value.rsplit("/", 1)[-1]
            refs.add(name)
            out[key] = f"#/$defs/{name}"
        elif key in SCHEMA_MAPS:
            out[key] = {k: trim(v, refs, me) for k, v in value.items()}
        elif key in SCHEMA_ONE:
            out[key] = trim(value, refs, me)
        elif key in SCHEMA_LIST:
            out[key] = [trim(v, refs, me) for v in value]
        else:
            out[key] = copy.deepcopy(value)
    if node.get("nullable") is True:
        out = nullable(out)
    return out


def nullable(schema: dict) -> dict:
    """`schema` that also accepts null (OpenAPI 3.0's `nullable: true`)."""
    if "$ref" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    types = out["type"] if isinstance(out["type"], list) else [out["type"]]
    if "null" not in types:
        out["type"] = types + ["null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = out["enum"] + [None]
    return out


def extract(components: dict, root: str) -> dict:
    """The self-contained schema of component `root`."""
    refs: set = set()
    body = trim(components[root], refs, root)
    defs: dict = {}
    pending = sorted(refs)
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        found: set = set()
        defs[name] = trim(components[name], found, name)
        pending.extend(sorted(found - defs.keys()))
    out = {"$schema": SCHEMA_DIALECT, "$comment": f"OpenAI {root}, from openai-openapi f85dbe2 (trimmed)"}
    out.update(body)
    if defs:
        out["$defs"] = dict(sorted(defs.items()))
    return out


def dispatch_by_type(union: dict) -> dict:
    """Rewrites an `anyOf` of `$ref`s to event objects into a check keyed on `type`, so a
    failure names the event's own schema instead of every member of the union."""
    types = []
    rules = []
    for member in union.pop("anyOf"):
        target = union["$defs"][member["$ref"].rsplit("/", 1)[-1]]
        for event_type in target["properties"]["type"]["enum"]:
            types.append(event_type)
            rules.append({"if": {"properties": {"type": {"const": event_type}}}, "then": member})
    union["type"] = "object"
    union["required"] = ["type"]
    union["properties"] = {"type": {"enum": types}}
    union["allOf"] = rules
    return union


def exceptions() -> list:
    """The patches of EXCEPTIONS.md: each ```json block is a list of
    {"file", "pointer", "op": "set"|"add_enum"|"remove_required"|"extend_union", "value"}."""
    text = (HERE / "EXCEPTIONS.md").read_text()
    patches = []
    for block in re.findall(r"^```json\n(.*?)^```", text, re.S | re.M):
        patches.extend(json.loads(block))
    return patches


def resolve(doc, pointer: str):
    node = doc
    for part in pointer.lstrip("/").split("/") if pointer not in ("", "/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def apply(doc: dict, patch: dict) -> None:
    op, pointer, value = patch["op"], patch["pointer"], patch.get("value")
    if op == "set":
        parent, _, last = pointer.rpartition("/")
        resolve(doc, parent)[last] = value
    elif op == "add_enum":
        node = resolve(doc, pointer)
        node["enum"] = node["enum"] + [v for v in value if v not in node["enum"]]
    elif op == "remove_required":
        node = resolve(doc, pointer)
        node["required"] = [r for r in node["required"] if r not in value]
    elif op == "extend_union":
        node = resolve(doc, pointer)
        node["anyOf"] = node["anyOf"] + value
    else:
        raise ValueError(f"unknown op {op!r} in {patch}")


def main(argv: list) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    components = json.loads(Path(argv[1]).read_text())["components"]["schemas"]
    out_dir = HERE / "openai"
    out_dir.mkdir(exist_ok=True)
    docs = {}
    for file, root in TARGETS.items():
        doc = extract(components, root)
        if file == "response_stream_event.json":
            doc = dispatch_by_type(doc)
        docs[file] = doc
    for patch in exceptions():
        if patch["file"].startswith("openai/"):
            apply(docs[patch["file"].removeprefix("openai/")], patch)
    for file, doc in docs.items():
        (out_dir / file).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote openai/{file}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
