import json
from pathlib import Path

from contracts.asyncapi import build, render
from contracts.registry import REGISTRY
from contracts.topics import TOPICS

COMMITTED = Path(__file__).parents[2] / "contracts" / "asyncapi.json"


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(document, ref):
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_committed_document_is_what_the_code_generates():
    assert COMMITTED.read_text() == render(), (
        "run: python -m contracts.asyncapi > contracts/asyncapi.json"
    )


def test_every_reference_resolves():
    document = build()
    found = list(refs(document))
    assert len(found) > 50
    for ref in found:
        assert resolve(document, ref) is not None, ref


def test_every_message_type_and_topic_is_documented():
    document = json.loads(render())
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert set(REGISTRY.types()) <= names
    assert {c["address"] for c in document["channels"].values()} == {t.name for t in TOPICS}
