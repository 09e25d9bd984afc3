"""PUT /graph: the body's shape (marshmallow) and the graph's rules (a DAG of known types)."""

from marshmallow import EXCLUDE, Schema, ValidationError as MMError, fields, validates_schema

from models.errors import ValidationError
from . import flatten, invalid
from .fields import StrictNumber, Text


class PositionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    x = StrictNumber(load_default=0)
    y = StrictNumber(load_default=0)


class BlockSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = Text(required=True)
    type = Text(required=True)
    config = fields.Dict(load_default=dict)
    position = fields.Nested(PositionSchema, load_default=lambda: {"x": 0, "y": 0})

    @validates_schema
    def _non_empty_id(self, data, **kwargs):
        if "id" in data and not data["id"].strip():
            raise MMError("id must be a non-empty string", field_name="id")


class EdgeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    source = Text(required=True)
    target = Text(required=True)
    source_handle = Text(allow_none=True)


def validate_graph(body, registry, max_blocks, max_edges=20000):
    """Check a PUT /graph body; return (blocks, edges) as they will be saved.

    Raises ValidationError whose `details` name the offending blocks and edges (the first
    100; `details_omitted` counts the rest).
    """
    if not isinstance(body, dict):
        message = "graph body must be a JSON object with lists blocks and edges"
        raise ValidationError(message, details=[{"path": "", "message": message}])
    details = []
    for key in ("blocks", "edges"):
        if key not in body:
            details.append({"path": key, "message": f"{key} is required (a list, [] is fine)"})
        elif not isinstance(body[key], list):
            details.append({"path": key, "message": f"{key} must be a list"})
    if details:
        raise invalid(_summary(details), details)
    raw_blocks, raw_edges = body["blocks"], body["edges"]
    for key, items, most in (("blocks", raw_blocks, max_blocks), ("edges", raw_edges, max_edges)):
        if len(items) > most:
            details.append({"path": key, "message": f"at most {most} {key} per graph"})
    if details:
        raise invalid(_summary(details), details)

    blocks = _load_each(BlockSchema(), raw_blocks, "blocks", details, _block_ref)
    edges = _load_each(EdgeSchema(), raw_edges, "edges", details, _edge_ref)

    ids = {}
    for i, block in blocks:
        where = {"path": f"blocks[{i}]", "block_id": block["id"]}
        if block["id"] in ids:
            details.append({**where, "path": where["path"] + ".id",
                            "message": f"duplicate block id '{block['id']}'"})
        else:
            ids[block["id"]] = block
        if block["type"] not in registry:
            details.append({**where, "path": where["path"] + ".type",
                            "message": f"unknown block type '{block['type']}'; known: "
                                       + ", ".join(registry.names())})
            continue
        for key, message in registry[block["type"]].check(block["config"]):
            details.append({**where, "path": f"{where['path']}.config.{key}", "message": message})

    seen = set()
    for i, edge in edges:
        where = {"path": f"edges[{i}]", "source": edge["source"], "target": edge["target"]}
        for end in ("source", "target"):
            if edge[end] not in ids:
                details.append({**where, "message": f"edge {end} '{edge[end]}' is not a block of this graph"})
        if edge["source"] == edge["target"]:
            details.append({**where, "message": f"self-loop on block '{edge['source']}'"})
        key = (edge["source"], edge["target"], edge.get("source_handle"))
        if key in seen:
            details.append({**where, "message": "duplicate edge"})
        seen.add(key)
        target = ids.get(edge["target"])
        if target is not None and target["type"] in registry and registry[target["type"]].trigger:
            details.append({**where, "message": f"'{edge['target']}' is a {target['type']} block: "
                                                "triggers start runs and take no incoming edges"})
        source = ids.get(edge["source"])
        handle = edge.get("source_handle")
        if source is not None and source["type"] == "condition" and handle is not None:
            from actors.blocks.condition import branches
            if handle not in branches(source["config"]):
                details.append({**where, "message": f"source_handle '{handle}' is not a condition "
                                                    f"id of '{edge['source']}' nor 'else'"})

    if not details:
        cycle = find_cycle(list(ids), [(e["source"], e["target"]) for _, e in edges])
        if cycle:
            details.append({"path": "edges", "message": "the graph has a cycle: " + " -> ".join(cycle),
                            "block_id": cycle[0]})
    if details:
        raise invalid(_summary(details), details)
    return [b for _, b in blocks], [e for _, e in edges]


def _load_each(schema, items, name, details, ref):
    loaded = []
    for i, item in enumerate(items):
        path = f"{name}[{i}]"
        if not isinstance(item, dict):
            details.append({"path": path, "message": f"each of {name} must be an object"})
            continue
        try:
            loaded.append((i, schema.load(item)))
        except MMError as exc:
            for d in flatten(exc.messages, path):
                details.append({**d, **ref(item)})
    return loaded


def _block_ref(item):
    return {"block_id": item.get("id") if isinstance(item.get("id"), str) else None}


def _edge_ref(item):
    return {"source": item.get("source"), "target": item.get("target")}


def _summary(details):
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"invalid graph: {first['path']}: {first['message']}{more}"


def find_cycle(nodes, edges):
    """A list of block ids forming a cycle, or None (iterative DFS: graphs can be deep)."""
    succ = {n: [] for n in nodes}
    for s, t in edges:
        succ[s].append(t)
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(nodes, WHITE)
    for root in nodes:
        if color[root] != WHITE:
            continue
        stack = [(root, iter(succ[root]))]
        path = [root]
        color[root] = GREY
        while stack:
            node, children = stack[-1]
            for child in children:
                if color[child] == GREY:
                    return path[path.index(child):] + [child]
                if color[child] == WHITE:
                    color[child] = GREY
                    stack.append((child, iter(succ[child])))
                    path.append(child)
                    break
            else:
                color[node] = BLACK
                stack.pop()
                path.pop()
    return None
