"""The fake Discord's interaction REST routes: the initial response, and the webhook after it.

``POST /interactions/{id}/{token}/callback`` takes the one initial response an interaction
gets: 4 (message), 5 (deferred, "thinking"), 6 / 7 (deferred or immediate update of the
message a component is on), 8 (autocomplete choices, at most 25), 9 (modal). A second one is
400 40060; one after Discord's 3-second deadline (``ack_deadline`` on the fake clock) is 404
10062 and the interaction is marked expired; a type that does not fit the interaction is
400 50035. ``?with_response=true`` returns the interaction callback resource.

``/webhooks/{application_id}/{token}`` then lets the bot post followups and get, edit or
delete the original response and its followups, for ``token_lifetime`` (15 minutes): an old
or unknown token is 401 50027, a token of an interaction that was never acknowledged 404
10015. Each is written to ``rule_violations``. Messages are built and stored by
:class:`~tests.fakes.discord_rest_messages.ChannelMessages`, with the same limits as
channel messages (and an ephemeral flag allowed).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.discord_models import (
    FLAG_LOADING,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    FakeInteraction,
    FakeInteractionResponse,
    FakeMessage,
)
from tests.fakes.discord_rest import (
    TRUE_VALUES,
    Rejected,
    RestCall,
    Route,
    invalid_form,
    json_response,
)
from tests.fakes.discord_rest_messages import ChannelMessages
from tests.fakes.discord_rules import (
    FormError,
    check_choices,
    check_message,
    check_modal,
)
from tests.fakes.discord_state import DiscordState

# Message types of an interaction's response: a slash command's, a context menu's.
_CHAT_INPUT_RESPONSE = 20
_CONTEXT_MENU_RESPONSE = 23


class InteractionResponses:
    """Interaction callbacks and the interaction webhook."""

    def __init__(self, state: DiscordState, messages: ChannelMessages) -> None:
        self.state = state
        self.messages = messages

    def routes(self) -> list[Route]:
        """What this module serves (no bot token: the interaction token is in the URL)."""
        hook = "/webhooks/{app}/{token}"
        return [
            Route("POST", "/interactions/{interaction_id}/{token}/callback", self._callback, False),
            Route("POST", hook, self._followup, False),
            Route("GET", f"{hook}/messages/{{message_id}}", self._get_webhook_msg, False),
            Route("PATCH", f"{hook}/messages/{{message_id}}", self._edit_webhook_msg, False),
            Route("DELETE", f"{hook}/messages/{{message_id}}", self._del_webhook_msg, False),
        ]

    # -- the initial response --------------------------------------------------------------

    async def _callback(self, call: RestCall) -> web.Response:
        state, messages = self.state, self.messages
        where = f"interaction {call.params['interaction_id']} callback"
        interaction = state.interactions.get(int(call.params["interaction_id"]))
        if interaction is None or interaction.token != call.params["token"]:
            raise Rejected(404, 10062, "Unknown interaction", f"{where}: unknown interaction")
        body = call.json_object
        rtype = body.get("type")
        data = body.get("data") if isinstance(body.get("data"), dict) else None
        now = state.now()
        response = FakeInteractionResponse(
            type=rtype if isinstance(rtype, int) else -1, data=data, at=now, accepted=False
        )
        interaction.responses.append(response)
        label = f"{where} ({interaction.label}, type {rtype})"
        if interaction.acked:
            raise Rejected(
                400,
                40060,
                "Interaction has already been acknowledged.",
                f"{label}: second initial response",
            )
        age = (now - interaction.created_at).total_seconds()
        if interaction.expired or age > state.ack_deadline:
            interaction.expired = True
            raise Rejected(
                404,
                10062,
                "Unknown interaction",
                f"{label}: answered after {age:.2f} s (deadline {state.ack_deadline:g} s)",
            )
        is_component = interaction.type == INTERACTION_COMPONENT
        channel = state.channels[interaction.channel_id]
        message: FakeMessage | None = None
        if rtype == 4:
            errors = check_message(data or {}, allow_ephemeral=True)
            if errors:
                raise invalid_form(label, [_under_data(e) for e in errors])
            messages.check_upload_limit(channel, call.files, label)
            message = messages.build(interaction.channel_id, data or {}, call.files)
            messages.require_content(message, label, data or {})
            message.message_type = _response_message_type(interaction)
        elif rtype == 5:
            flags = int((data or {}).get("flags") or 0)
            message = messages.build(interaction.channel_id, {"flags": flags | FLAG_LOADING}, [])
            message.message_type = _response_message_type(interaction)
        elif rtype in (6, 7) and is_component:
            target = state.messages_by_id.get(interaction.message_id or 0)
            if target is None or target.deleted:
                raise Rejected(404, 10008, "Unknown Message", f"{label}: message is gone")
            if rtype == 7:
                errors = check_message(data or {}, allow_ephemeral=False)
                if errors:
                    raise invalid_form(label, [_under_data(e) for e in errors])
                messages.check_upload_limit(channel, call.files, label)
                messages.edit(target, data or {}, call.files, label)
            interaction.original_message = target
        elif rtype == 8 and interaction.type == INTERACTION_AUTOCOMPLETE:
            errors = check_choices(data)
            if errors:
                raise invalid_form(label, errors)
            interaction.choices = list((data or {}).get("choices") or [])
        elif rtype == 9:
            errors = check_modal(data)
            if errors:
                raise invalid_form(label, errors)
        else:
            errors = [
                FormError(
                    ("type",),
                    "INTERACTION_RESPONSE_TYPE_INVALID",
                    f"Response type {rtype} is not valid for this interaction",
                )
            ]
            raise invalid_form(label, errors)
        response.accepted = True
        interaction.acked_at = now
        if message is not None:
            message.interaction_id = interaction.id
            message.webhook_id = state.application_id
            interaction.ephemeral = message.ephemeral
            interaction.original_message = message
            messages.store(message)
        state.notify()
        if call.query.get("with_response") not in TRUE_VALUES:
            return web.Response(status=204)
        result: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": interaction.ephemeral,
            }
        }
        shown = (
            message
            if message is not None
            else (interaction.original_message if rtype == 7 else None)
        )
        if shown is not None:
            result["interaction"]["response_message_id"] = str(shown.id)
            result["resource"] = {"type": rtype, "message": state.message_json(shown)}
        elif rtype is not None:
            result["resource"] = {"type": rtype}
        return json_response(200, result)

    # -- the webhook -----------------------------------------------------------------------

    def _webhook_interaction(self, call: RestCall, what: str) -> FakeInteraction:
        """The interaction behind ``/webhooks/{app}/{token}``, if its token still works."""
        state = self.state
        if int(call.params["app"]) != state.application_id:
            raise Rejected(404, 10015, "Unknown Webhook", f"{what}: not our app")
        interaction = state.interactions_by_token.get(call.params["token"])
        if interaction is None:
            raise Rejected(401, 50027, "Invalid Webhook Token", f"{what}: unknown token")
        where = f"{what} for interaction {interaction.id} ({interaction.label})"
        age = (state.now() - interaction.created_at).total_seconds()
        if age > state.token_lifetime:
            raise Rejected(
                401,
                50027,
                "Invalid Webhook Token",
                f"{where}: token is {age:.0f} s old (lifetime {state.token_lifetime:g} s)",
            )
        if not interaction.acked:
            raise Rejected(404, 10015, "Unknown Webhook", f"{where}: interaction not acknowledged")
        return interaction

    @staticmethod
    def _webhook_message(interaction: FakeInteraction, message_id: str) -> FakeMessage:
        if message_id == "@original":
            message = interaction.original_message
        else:
            candidates = [*interaction.followups]
            if interaction.original_message is not None:
                candidates.append(interaction.original_message)
            message = next((m for m in candidates if m.id == int(message_id)), None)
        if message is None or message.deleted:
            raise Rejected(404, 10008, "Unknown Message")
        return message

    async def _followup(self, call: RestCall) -> web.Response:
        state, messages = self.state, self.messages
        interaction = self._webhook_interaction(call, "followup")
        where = f"followup for interaction {interaction.id}"
        body = call.json_object
        errors = check_message(body, allow_ephemeral=True)
        if errors:
            raise invalid_form(where, errors)
        messages.check_upload_limit(state.channels[interaction.channel_id], call.files, where)
        message = messages.build(interaction.channel_id, body, call.files)
        messages.require_content(message, where, body)
        message.interaction_id = interaction.id
        message.webhook_id = state.application_id
        interaction.followups.append(message)
        messages.store(message)
        if call.query.get("wait") not in TRUE_VALUES:
            return web.Response(status=204)
        return json_response(200, state.message_json(message))

    async def _get_webhook_msg(self, call: RestCall) -> web.Response:
        interaction = self._webhook_interaction(call, "get webhook message")
        message = self._webhook_message(interaction, call.params["message_id"])
        return json_response(200, self.state.message_json(message))

    async def _edit_webhook_msg(self, call: RestCall) -> web.Response:
        state, messages = self.state, self.messages
        interaction = self._webhook_interaction(call, "edit webhook message")
        message = self._webhook_message(interaction, call.params["message_id"])
        where = f"edit {call.params['message_id']} of interaction {interaction.id}"
        body = call.json_object
        errors = check_message(body, allow_ephemeral=True)
        if errors:
            raise invalid_form(where, errors)
        messages.check_upload_limit(state.channels[interaction.channel_id], call.files, where)
        messages.edit(message, body, call.files, where)
        return json_response(200, state.message_json(message))

    async def _del_webhook_msg(self, call: RestCall) -> web.Response:
        interaction = self._webhook_interaction(call, "delete webhook message")
        self.messages.delete(self._webhook_message(interaction, call.params["message_id"]))
        return web.Response(status=204)


def _response_message_type(interaction: FakeInteraction) -> int:
    """The type of the message that answers ``interaction`` (0 for a component's)."""
    if interaction.type == INTERACTION_COMPONENT:
        return 0
    if interaction.payload["data"].get("type", 1) != 1:
        return _CONTEXT_MENU_RESPONSE
    return _CHAT_INPUT_RESPONSE


def _under_data(error: FormError) -> FormError:
    """An error inside an interaction response's ``data`` object."""
    return FormError(("data", *error.path), error.code, error.message)
