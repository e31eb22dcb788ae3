"""Check request bodies against LINE's OpenAPI spec (line/line-openapi `messaging-api.yml`) and its limits;
build webhook events from its `webhook.yml` (`examples`).

    spec = load_spec(directory)                      # a checkout of line-openapi, read at test time
    errors = validate_request(spec, "ReplyMessageRequest", {"replyToken": token, "messages": messages})
    errors += check_limits(messages)                 # what the reference documents but the spec leaves out

A plain JSON-schema check of `Message` would look at `type`, `quickReply` and `sender` only, because
the subtypes hang off an OpenAPI `discriminator`. This validator follows the discriminator's mapping
(type "flex" -> FlexMessage), merges `allOf` with the base, resolves `$ref`s, honours `nullable`, and
also reports properties the merged schema does not declare, so a typo such as `displaytext` fails.
The limits are written here on their own, not imported from the renderer, so the two check each other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

SPEC_FILE = "messaging-api.yml"
WEBHOOK_SPEC_FILE = "webhook.yml"
REF_PREFIX = "#/components/schemas/"

# LINE's documented limits (Messaging API reference) that the OpenAPI file does not state.
LIMITS = {
    "messages": 5,  # per reply or push
    "text": 5000,  # text message
    "quick_reply_items": 13,
    "label": 20,  # quick reply and button labels (LINE allows 40 on Flex buttons; we keep to 20)
    "data": 300,  # postback data
    "display_text": 300,
    "alt_text": 400,  # the reference now allows 1,500; 400 is the older, stricter figure we keep to
    "bubbles": 12,  # per carousel
    "uri": 1000,
    "bubble_bytes": 30_000,  # JSON of one bubble
    "carousel_bytes": 50_000,  # JSON of one carousel
}
URI_SCHEMES = ("http", "https", "line", "tel")  # what a uri action may open
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def spec_path(directory: Path, name: str = SPEC_FILE) -> Path | None:
    """A spec file in a line-openapi directory; None when it is not there."""
    path = Path(directory) / name
    return path if path.is_file() else None


def load_spec(directory: Path, name: str = SPEC_FILE) -> dict[str, Any]:
    """A parsed spec file (messaging-api.yml unless named) of a line-openapi directory."""
    return yaml.safe_load((Path(directory) / name).read_text(encoding="utf-8"))


def validate_request(spec: dict[str, Any], schema_name: str, body: dict[str, Any]) -> list[str]:
    """Errors of `body` against the named request schema, one string each ("path: problem"); [] when valid."""
    checker = _Checker(spec)
    checker.check({"$ref": REF_PREFIX + schema_name}, body, "")
    return checker.errors


def examples(
    spec: dict[str, Any], schema_name: str, *, optional: bool, values: dict[str, Any] | None = None
) -> list[Any]:
    """Instances of a schema built from the spec itself, every subtype it names shown at least once.

    A schema with a discriminator gives one instance per subtype of its mapping (its tag set); an
    enum or a boolean gives one per value; an object gives as many instances as its most varied
    property, cycling through the others' instances; an array holds one item of each kind. With
    `optional` an object carries every property the spec declares, without it the required ones.
    `values` gives a string per property name (ids, texts); other strings are the property's name.
    """
    return _Examples(spec, optional, values or {}).of({"$ref": REF_PREFIX + schema_name}, "")


class _Examples:
    """The walk behind `examples` (references and `allOf` resolved as `_Checker` does)."""

    def __init__(self, spec: dict[str, Any], optional: bool, values: dict[str, Any]):
        self.checker = _Checker(spec)
        self.optional = optional
        self.values = values

    def of(self, schema: dict[str, Any], name: str) -> list[Any]:
        schema, ref = self.checker.resolve(schema)
        discriminator = schema.get("discriminator")
        if discriminator:
            tag_name = discriminator["propertyName"]
            found = []
            for tag, target in discriminator.get("mapping", {}).items():
                found += [{**item, tag_name: tag} for item in self.of({"$ref": target}, name)]
            return found
        parts = self.checker.parts(schema)
        kind = next((part["type"] for part in parts if "type" in part), "object" if len(parts) > 1 else None)
        if "enum" in schema:
            return list(schema["enum"])
        if kind == "object":
            return self.objects(parts, ref)
        if kind == "array":
            items = next(part["items"] for part in parts if "items" in part)
            return [self.of(items, name)]
        if kind == "boolean":
            return [False, True]
        if kind == "integer":
            return [1]
        if kind == "number":
            return [35.6]
        if name in self.values:
            return [self.values[name]]
        return ["https://example.com/" + name if schema.get("format") == "uri" else name]

    def objects(self, parts: list[dict[str, Any]], ref: str | None) -> list[dict[str, Any]]:
        properties, required, extra = self.checker.merged(parts)
        chosen = {key: self.of(schema, key) for key, schema in properties.items() if self.optional or key in required}
        if isinstance(extra, dict) and self.optional:
            chosen["key"] = self.of(extra, "key")
        count = max((len(options) for options in chosen.values()), default=1)
        found = [{key: options[i % len(options)] for key, options in chosen.items()} for i in range(count)]
        # A subtype reached directly (UserSource in a member list) carries its own tag.
        own = {tag_name: tags[0] for tag_name, tags in self.checker.own_tags(parts, ref or "").items()}
        return [{**item, **own} for item in found]


class _Checker:
    """Walks an instance along an OpenAPI 3.0 schema, collecting errors."""

    def __init__(self, spec: dict[str, Any]):
        self.schemas: dict[str, Any] = spec["components"]["schemas"]
        self.errors: list[str] = []

    def error(self, path: str, problem: str) -> None:
        self.errors.append(f"{path or '(body)'}: {problem}")

    def resolve(self, schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The schema behind a `$ref` (followed to the end) and the name of the last one."""
        name = None
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith(REF_PREFIX) or ref[len(REF_PREFIX) :] not in self.schemas:
                raise KeyError(f"unresolvable $ref {ref!r}")
            name = ref[len(REF_PREFIX) :]
            schema = self.schemas[name]
        return schema, name

    def parts(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """The schema and every `allOf` part under it, references resolved."""
        found = [schema]
        for part in schema.get("allOf", []):
            found += self.parts(self.resolve(part)[0])
        return found

    def check(self, schema: dict[str, Any], value: Any, path: str) -> None:
        schema, name = self.resolve(schema)
        if value is None:
            if not schema.get("nullable"):
                self.error(path, "is null")
            return
        discriminator = schema.get("discriminator")
        if discriminator and isinstance(value, dict):
            # A base such as Message: the instance's tag names the subtype to check against.
            tag_name = discriminator["propertyName"]
            tag = value.get(tag_name)
            mapping = discriminator.get("mapping", {})
            if tag not in mapping:
                self.error(_join(path, tag_name), f"{tag!r} is not one of {sorted(mapping)} ({name or 'schema'})")
                return
            schema, name = self.resolve({"$ref": mapping[tag]})
        parts = self.parts(schema)
        if name:
            self.check_tag(parts, name, value, path)
        for part in parts:
            self.check_keywords(part, value, path)
        if isinstance(value, dict):
            self.check_object(parts, value, path)
        elif isinstance(value, list):
            items = next((part["items"] for part in parts if "items" in part), None)
            if items is not None:
                for index, item in enumerate(value):
                    self.check(items, item, f"{path}[{index}]")

    @staticmethod
    def own_tags(parts: list[dict[str, Any]], name: str) -> dict[str, list[str]]:
        """The tags (by tag property) that the bases' discriminators give the subtype `name`."""
        found = {}
        for part in parts[1:]:
            discriminator = part.get("discriminator")
            if discriminator:
                tags = [tag for tag, ref in discriminator.get("mapping", {}).items() if ref == REF_PREFIX + name]
                if tags:
                    found[discriminator["propertyName"]] = tags
        return found

    @staticmethod
    def merged(parts: list[dict[str, Any]]) -> tuple[dict[str, Any], set[str], Any]:
        """The properties, required names and additionalProperties of a schema's parts together."""
        properties: dict[str, Any] = {}
        required: set[str] = set()
        extra: Any = None
        for part in parts:
            properties.update(part.get("properties", {}))
            required.update(part.get("required", []))
            if "additionalProperties" in part:
                extra = part["additionalProperties"]
        return properties, required, extra

    def check_tag(self, parts: list[dict[str, Any]], name: str, value: Any, path: str) -> None:
        """A subtype reached directly (a carousel's FlexBubble) must still carry its own tag."""
        if not isinstance(value, dict):
            return
        for tag_name, tags in self.own_tags(parts, name).items():
            if value.get(tag_name) not in tags:
                self.error(_join(path, tag_name), f"{value.get(tag_name)!r} is not {' or '.join(map(repr, tags))} ({name})")

    def check_object(self, parts: list[dict[str, Any]], value: dict[str, Any], path: str) -> None:
        properties, required, extra = self.merged(parts)
        for key in sorted(required - value.keys()):
            self.error(_join(path, key), "is required")
        for key, item in value.items():
            if key in properties:
                self.check(properties[key], item, _join(path, key))
            elif isinstance(extra, dict):
                self.check(extra, item, _join(path, key))
            elif extra is False or (extra is None and properties):
                self.error(_join(path, key), "is not a property the spec declares here")

    def check_keywords(self, schema: dict[str, Any], value: Any, path: str) -> None:
        """The keywords that look at one value: type, enum, lengths, sizes, bounds, pattern, format."""
        kind = schema.get("type")
        if kind and not _TYPES[kind](value):
            self.error(path, f"{_show(value)} is not of type {kind}")
            return
        if "enum" in schema and value not in schema["enum"]:
            self.error(path, f"{_show(value)} is not one of {schema['enum']}")
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.error(path, f"is longer than {schema['maxLength']} characters")
            if "minLength" in schema and len(value) < schema["minLength"]:
                self.error(path, f"is shorter than {schema['minLength']} characters")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                self.error(path, f"does not match {schema['pattern']}")
            if schema.get("format") == "uri" and not _URI.match(value):
                self.error(path, f"{_show(value)} is not an absolute URI")
        if isinstance(value, list):
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                self.error(path, f"has more than {schema['maxItems']} items")
            if "minItems" in schema and len(value) < schema["minItems"]:
                self.error(path, f"has fewer than {schema['minItems']} items")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "maximum" in schema and value > schema["maximum"]:
                self.error(path, f"is over {schema['maximum']}")
            if "minimum" in schema and value < schema["minimum"]:
                self.error(path, f"is under {schema['minimum']}")
        for keyword, needed in (("oneOf", 1), ("anyOf", None)):
            if keyword in schema:
                fits = sum(1 for option in schema[keyword] if self.fits(option, value, path))
                if (needed is None and fits == 0) or (needed is not None and fits != needed):
                    self.error(path, f"does not match {keyword}")

    def fits(self, schema: dict[str, Any], value: Any, path: str) -> bool:
        """True when `value` passes `schema` (errors found on the way are not kept)."""
        kept = self.errors
        self.errors = []
        try:
            self.check(schema, value, path)
            return not self.errors
        finally:
            self.errors = kept


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


# -- limits ------------------------------------------------------------------------------------------


def _units(text: str) -> int:
    """Length in UTF-16 code units: never less than the character count LINE documents."""
    return len(text.encode("utf-16-le")) // 2


def _walk(node: Any, path: str):
    """Every dict under `node` with its path."""
    if isinstance(node, dict):
        yield node, path
        for key, value in node.items():
            yield from _walk(value, _join(path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _size(node: Any) -> int:
    return len(json.dumps(node, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def check_limits(messages: list[dict[str, Any]]) -> list[str]:
    """Violations of LINE's documented limits that the spec leaves out; [] when there are none."""
    errors: list[str] = []
    if not 1 <= len(messages) <= LIMITS["messages"]:
        errors.append(f"messages: {len(messages)} messages (1 to {LIMITS['messages']} allowed)")
    for index, message in enumerate(messages):
        errors += _message_limits(message, f"messages[{index}]")
    return errors


def _message_limits(message: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    kind = message.get("type")
    if kind == "text":
        text = message.get("text", "")
        if not isinstance(text, str) or not text.strip() or _units(text) > LIMITS["text"]:
            errors.append(f"{path}.text: must be 1 to {LIMITS['text']} characters")
    if kind == "flex":
        alt = message.get("altText", "")
        if not isinstance(alt, str) or not alt.strip() or _units(alt) > LIMITS["alt_text"]:
            errors.append(f"{path}.altText: must be 1 to {LIMITS['alt_text']} characters")
        errors += _container_limits(message.get("contents") or {}, f"{path}.contents")
    items = (message.get("quickReply") or {}).get("items", [])
    if len(items) > LIMITS["quick_reply_items"]:
        errors.append(f"{path}.quickReply.items: {len(items)} items (at most {LIMITS['quick_reply_items']})")
    for number, item in enumerate(items):
        item_path = f"{path}.quickReply.items[{number}]"
        action = item.get("action") or {}
        if item.get("type") != "action":
            errors.append(f"{item_path}.type: must be 'action'")
        if not action.get("label"):
            errors.append(f"{item_path}.action.label: required for quick reply buttons")
        if action.get("type") == "postback" and not action.get("displayText"):
            errors.append(f"{item_path}.action.displayText: required for quick reply postback buttons")
    for node, node_path in _walk(message, path):
        if node.get("type") == "button" and not (node.get("action") or {}).get("label"):
            errors.append(f"{node_path}.action.label: required for Flex buttons")
        action = node.get("action")
        if isinstance(action, dict):
            errors += _action_limits(action, f"{node_path}.action")
    return errors


def _container_limits(container: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    if container.get("type") == "carousel":
        bubbles = container.get("contents") or []
        if len(bubbles) > LIMITS["bubbles"]:
            errors.append(f"{path}.contents: {len(bubbles)} bubbles (at most {LIMITS['bubbles']})")
        if _size(container) > LIMITS["carousel_bytes"]:
            errors.append(f"{path}: carousel JSON over {LIMITS['carousel_bytes']} bytes")
        bubbles_with_paths = [(bubble, f"{path}.contents[{i}]") for i, bubble in enumerate(bubbles)]
    else:
        bubbles_with_paths = [(container, path)]
    for bubble, bubble_path in bubbles_with_paths:
        if _size(bubble) > LIMITS["bubble_bytes"]:
            errors.append(f"{bubble_path}: bubble JSON over {LIMITS['bubble_bytes']} bytes")
    return errors


def _action_limits(action: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    label = action.get("label")
    if isinstance(label, str) and _units(label) > LIMITS["label"]:
        errors.append(f"{path}.label: {label!r} is over {LIMITS['label']} characters")
    for key, limit in (("data", "data"), ("displayText", "display_text")):
        value = action.get(key)
        if isinstance(value, str) and _units(value) > LIMITS[limit]:
            errors.append(f"{path}.{key}: over {LIMITS[limit]} characters")
    if action.get("type") == "uri":
        uri = action.get("uri", "")
        scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
        if scheme not in URI_SCHEMES:
            errors.append(f"{path}.uri: {uri!r} must start with one of {', '.join(s + ':' for s in URI_SCHEMES)}")
        if _units(uri) > LIMITS["uri"]:
            errors.append(f"{path}.uri: over {LIMITS['uri']} characters")
    return errors
