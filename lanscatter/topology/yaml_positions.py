"""YAML with positions: every mapping, sequence and scalar keeps the line and column it starts at.

Built on PyYAML's composer (the node graph, before Python objects are constructed), so the safe
loader's rules apply: no tags that build objects. Scalars keep their source text beside the typed
value, so a host called `no` stays the name "no" (YAML 1.1 would read a boolean) while a port
written `10564` is the integer it looks like.

Rules kept here, because only here are both keys seen:
- a key written twice in one mapping is a `duplicate-key` problem (PyYAML silently keeps the last);
- merge keys (`<<: *defaults`) are applied, keys written in the mapping itself win;
- a syntax error becomes a `yaml-syntax` problem at the position PyYAML reports;
- one document per file.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.constructor import SafeConstructor

from lanscatter.topology.problems import Pos, ProblemLog

# libyaml's parser when PyYAML was built with it: same nodes and marks, several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SHORT_TAGS = {
    "tag:yaml.org,2002:str": "str",
    "tag:yaml.org,2002:int": "int",
    "tag:yaml.org,2002:float": "float",
    "tag:yaml.org,2002:bool": "bool",
    "tag:yaml.org,2002:null": "null",
}


@dataclass(frozen=True, slots=True)
class YScalar:
    text: str           # as written (without quotes)
    kind: str           # "str" | "int" | "float" | "bool" | "null" | other tag
    value: object       # the value the safe loader would build
    pos: Pos


@dataclass(frozen=True, slots=True)
class YMap:
    items: tuple[tuple[YScalar, YNode], ...]
    pos: Pos

    def keys(self) -> list[str]:
        return [k.text for k, _ in self.items]


@dataclass(frozen=True, slots=True)
class YSeq:
    items: tuple[YNode, ...]
    pos: Pos


YNode = YScalar | YMap | YSeq


def _pos(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    def __init__(self, log: ProblemLog) -> None:
        self.log = log
        self.constructor = SafeConstructor()
        self.done: dict[int, YNode] = {}   # aliases point at one node: convert it once

    def node(self, node: yaml.Node) -> YNode:
        key = id(node)
        if key not in self.done:
            self.done[key] = self._convert(node)
        return self.done[key]

    def _convert(self, node: yaml.Node) -> YNode:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return YSeq(tuple(self.node(item) for item in node.value), _pos(node))
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> YScalar:
        kind = _SHORT_TAGS.get(node.tag, node.tag)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.log.add(_pos(node), "yaml-syntax", f"cannot read value: {exc.problem}")
            value = node.value
        return YScalar(str(node.value), kind, value, _pos(node))

    def _mapping(self, node: yaml.MappingNode) -> YMap:
        own: dict[str, tuple[YScalar, YNode]] = {}
        merged: dict[str, tuple[YScalar, YNode]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in self._merge_sources(value_node):
                    for k, v in source.items:
                        merged.setdefault(k.text, (k, v))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.log.add(_pos(key_node), "wrong-type", "a key must be a plain name, not a list or mapping")
                continue
            key = self._scalar(key_node)
            if key.text in own:
                first = own[key.text][0].pos
                self.log.add(key.pos, "duplicate-key",
                             f"{key.text!r} is written twice in this mapping (first on line {first.line})")
                continue
            own[key.text] = (key, self.node(value_node))
        items = list(own.values()) + [kv for k, kv in merged.items() if k not in own]
        return YMap(tuple(items), _pos(node))

    def _merge_sources(self, node: yaml.Node) -> list[YMap]:
        targets = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = []
        for target in targets:
            converted = self.node(target)
            if isinstance(converted, YMap):
                sources.append(converted)
            else:
                self.log.add(_pos(target), "wrong-type", "'<<' merges only mappings")
        return sources


def compose(text: str, log: ProblemLog) -> YNode | None:
    """The positioned tree of one YAML document, or None (with problems logged) if unreadable."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(mark.line + 1, mark.column + 1) if mark else Pos(1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        log.add(pos, "yaml-syntax", f"{problem}{context}")
        return None
    except yaml.YAMLError as exc:
        log.add(Pos(1, 1), "yaml-syntax", str(exc))
        return None
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        log.add(Pos(1, 1), "empty-file", "the file holds no YAML document")
        return None
    if len(nodes) > 1:
        log.add(_pos(nodes[1]), "yaml-syntax", "only one YAML document per file (remove the second '---')")
    return _Converter(log).node(nodes[0])
