"""Discord's limits on what a bot sends, checked the way Discord checks them.

Each ``check_*`` function returns a list of :class:`FormError`; the fake answers a non-empty
list with HTTP 400, code 50035 "Invalid Form Body", and Discord's nested ``errors`` object
(:func:`invalid_form_body`), which discord.py flattens to "In embeds.0.title: Must be 256 or
fewer in length.". The numbers are the constants below; docs/testing-fake-discord.md lists
every rule the fake enforces, with its number and its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.discord_models import FLAG_COMPONENTS_V2, FLAG_EPHEMERAL

# Discord's documented limits on messages, components, commands and interaction responses.
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TITLE = 256
MAX_EMBED_DESCRIPTION = 4096
MAX_EMBED_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER_TEXT = 2048
MAX_AUTHOR_NAME = 256
MAX_EMBED_TOTAL = 6000
MAX_ACTION_ROWS = 5
MAX_ROW_BUTTONS = 5
MAX_V2_COMPONENTS = 40
MAX_BUTTON_LABEL = 80
MAX_CUSTOM_ID = 100
MAX_BUTTON_URL = 512
MAX_NONCE = 25
MAX_SELECT_OPTIONS = 25
MAX_MENTION_IDS = 100
MAX_COMMANDS = 100
MAX_CONTEXT_COMMANDS = 5
MAX_COMMAND_NAME = 32
MAX_COMMAND_DESCRIPTION = 100
MAX_COMMAND_OPTIONS = 25
MAX_COMMAND_CHARS = 8000
MAX_MODAL_TITLE = 45
MAX_AUTOCOMPLETE_CHOICES = 25
MAX_CHOICE_NAME = 100

URL_SCHEMES = ("http", "https")
EMBED_URL_SCHEMES = ("http", "https", "attachment")
BUTTON_URL_SCHEMES = ("http", "https", "discord")
SELECT_TYPES = (3, 5, 6, 7, 8)
_COMMAND_NAME = re.compile(r"[-_'\w]{1,32}")
_USER_MENTION = re.compile(r"<@!?(\d{15,20})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,20})>")


@dataclass(frozen=True)
class FormError:
    """One problem at ``path`` inside the request body (``("embeds", 0, "title")``)."""

    path: tuple[str | int, ...]
    code: str
    message: str

    def describe(self) -> str:
        """``embeds.0.title: Must be 256 or fewer in length.``"""
        where = ".".join(str(p) for p in self.path) or "body"
        return f"{where}: {self.message}"


def invalid_form_body(errors: list[FormError]) -> dict[str, Any]:
    """Discord's 50035 body with the nested ``errors`` object."""
    tree: dict[str, Any] = {}
    for error in errors:
        node = tree
        for part in error.path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": error.code, "message": error.message})
    return {"message": "Invalid Form Body", "code": 50035, "errors": tree}


def _too_long(path: tuple[str | int, ...], limit: int) -> FormError:
    return FormError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _required(path: tuple[str | int, ...]) -> FormError:
    return FormError(path, "BASE_TYPE_REQUIRED", "This field is required")


def _bad_url(
    path: tuple[str | int, ...], value: object, schemes: tuple[str, ...]
) -> FormError | None:
    if not isinstance(value, str) or not value:
        return FormError(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(repr(s) for s in schemes)
        return FormError(
            path,
            "URL_TYPE_INVALID_SCHEME",
            f'Scheme "{parts.scheme}" is not supported. Scheme must be one of ({allowed}).',
        )
    if parts.scheme in URL_SCHEMES and not parts.netloc:
        return FormError(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# -- messages --------------------------------------------------------------------------------


def check_message(payload: dict[str, Any], *, allow_ephemeral: bool) -> list[FormError]:
    """Every limit on a message create or edit body (content, embeds, components, nonce...)."""
    errors: list[FormError] = []
    content = payload.get("content")
    if content is not None:
        if not isinstance(content, str):
            errors.append(FormError(("content",), "BASE_TYPE_STRING", "Must be a string."))
        elif len(content) > MAX_CONTENT:
            errors.append(_too_long(("content",), MAX_CONTENT))
    embeds = payload.get("embeds")
    if embeds is not None:
        errors.extend(check_embeds(embeds))
    flags = payload.get("flags") or 0
    if not isinstance(flags, int):
        errors.append(FormError(("flags",), "NUMBER_TYPE_COERCE", "Value is not int."))
        flags = 0
    components = payload.get("components")
    if components is not None:
        errors.extend(check_components(components, v2=bool(flags & FLAG_COMPONENTS_V2)))
    if flags & FLAG_COMPONENTS_V2 and (content or embeds):
        errors.append(
            FormError(
                ("content" if content else "embeds",),
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' and 'embeds' fields cannot be used when using "
                "MessageFlags.IS_COMPONENTS_V2",
            )
        )
    if flags & FLAG_EPHEMERAL and not allow_ephemeral:
        errors.append(FormError(("flags",), "MESSAGE_FLAGS_INVALID", "Invalid flags."))
    nonce = payload.get("nonce")
    if nonce is not None:
        if isinstance(nonce, str):
            if len(nonce) > MAX_NONCE:
                errors.append(_too_long(("nonce",), MAX_NONCE))
        elif not isinstance(nonce, int) or isinstance(nonce, bool):
            errors.append(FormError(("nonce",), "BASE_TYPE_BAD_TYPE", "Must be a string or int."))
    mentions = payload.get("allowed_mentions")
    if mentions is not None:
        errors.extend(check_allowed_mentions(mentions))
    return errors


def check_embeds(embeds: object) -> list[FormError]:
    """Count, per-field lengths, URL schemes and the 6000-character total."""
    if not isinstance(embeds, list):
        return [FormError(("embeds",), "BASE_TYPE_ARRAY", "Must be an array.")]
    errors: list[FormError] = []
    if len(embeds) > MAX_EMBEDS:
        errors.append(_too_long(("embeds",), MAX_EMBEDS))
    total = 0
    for i, embed in enumerate(embeds):
        where: tuple[str | int, ...] = ("embeds", i)
        if not isinstance(embed, dict):
            errors.append(FormError(where, "MODEL_TYPE_CONVERT", "Only dictionaries may be used."))
            continue
        title, description = _text(embed.get("title")), _text(embed.get("description"))
        total += len(title) + len(description)
        if len(title) > MAX_EMBED_TITLE:
            errors.append(_too_long((*where, "title"), MAX_EMBED_TITLE))
        if len(description) > MAX_EMBED_DESCRIPTION:
            errors.append(_too_long((*where, "description"), MAX_EMBED_DESCRIPTION))
        if "url" in embed and embed["url"] is not None:
            bad = _bad_url((*where, "url"), embed["url"], EMBED_URL_SCHEMES)
            errors.extend([bad] if bad else [])
        color = embed.get("color")
        if color is not None and (not isinstance(color, int) or not 0 <= color <= 0xFFFFFF):
            errors.append(
                FormError((*where, "color"), "NUMBER_TYPE_MAX", "int value should be <= 16777215.")
            )
        fields = embed.get("fields") or []
        if not isinstance(fields, list):
            fields = []
        if len(fields) > MAX_EMBED_FIELDS:
            errors.append(_too_long((*where, "fields"), MAX_EMBED_FIELDS))
        for j, fld in enumerate(fields):
            fwhere = (*where, "fields", j)
            name = _text(fld.get("name")) if isinstance(fld, dict) else ""
            value = _text(fld.get("value")) if isinstance(fld, dict) else ""
            total += len(name) + len(value)
            if not name:
                errors.append(_required((*fwhere, "name")))
            elif len(name) > MAX_FIELD_NAME:
                errors.append(_too_long((*fwhere, "name"), MAX_FIELD_NAME))
            if not value:
                errors.append(_required((*fwhere, "value")))
            elif len(value) > MAX_FIELD_VALUE:
                errors.append(_too_long((*fwhere, "value"), MAX_FIELD_VALUE))
        footer = embed.get("footer")
        if isinstance(footer, dict):
            text = _text(footer.get("text"))
            total += len(text)
            if not text:
                errors.append(_required((*where, "footer", "text")))
            elif len(text) > MAX_FOOTER_TEXT:
                errors.append(_too_long((*where, "footer", "text"), MAX_FOOTER_TEXT))
            if footer.get("icon_url"):
                bad = _bad_url(
                    (*where, "footer", "icon_url"), footer["icon_url"], EMBED_URL_SCHEMES
                )
                errors.extend([bad] if bad else [])
        author = embed.get("author")
        if isinstance(author, dict):
            name = _text(author.get("name"))
            total += len(name)
            if not name:
                errors.append(_required((*where, "author", "name")))
            elif len(name) > MAX_AUTHOR_NAME:
                errors.append(_too_long((*where, "author", "name"), MAX_AUTHOR_NAME))
            for key in ("url", "icon_url"):
                if author.get(key):
                    bad = _bad_url((*where, "author", key), author[key], EMBED_URL_SCHEMES)
                    errors.extend([bad] if bad else [])
        for key in ("image", "thumbnail"):
            media = embed.get(key)
            if isinstance(media, dict):
                bad = _bad_url((*where, key, "url"), media.get("url"), EMBED_URL_SCHEMES)
                errors.extend([bad] if bad else [])
    if total > MAX_EMBED_TOTAL:
        errors.append(
            FormError(
                ("embeds",),
                "MAX_EMBED_SIZE_EXCEEDED",
                f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}",
            )
        )
    return errors


def check_components(components: object, *, v2: bool = False) -> list[FormError]:
    """Action rows of buttons/selects (or a components-v2 tree) and their fields."""
    if not isinstance(components, list):
        return [FormError(("components",), "BASE_TYPE_ARRAY", "Must be an array.")]
    errors: list[FormError] = []
    custom_ids: set[str] = set()
    if v2:
        count = _count_components(components)
        if count > MAX_V2_COMPONENTS:
            errors.append(_too_long(("components",), MAX_V2_COMPONENTS))
        _walk_v2(components, ("components",), errors, custom_ids)
        return errors
    if len(components) > MAX_ACTION_ROWS:
        errors.append(_too_long(("components",), MAX_ACTION_ROWS))
    for i, row in enumerate(components):
        where: tuple[str | int, ...] = ("components", i)
        if not isinstance(row, dict) or row.get("type") != 1:
            errors.append(
                FormError(
                    (*where, "type"),
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
            )
            continue
        errors.extend(_check_row(row, where, custom_ids))
    return errors


def _count_components(components: list[Any]) -> int:
    count = 0
    for comp in components:
        if isinstance(comp, dict):
            count += 1
            children = comp.get("components")
            if isinstance(children, list):
                count += _count_components(children)
            if isinstance(comp.get("accessory"), dict):
                count += 1
    return count


def _walk_v2(
    components: list[Any],
    where: tuple[str | int, ...],
    errors: list[FormError],
    custom_ids: set[str],
) -> None:
    for i, comp in enumerate(components):
        if not isinstance(comp, dict):
            continue
        here = (*where, i)
        if comp.get("type") == 1:
            errors.extend(_check_row(comp, here, custom_ids))
            continue
        if comp.get("type") == 2:
            errors.extend(_check_button(comp, here, custom_ids))
        accessory = comp.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == 2:
            errors.extend(_check_button(accessory, (*here, "accessory"), custom_ids))
        children = comp.get("components")
        if isinstance(children, list):
            _walk_v2(children, (*here, "components"), errors, custom_ids)


def _check_row(
    row: dict[str, Any], where: tuple[str | int, ...], custom_ids: set[str]
) -> list[FormError]:
    errors: list[FormError] = []
    children = row.get("components")
    if not isinstance(children, list) or not children:
        return [
            FormError(
                (*where, "components"), "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length."
            )
        ]
    if len(children) > MAX_ROW_BUTTONS:
        errors.append(_too_long((*where, "components"), MAX_ROW_BUTTONS))
    has_select = any(isinstance(c, dict) and c.get("type") in SELECT_TYPES for c in children)
    if has_select and len(children) > 1:
        errors.append(
            FormError(
                (*where, "components"),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            )
        )
    for j, comp in enumerate(children):
        here = (*where, "components", j)
        if not isinstance(comp, dict):
            errors.append(FormError(here, "MODEL_TYPE_CONVERT", "Only dictionaries may be used."))
        elif comp.get("type") == 2:
            errors.extend(_check_button(comp, here, custom_ids))
        elif comp.get("type") in SELECT_TYPES:
            errors.extend(_check_select(comp, here, custom_ids))
        else:
            errors.append(
                FormError(
                    (*here, "type"),
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (2, 3, 5, 6, 7, 8).',
                )
            )
    return errors


def _check_custom_id(
    comp: dict[str, Any], where: tuple[str | int, ...], custom_ids: set[str]
) -> list[FormError]:
    custom_id = comp.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return [_required((*where, "custom_id"))]
    if len(custom_id) > MAX_CUSTOM_ID:
        return [_too_long((*where, "custom_id"), MAX_CUSTOM_ID)]
    if custom_id in custom_ids:
        return [
            FormError(
                (*where, "custom_id"),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        ]
    custom_ids.add(custom_id)
    return []


def _check_button(
    button: dict[str, Any], where: tuple[str | int, ...], custom_ids: set[str]
) -> list[FormError]:
    errors: list[FormError] = []
    style = button.get("style")
    if style not in (1, 2, 3, 4, 5, 6):
        errors.append(
            FormError((*where, "style"), "BASE_TYPE_CHOICES", "Value must be one of (1..6).")
        )
        return errors
    label = button.get("label")
    if isinstance(label, str) and len(label) > MAX_BUTTON_LABEL:
        errors.append(_too_long((*where, "label"), MAX_BUTTON_LABEL))
    if style != 6 and not label and not button.get("emoji"):
        errors.append(
            FormError(
                (*where, "label"),
                "BUTTON_COMPONENT_LABEL_REQUIRED",
                "A label or an emoji is required.",
            )
        )
    if style == 5:
        url = button.get("url")
        if not url:
            errors.append(
                FormError((*where, "url"), "BUTTON_COMPONENT_URL_REQUIRED", "A url is required")
            )
        elif isinstance(url, str) and len(url) > MAX_BUTTON_URL:
            errors.append(_too_long((*where, "url"), MAX_BUTTON_URL))
        else:
            bad = _bad_url((*where, "url"), url, BUTTON_URL_SCHEMES)
            errors.extend([bad] if bad else [])
        if button.get("custom_id") is not None:
            errors.append(
                FormError(
                    (*where, "custom_id"),
                    "BUTTON_COMPONENT_INVALID_FIELD",
                    "A custom id cannot be specified with a link button",
                )
            )
    elif style == 6:
        if not button.get("sku_id"):
            errors.append(_required((*where, "sku_id")))
    else:
        if button.get("url") is not None:
            errors.append(
                FormError(
                    (*where, "url"),
                    "BUTTON_COMPONENT_INVALID_FIELD",
                    "A url can only be specified with a link button",
                )
            )
        errors.extend(_check_custom_id(button, where, custom_ids))
    return errors


def _check_select(
    select: dict[str, Any], where: tuple[str | int, ...], custom_ids: set[str]
) -> list[FormError]:
    errors = _check_custom_id(select, where, custom_ids)
    placeholder = select.get("placeholder")
    if isinstance(placeholder, str) and len(placeholder) > 150:
        errors.append(_too_long((*where, "placeholder"), 150))
    if select.get("type") == 3:
        options = select.get("options")
        if not isinstance(options, list) or not options:
            errors.append(
                FormError(
                    (*where, "options"), "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length."
                )
            )
        elif len(options) > MAX_SELECT_OPTIONS:
            errors.append(_too_long((*where, "options"), MAX_SELECT_OPTIONS))
        else:
            for k, option in enumerate(options):
                for key in ("label", "value", "description"):
                    text = option.get(key) if isinstance(option, dict) else None
                    if isinstance(text, str) and len(text) > 100:
                        errors.append(_too_long((*where, "options", k, key), 100))
    return errors


def check_allowed_mentions(mentions: object) -> list[FormError]:
    """``parse`` values, list sizes, and the parse/list exclusivity Discord enforces."""
    if not isinstance(mentions, dict):
        return [FormError(("allowed_mentions",), "MODEL_TYPE_CONVERT", "Must be an object.")]
    errors: list[FormError] = []
    parse = mentions.get("parse") or []
    for kind in ("users", "roles"):
        ids = mentions.get(kind) or []
        if len(ids) > MAX_MENTION_IDS:
            errors.append(_too_long(("allowed_mentions", kind), MAX_MENTION_IDS))
        if kind in parse and ids:
            errors.append(
                FormError(
                    ("allowed_mentions", "parse"),
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )
            )
    for value in parse:
        if value not in ("users", "roles", "everyone"):
            errors.append(
                FormError(
                    ("allowed_mentions", "parse"),
                    "BASE_TYPE_CHOICES",
                    f"Value must be one of {{'users', 'roles', 'everyone'}} (got {value!r}).",
                )
            )
    return errors


def pinged_by(
    content: str,
    allowed_mentions: dict[str, Any] | None,
    *,
    replied_user_id: int | None = None,
) -> dict[str, Any]:
    """Who a message would notify: mentions in ``content`` that ``allowed_mentions`` lets through.

    Without ``allowed_mentions`` Discord parses everything. Permissions are not consulted
    (a role or @everyone counts even if the bot could not ping it in a given server): this
    reports what the bot *asked* for.
    """
    users = [int(x) for x in _USER_MENTION.findall(content)]
    roles = [int(x) for x in _ROLE_MENTION.findall(content)]
    everyone = "@everyone" in content or "@here" in content
    if allowed_mentions is None:
        allowed_users: list[int] = list(dict.fromkeys(users))
        allowed_roles: list[int] = list(dict.fromkeys(roles))
        allow_everyone = everyone
        replied = replied_user_id is not None
    else:
        parse = allowed_mentions.get("parse") or []
        listed_users = {int(x) for x in allowed_mentions.get("users") or []}
        listed_roles = {int(x) for x in allowed_mentions.get("roles") or []}
        allowed_users = list(
            dict.fromkeys(u for u in users if "users" in parse or u in listed_users)
        )
        allowed_roles = list(
            dict.fromkeys(r for r in roles if "roles" in parse or r in listed_roles)
        )
        allow_everyone = everyone and "everyone" in parse
        replied = replied_user_id is not None and bool(allowed_mentions.get("replied_user"))
    if replied and replied_user_id is not None and replied_user_id not in allowed_users:
        allowed_users.append(replied_user_id)
    return {"users": allowed_users, "roles": allowed_roles, "everyone": allow_everyone}


# -- interaction responses -------------------------------------------------------------------


def check_modal(data: object) -> list[FormError]:
    """A modal (response type 9): custom_id, title and 1-5 rows."""
    if not isinstance(data, dict):
        return [_required(("data",))]
    errors = _check_custom_id(data, ("data",), set())
    title = data.get("title")
    if not isinstance(title, str) or not title:
        errors.append(_required(("data", "title")))
    elif len(title) > MAX_MODAL_TITLE:
        errors.append(_too_long(("data", "title"), MAX_MODAL_TITLE))
    components = data.get("components")
    if not isinstance(components, list) or not 1 <= len(components) <= MAX_ACTION_ROWS:
        errors.append(
            FormError(("data", "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5.")
        )
    return errors


def check_choices(data: object) -> list[FormError]:
    """An autocomplete answer (response type 8): at most 25 choices, names 1-100, a value each."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        return [_required(("data", "choices"))]
    errors: list[FormError] = []
    if len(choices) > MAX_AUTOCOMPLETE_CHOICES:
        errors.append(_too_long(("data", "choices"), MAX_AUTOCOMPLETE_CHOICES))
    for index, choice in enumerate(choices):
        name = choice.get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_CHOICE_NAME:
            errors.append(
                FormError(
                    ("data", "choices", index, "name"),
                    "BASE_TYPE_BAD_LENGTH",
                    f"Must be between 1 and {MAX_CHOICE_NAME} in length.",
                )
            )
        if not isinstance(choice, dict) or "value" not in choice:
            errors.append(_required(("data", "choices", index, "value")))
    return errors


# -- application commands --------------------------------------------------------------------


def check_commands(commands: object) -> list[FormError]:
    """A bulk-overwrite body: counts, names, descriptions, options and size per command."""
    if not isinstance(commands, list):
        return [FormError((), "BASE_TYPE_ARRAY", "Must be an array.")]
    errors: list[FormError] = []
    per_type: dict[int, set[str]] = {}
    for i, command in enumerate(commands):
        if not isinstance(command, dict):
            errors.append(FormError((i,), "MODEL_TYPE_CONVERT", "Only dictionaries may be used."))
            continue
        kind = command.get("type", 1)
        name = command.get("name")
        names = per_type.setdefault(kind, set())
        if isinstance(name, str):
            if name in names:
                errors.append(
                    FormError(
                        (i, "name"),
                        "APPLICATION_COMMANDS_DUPLICATE_NAME",
                        f"Application command names must be unique (got {name!r} twice).",
                    )
                )
            names.add(name)
        errors.extend(_check_command(command, (i,), chat_input=kind == 1))
        if _command_chars(command) > MAX_COMMAND_CHARS:
            errors.append(
                FormError(
                    (i,),
                    "APPLICATION_COMMAND_TOO_LARGE",
                    f"Command exceeds maximum size ({MAX_COMMAND_CHARS})",
                )
            )
    for kind, names in per_type.items():
        limit = MAX_COMMANDS if kind == 1 else MAX_CONTEXT_COMMANDS
        if len(names) > limit:
            errors.append(
                FormError(
                    (),
                    "APPLICATION_COMMANDS_TOO_MANY",
                    f"Must be {limit} or fewer commands of type {kind}.",
                )
            )
    return errors


def _check_name(name: object, where: tuple[str | int, ...], *, chat_input: bool) -> list[FormError]:
    if not isinstance(name, str) or not name:
        return [_required((*where, "name"))]
    if len(name) > MAX_COMMAND_NAME:
        return [_too_long((*where, "name"), MAX_COMMAND_NAME)]
    if chat_input and (not _COMMAND_NAME.fullmatch(name) or name != name.lower()):
        return [
            FormError(
                (*where, "name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                f"Command name is invalid ({name!r}).",
            )
        ]
    return []


def _check_description(description: object, where: tuple[str | int, ...]) -> list[FormError]:
    if not isinstance(description, str) or not description:
        return [_required((*where, "description"))]
    if len(description) > MAX_COMMAND_DESCRIPTION:
        return [_too_long((*where, "description"), MAX_COMMAND_DESCRIPTION)]
    return []


def _check_command(
    command: dict[str, Any], where: tuple[str | int, ...], *, chat_input: bool
) -> list[FormError]:
    errors = _check_name(command.get("name"), where, chat_input=chat_input)
    if chat_input:
        errors.extend(_check_description(command.get("description"), where))
    options = command.get("options") or []
    if len(options) > MAX_COMMAND_OPTIONS:
        errors.append(_too_long((*where, "options"), MAX_COMMAND_OPTIONS))
    seen_optional = False
    for k, option in enumerate(options):
        here = (*where, "options", k)
        if not isinstance(option, dict):
            continue
        errors.extend(_check_name(option.get("name"), here, chat_input=True))
        errors.extend(_check_description(option.get("description"), here))
        if option.get("type") in (1, 2):
            errors.extend(_check_command(option, here, chat_input=True))
            continue
        if option.get("required"):
            if seen_optional:
                errors.append(
                    FormError(
                        (*here, "required"),
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
                )
        else:
            seen_optional = True
        choices = option.get("choices") or []
        if len(choices) > MAX_SELECT_OPTIONS:
            errors.append(_too_long((*here, "choices"), MAX_SELECT_OPTIONS))
    return errors


def _command_chars(command: dict[str, Any]) -> int:
    total = len(_text(command.get("name"))) + len(_text(command.get("description")))
    for option in command.get("options") or []:
        if isinstance(option, dict):
            total += _command_chars(option)
            for choice in option.get("choices") or []:
                if isinstance(choice, dict):
                    total += len(_text(choice.get("name"))) + len(str(choice.get("value", "")))
    return total
