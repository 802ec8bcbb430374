"""The policy chain: every message through the relay is judged here, in order.

Client to server: a ``tools/call`` passes allow/deny, pinning, arguments,
limits and approval, in that order, and the first rule that objects answers it
(a tool result with ``isError`` the model can read, naming the rule and how a
person can allow it). Server to client: listings are filtered (allow/deny,
pins, suspicious definitions), server requests are allowed, denied or held for
approval, and everything the client will read is cleaned (terminal escapes,
invisible Unicode, credentials). A message no rule touches is forwarded as the
bytes received. An exception inside a rule blocks the message: the chain fails
closed, never open.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcpbox import jsonrpc
from mcpbox.errors import RPC_CALL_TIMEOUT, RPC_POLICY_REFUSED, PinError
from mcpbox.jsonrpc import Kind, Message, RequestId
from mcpbox.policy import output
from mcpbox.policy.approvals import APPROVAL_KEY, Ask, Desk, StateSigner, approval_schema, approved, call_digest
from mcpbox.policy.decision import FORWARD, Effects, Verdict
from mcpbox.policy.limits import Limits
from mcpbox.policy.pinning import Judgement, Pinning, ToolView
from mcpbox.policy.pins import PinFile, PinStore, digest
from mcpbox.profile.model import Profile

PROTOCOL_META = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
JUDGED_REQUESTS = {"tools/call", "prompts/get", "resources/read", "resources/subscribe"}
LISTINGS = {"tools/list", "prompts/list", "resources/list", "resources/templates/list"}
REMEMBERED = LISTINGS | {"initialize", "server/discover", "tools/call", "prompts/get", "resources/read"}
MAX_SHOWN_ARGUMENTS = 2000
MAX_HELD = 64  # server messages waiting for a person at once: past it a server is flooding, not asking


@dataclass
class Held:
    """A message waiting for a person: released, or answered with a refusal."""

    message: dict[str, Any]
    what: str
    release: Callable[[], None]
    refuse: Callable[[str], None]
    cancel_timer: Callable[[], None]
    ask_id: str | None = None  # on the approval desk
    own_id: str | None = None  # mcpbox's own elicitation/create to the client


def is_modern(params: object) -> bool:
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_META in meta


def tool_error(ident: RequestId | None, text: str, *, modern: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if modern:
        result["resultType"] = "complete"  # 2026-07-28 clients reject a result without it
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def _tool_name(message: Message) -> object:
    params = message.obj.get("params")
    return params.get("name") if isinstance(params, dict) else None


def rpc_error(ident: RequestId | None, code: int, text: str, rule: str) -> dict[str, Any]:
    return jsonrpc.error_message(ident, code, text, {"mcpbox": {"rule": rule}})


class Engine:
    def __init__(
        self,
        profile: Profile,
        session: str,
        effects: Effects,
        *,
        pins: PinStore | None = None,
        desk: Desk | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.policy = profile.policy
        self.session = session
        self.fx = effects
        self.desk = desk
        self.clock = clock
        self.pinning = Pinning(profile, pins if pins is not None else PinStore(profile.name))
        self.limits = Limits(profile.policy, clock)
        self.signer = StateSigner(session)
        self.id_nonce = secrets.token_hex(8)  # in mcpbox's own ids (the server sees those of its tools/list)
        self.tag_nonce = secrets.token_hex(8)  # in untrusted-content tags: never sent to the server
        self.withheld_prompts: set[str] = set()  # removed from prompts/list: prompts/get of them is refused too
        self._ids = itertools.count(1)
        self.tools: dict[str, ToolView] = {}
        self.asked: dict[RequestId, tuple[str, bool]] = {}  # client request id -> (method, modern)
        self.in_flight: dict[RequestId, tuple[str, Callable[[], None]]] = {}  # tools/call id -> (tool, cancel timer)
        # Held for a person, each by its own id space: the two sides' ids are independent.
        self.held: dict[RequestId, Held] = {}  # client calls, by the client's id
        self.held_requests: dict[RequestId, Held] = {}  # server requests, by the server's id
        self.held_results: dict[RequestId, Held] = {}  # server results (input_required), by the client's id
        self.own: dict[str, RequestId] = {}  # mcpbox's elicitation id -> id of the held message it decides
        self.own_held: dict[str, Held] = {}  # mcpbox's elicitation id -> the held message itself
        self.own_lists: dict[str, Callable[[], None]] = {}  # mcpbox's own tools/list id -> cancels its timer
        self.awaiting_list: dict[RequestId, tuple[Message, bytes | None]] = {}  # calls of unlisted tools, by id
        self.client_elicits = False  # handshake era: the client declared the elicitation capability

    # ---- entry points (never raise) -----------------------------------------

    def from_client(self, message: Message, raw: bytes | None = None) -> Verdict:
        """``raw``: the bytes received, so that a held message is released exactly as it came."""
        try:
            return self._from_client(message, raw)
        except Exception as exc:
            return self._failed(message, exc, to_client=False)

    def from_server(self, message: Message, raw: bytes | None = None) -> Verdict:
        try:
            return self._from_server(message, raw)
        except Exception as exc:
            return self._failed(message, exc, to_client=True)

    def _failed(self, message: Message, exc: Exception, *, to_client: bool) -> Verdict:
        reason = f"a policy rule failed ({type(exc).__name__}: {exc}); the message is blocked"
        self.fx.event("policy_error", error=f"{type(exc).__name__}: {exc}", method=message.method)
        if message.kind is Kind.REQUEST:
            text = f"mcpbox: {reason}. This is a bug in mcpbox; the session log has the details."
            return Verdict(
                "reply", "policy-error", reason, rpc_error(message.id, jsonrpc.INTERNAL_ERROR, text, "policy-error")
            )
        if message.kind is Kind.RESPONSE and to_client and message.id is not None:
            # The client still waits for this answer: it gets an error instead of a hang.
            self.asked.pop(message.id, None)
            text = f"mcpbox: the server's answer was blocked because {reason}"
            error = rpc_error(message.id, jsonrpc.INTERNAL_ERROR, text, "policy-error")
            return Verdict("rewrite", "policy-error", reason, error, label="block")
        return Verdict("drop", "policy-error", reason)

    def _later(self, delay: float, action: Callable[[], None]) -> Callable[[], None]:
        """A timer whose action fails closed like the rules: an error is logged, never raised into the loop."""

        def guarded() -> None:
            try:
                action()
            except Exception as exc:
                self.fx.event("policy_error", error=f"{type(exc).__name__}: {exc}", method="(timer)")

        return self.fx.call_later(delay, guarded)

    def close(self, why: str) -> None:
        """The session is ending: every held message is refused, every timer stopped."""
        for held in [*self.held.values(), *self.held_requests.values(), *self.held_results.values()]:
            held.cancel_timer()
            held.refuse(why)
        self.held.clear()
        self.held_requests.clear()
        self.held_results.clear()
        for call, _ in self.awaiting_list.values():
            text = f"mcpbox: the call was not judged before {why}"
            self.fx.send_client(rpc_error(call.id, RPC_POLICY_REFUSED, text, "pinning"), rule="pinning", reason=why)
        self.awaiting_list.clear()
        for cancel in self.own_lists.values():
            cancel()
        self.own_lists.clear()
        for _, cancel in self.in_flight.values():
            cancel()
        self.in_flight.clear()

    # ---- client -> server ---------------------------------------------------

    def _from_client(self, message: Message, raw: bytes | None = None) -> Verdict:
        obj = message.obj
        if message.kind is Kind.RESPONSE:
            if isinstance(message.id, str) and message.id.startswith(f"mcpbox-approval-{self.id_nonce}-"):
                # Answers to mcpbox's own questions are mcpbox's, even late ones: never the server's.
                if message.id in self.own:
                    return self._own_answer(message.id, obj)
                return Verdict("drop", "approvals", "a late answer to mcpbox's approval question")
            return FORWARD
        if message.kind is Kind.NOTIFICATION:
            return self._client_notification(message)
        method, ident, params = message.method or "", message.id, obj.get("params")
        pending = (self.held, self.in_flight, self.awaiting_list, self.asked)
        if ident is not None and any(ident in table for table in pending):
            text = f"mcpbox: request id {ident!r} is already in use by a pending request"
            return Verdict("reply", "protocol", text, rpc_error(ident, jsonrpc.INVALID_REQUEST, text, "protocol"))
        if method == "initialize" and isinstance(params, dict):
            capabilities = params.get("capabilities")
            self.client_elicits = isinstance(capabilities, dict) and "elicitation" in capabilities
        verdict = FORWARD
        if method == "tools/list" and not (isinstance(params, dict) and params.get("cursor")):
            self.pinning.listing_started()
        if method == "tools/call":
            verdict = self._tool_call(message, raw)
        elif method == "prompts/get":
            verdict = self._named(message, "prompts", self.profile.prompts.permits, "name")
        elif method in ("resources/read", "resources/subscribe"):
            verdict = self._named(message, "mcp_resources", self.profile.mcp_resources.permits, "uri")
        if verdict.action in ("forward", "rewrite") and ident is not None and method in REMEMBERED:
            self.asked[ident] = (method, is_modern(params))
        return verdict

    def _client_notification(self, message: Message) -> Verdict:
        if message.method == "notifications/cancelled":
            return self._client_cancelled(message.obj.get("params"))
        if message.method in JUDGED_REQUESTS:
            # Without an id it would skip every check a request gets; a server may still act on it.
            text = f"{message.method} sent as a notification (no id) is not forwarded"
            return Verdict("drop", "protocol", text, label="block")
        return FORWARD

    def _named(self, message: Message, key: str, permits: Callable[[str], bool], field: str) -> Verdict:
        params = message.obj.get("params")
        value = params.get(field) if isinstance(params, dict) else None
        if isinstance(value, str) and permits(value) and not (key == "prompts" and value in self.withheld_prompts):
            return FORWARD
        text = f"mcpbox: {field} {value!r} is not allowed by profile {self.profile.name} ({key}.allow/deny)"
        return Verdict("reply", key, text, rpc_error(message.id, RPC_POLICY_REFUSED, text, key), label="block")

    def _client_cancelled(self, params: object) -> Verdict:
        ident = params.get("requestId") if isinstance(params, dict) else None
        if isinstance(ident, str | int) and ident in self.awaiting_list:
            del self.awaiting_list[ident]
            return Verdict("drop", "pinning", "the client withdrew a call that waited for the tool's definition")
        if isinstance(ident, str | int) and ident in self.held:
            held = self.held.pop(ident)
            held.cancel_timer()
            self._withdraw(held)
            return Verdict("drop", "approvals", "the client withdrew a call that was waiting for approval")
        if isinstance(ident, str | int) and ident in self.held_results:
            held = self.held_results.pop(ident)
            held.cancel_timer()
            self._withdraw(held)
        if isinstance(ident, str | int):
            self.asked.pop(ident, None)
        if isinstance(ident, str | int) and ident in self.in_flight:
            self._finish_call(ident)
        return FORWARD

    def _tool_call(self, message: Message, raw: bytes | None = None, *, fetched: bool = False) -> Verdict:
        params, ident = message.obj.get("params"), message.id
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            text = "mcpbox: tools/call needs params with a string name"
            return Verdict("reply", "protocol", text, rpc_error(ident, jsonrpc.INVALID_PARAMS, text, "protocol"))
        name: str = params["name"]
        arguments = params.get("arguments", {})
        modern = is_modern(params)
        if raw is not None and jsonrpc.has_duplicate_keys(raw):
            text = "mcpbox: a tools/call naming a key twice is refused (a server could read the other value)"
            return Verdict("reply", "protocol", text, rpc_error(ident, jsonrpc.INVALID_REQUEST, text, "protocol"))

        def refuse(rule: str, why: str) -> Verdict:
            text = f"mcpbox refused this call to {name} (rule {rule}): {why}."
            return Verdict("reply", rule, why, tool_error(ident, text, modern=modern), label="block")

        if not self.profile.tools.permits(name):
            return refuse("tools.allow/deny", f"tool {name} is not allowed by profile {self.profile.name}; "
                          "a person can allow it in the profile's tools: section")  # fmt: skip
        view = self._view(name)
        if view is None and ident is not None and not fetched:
            return self._fetch_definitions(message, raw)
        if view is None:
            return refuse("pinning", f"the server did not list a tool named {name}")
        if not view.visible:
            return refuse(view.rule or "pinning", view.reason or "the tool is withheld")
        problem = view.checker(self.profile).check(arguments)
        if problem is not None:
            return refuse("arguments", problem)
        state = params.get("requestState")
        if self.profile.tools.needs_approval(name):
            if self.signer.ours(state):
                return self._approved_retry(message, name, arguments, refuse)
            return self._ask_for_call(message, raw, name, arguments, modern, refuse)
        limited = self.limits.admit(name)
        if limited is not None:
            return refuse("limits", limited)
        self._start_call(ident, name)
        return FORWARD

    def _fetch_definitions(self, message: Message, raw: bytes | None) -> Verdict:
        """A call of a tool this session has not seen listed (a client that cached its list, or
        never listed): mcpbox lists the tools itself, then judges the call as usual."""
        assert message.id is not None  # noqa: S101 - only requests get here
        self.awaiting_list[message.id] = (message, raw)
        if not self.own_lists:
            self._list_tools(message.obj.get("params"), None)
        return Verdict("hold", "pinning", "the tool's definition is fetched from the server before the call is judged")

    def _list_tools(self, params: object, cursor: str | None) -> None:
        own_id = f"mcpbox-list-{self.id_nonce}-{next(self._ids)}"
        list_params: dict[str, Any] = {}
        meta = params.get("_meta") if isinstance(params, dict) else None
        if is_modern(params) and isinstance(meta, dict):
            list_params["_meta"] = meta  # a 2026-07-28 server needs the era on every request
        if cursor is not None:
            list_params["cursor"] = cursor

        def expire() -> None:
            self._listed(own_id, None)

        self.own_lists[own_id] = self._later(30.0, expire)
        request = {"jsonrpc": "2.0", "id": own_id, "method": "tools/list", "params": list_params}
        self.fx.send_server(request, rule="pinning", reason="fetching tool definitions to judge a call")

    def _listed(self, own_id: str, message: Message | None) -> Verdict:
        """mcpbox's own tools/list came back (or timed out): judge it, then the calls that waited."""
        cancel = self.own_lists.pop(own_id, None)
        if cancel is not None:
            cancel()
        result = message.obj.get("result") if message is not None else None
        if message is not None and isinstance(result, dict):
            self._tools_listed(message, result)
            cursor = result.get("nextCursor")
            waiting = [m for m, _ in self.awaiting_list.values() if _tool_name(m) not in self.tools]
            if isinstance(cursor, str) and waiting:
                self._list_tools(waiting[0].obj.get("params"), cursor)
                return Verdict("drop", "pinning", "mcpbox's own tools/list (not for the client)")
        held, self.awaiting_list = list(self.awaiting_list.values()), {}
        for call, raw in held:
            verdict = self._tool_call(call, raw, fetched=True)
            if verdict.action == "forward":
                self.asked[call.id] = ("tools/call", is_modern(call.obj.get("params")))  # type: ignore[index]
                self.fx.release_to_server(call.obj, raw, rule="pinning", reason="the tool's definition was judged")
            elif verdict.action == "rewrite" and verdict.message is not None:
                self.asked[call.id] = ("tools/call", is_modern(call.obj.get("params")))  # type: ignore[index]
                self.fx.release_to_server(
                    verdict.message, None, rule=verdict.rule or "pinning", reason=verdict.reason or ""
                )
            elif verdict.action == "reply" and verdict.message is not None:
                self.fx.send_client(verdict.message, rule=verdict.rule or "pinning", reason=verdict.reason or "")
        return Verdict("drop", "pinning", "mcpbox's own tools/list (not for the client)")

    def _view(self, name: str) -> ToolView | None:
        """The tool as last listed; a withheld one is judged again, as a person may have accepted it since."""
        view = self.tools.get(name)
        if view is None or view.visible or view.rule not in ("pinning", "suspicious"):
            return view
        pins, error = self._pins()
        judgement = self.pinning.judge_tool(name, view.definition, pins, error)
        if judgement.visible:
            view.visible, view.rule, view.reason = True, None, None
        return view

    def _start_call(self, ident: RequestId | None, name: str) -> None:
        if ident is None:
            return
        self.limits.in_flight += 1
        cancel = self._later(self.policy.call_timeout, lambda: self._timed_out(ident))
        self.in_flight[ident] = (name, cancel)

    def _finish_call(self, ident: RequestId) -> None:
        entry = self.in_flight.pop(ident, None)
        if entry is not None:
            entry[1]()
            self.limits.in_flight -= 1

    def _timed_out(self, ident: RequestId) -> None:
        entry = self.in_flight.pop(ident, None)
        if entry is None:
            return
        self.limits.in_flight -= 1
        self.asked.pop(ident, None)
        tool, limit = entry[0], self.policy.call_timeout
        reason = f"tool {tool} did not answer within {limit:g} s (policy.call_timeout)"
        if self.fx.expire(ident):
            text = f"mcpbox: {reason}; the call was cancelled"
            self.fx.send_client(rpc_error(ident, RPC_CALL_TIMEOUT, text, "limits"), rule="limits", reason=reason)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": ident, "reason": reason}}  # fmt: skip
            self.fx.send_server(cancel, rule="limits", reason=reason)

    # ---- approvals ----------------------------------------------------------

    def _ask_for_call(  # noqa: PLR0917 - the call's parts, as _tool_call already split them
        self,
        message: Message,
        raw: bytes | None,
        name: str,
        arguments: Any,
        modern: bool,
        refuse: Callable[[str, str], Verdict],
    ) -> Verdict:
        params = message.obj.get("params")
        ident = message.id
        question = self._question(f"run tool {name}", name, arguments)
        if modern:
            meta = params.get("_meta") if isinstance(params, dict) else None
            capabilities = meta.get(CAPABILITIES_META) if isinstance(meta, dict) else None
            if isinstance(capabilities, dict) and "elicitation" in capabilities:
                state = self.signer.make(call_digest(name, arguments), self.policy.approval_timeout)
                result = {
                    "resultType": "input_required",
                    "inputRequests": {
                        APPROVAL_KEY: {
                            "method": "elicitation/create",
                            "params": {"mode": "form", "message": question, "requestedSchema": approval_schema()},
                        }
                    },
                    "requestState": state,
                }
                reason = f"tool {name} needs a person's approval (tools.approve); asked the client"
                return Verdict("reply", "approvals", reason, {"jsonrpc": "2.0", "id": ident, "result": result}, "ask")
        if ident is None:
            return refuse("approvals", "a call that needs approval must be a request")
        limited = self.limits.admit(name)
        if limited is not None:
            return refuse("limits", limited)

        def release() -> None:
            if self.limits.in_flight >= self.policy.max_concurrent_calls:
                # Approved, but the server is as busy as the profile allows: the same limit as any call.
                deny(f"approved, but {self.limits.in_flight} calls are already running (policy.max_concurrent_calls)")
                return
            self.asked[ident] = ("tools/call", modern)
            self._start_call(ident, name)
            reason = f"a person approved the call to {name}"
            self.fx.release_to_server(message.obj, raw, rule="approvals", reason=reason)

        def deny(why: str) -> None:
            text = f"mcpbox refused this call to {name}: {why}."
            self.fx.send_client(tool_error(ident, text, modern=modern), rule="approvals", reason=why)

        self._hold(ident, message.obj, question, name, arguments, release, deny)
        return Verdict("hold", "approvals", f"tool {name} needs a person's approval (tools.approve)")

    def _approved_retry(
        self, message: Message, name: str, arguments: Any, refuse: Callable[[str, str], Verdict]
    ) -> Verdict:
        params = dict(message.obj["params"])
        problem = self.signer.open(params["requestState"], call_digest(name, arguments))
        responses = params.get("inputResponses")
        answer = responses.get(APPROVAL_KEY) if isinstance(responses, dict) else None
        if problem is None and not approved(answer):
            problem = "the person declined it"
        if problem is not None:
            return refuse("approvals", problem)
        limited = self.limits.admit(name)
        if limited is not None:
            return refuse("limits", limited)
        # The server never sees mcpbox's own state or answer: to it, this is a first call.
        params.pop("requestState", None)
        remaining = {k: v for k, v in responses.items() if k != APPROVAL_KEY} if isinstance(responses, dict) else {}
        if remaining:
            params["inputResponses"] = remaining
        else:
            params.pop("inputResponses", None)
        self._start_call(message.id, name)
        rewritten = {**message.obj, "params": params}
        return Verdict("rewrite", "approvals", f"a person approved the call to {name} (input_required)", rewritten)

    def _question(self, action: str, tool: str | None, arguments: Any) -> str:
        """What a person is asked: secrets masked, and cleaned like any output (a right-to-left override or
        a hidden tag must not make a call look like another), whatever the profile's output settings."""
        shown = json.dumps(self.fx.mask(arguments), ensure_ascii=False, indent=1, default=str)
        if len(shown) > MAX_SHOWN_ARGUMENTS:
            shown = shown[:MAX_SHOWN_ARGUMENTS] + " ...(cut)"
        question = (
            f"mcpbox: the MCP server of profile {self.profile.name} wants to {action}"
            f"{' with these arguments' if tool else ''}:\n{shown}\nAllow it, once, exactly as shown?"
        )
        return output.clean_text(question)[0]

    def _shown(self, arguments: Any) -> Any:
        """Arguments as the approval desk shows them: masked and cleaned."""
        return output.clean(self.fx.mask(arguments))[0]

    def _hold(  # noqa: PLR0917 - both kinds of held message pass the same parts
        self,
        ident: RequestId,
        message: dict[str, Any],
        question: str,
        tool: str | None,
        arguments: Any,
        release: Callable[[], None],
        refuse: Callable[[str], None],
        *,
        table: dict[RequestId, Held] | None = None,
    ) -> None:
        """Keep ``message`` until a person decides, by the client's elicitation or the desk."""
        table = self.held if table is None else table
        timeout = self.policy.approval_timeout
        held = Held(message, question, release, refuse, lambda: None)

        def expire() -> None:
            if table.get(ident) is held:
                del table[ident]
                self._withdraw(held)
                self.fx.event("approval", id=ident, approved=False, how="timed out")
                refuse(f"no person approved it within {timeout:g} s (policy.approval_timeout)")

        held.cancel_timer = self._later(timeout, expire)
        table[ident] = held
        if self.client_elicits:
            own_id = f"mcpbox-approval-{self.id_nonce}-{next(self._ids)}"
            held.own_id = own_id
            self.own[own_id] = ident
            self.own_held[own_id] = held
            request = {
                "jsonrpc": "2.0",
                "id": own_id,
                "method": "elicitation/create",
                "params": {"message": question, "requestedSchema": approval_schema()},
            }
            self.fx.send_client(request, rule="approvals", reason="asking the person through the client")
            return
        if self.desk is None:
            del table[ident]
            held.cancel_timer()
            refuse("it needs a person's approval, and neither the client nor `mcpbox approvals` can ask one")
            return
        ask = Ask(
            id=secrets.token_hex(4),
            session=self.session,
            profile=self.profile.name,
            what=question.splitlines()[0],
            tool=tool,
            arguments=self._shown(arguments),
            deadline=time.time() + timeout,
        )
        held.ask_id = ask.id

        def decided(yes: bool, how: str) -> None:
            if table.get(ident) is not held:
                return
            del table[ident]
            held.cancel_timer()
            self.fx.event("approval", id=ident, approved=yes, how=how)
            if yes:
                release()
            else:
                refuse(f"a person denied it ({how})")

        self.desk.add(ask, decided)
        self.fx.warn(
            f"approval needed: profile {self.profile.name} wants to {question.splitlines()[0].split('wants to ')[-1]}; "
            f"run `mcpbox approvals` within {timeout:g} s"
        )

    def _withdraw(self, held: Held) -> None:
        if held.own_id is not None:
            self.own.pop(held.own_id, None)
            self.own_held.pop(held.own_id, None)
        if held.ask_id is not None and self.desk is not None:
            self.desk.asks.pop(held.ask_id, None)

    def _own_answer(self, own_id: str, obj: dict[str, Any]) -> Verdict:
        ident = self.own.pop(own_id)
        held = self.own_held.pop(own_id, None)
        for table in (self.held, self.held_requests, self.held_results):
            if held is not None and table.get(ident) is held:
                del table[ident]
        if held is None:
            return Verdict("drop", "approvals", "an answer to mcpbox's own question that came too late")
        held.cancel_timer()
        yes = approved(obj.get("result"))
        self.fx.event("approval", id=ident, approved=yes, how="client elicitation")
        if yes:
            held.release()
        else:
            held.refuse("the person declined it")
        return Verdict("drop", "approvals", "the client's answer to mcpbox's approval question (not for the server)")

    # ---- server -> client ---------------------------------------------------

    def _from_server(self, message: Message, raw: bytes | None) -> Verdict:  # noqa: PLR0912 - one dispatch table
        if message.kind is Kind.REQUEST:
            return self._server_request(message, raw)
        if message.kind is Kind.NOTIFICATION:
            if message.method == "notifications/tools/list_changed":
                self.pinning.end_first_use()  # what the server adds from now on was not there at first use
                self.fx.event("tools_changed", note="the client will list tools again; new definitions are judged")
            return self._clean(message, raw)
        ident = message.id
        if ident is None:
            return self._clean(message, raw)
        if isinstance(ident, str) and ident in self.own_lists:
            return self._listed(ident, message)
        if isinstance(ident, str) and ident.startswith(f"mcpbox-list-{self.id_nonce}-"):
            return Verdict("drop", "pinning", "a late answer to mcpbox's own tools/list (not for the client)")
        if ident in self.held_results:
            # The answer the client waits for is held for a person: a second one must not slip past it.
            return Verdict("drop", "server_requests", "a second answer to a call whose answer waits for approval")
        method, modern = self.asked.pop(ident, ("", False))
        if ident in self.in_flight:
            self._finish_call(ident)
        result = message.obj.get("result")
        if message.is_error or not isinstance(result, dict):
            return self._clean(message, raw)
        if method == "tools/list":
            verdict = self._tools_listed(message, result)
        elif method in ("initialize", "server/discover"):
            verdict = self._instructions(message, result)
        elif method in ("prompts/list", "resources/list", "resources/templates/list"):
            verdict = self._listing(message, result, method)
        elif method == "tools/call" and result.get("resultType") == "input_required":
            return self._server_asks(message, result, modern)
        else:
            verdict = FORWARD
        return self._clean(message, raw, verdict, tool_result=method == "tools/call")

    def _server_request(self, message: Message, raw: bytes | None) -> Verdict:
        ident, method = message.id, message.method or ""
        if isinstance(ident, str) and ident.startswith("mcpbox-approval-"):
            text = "mcpbox: request ids starting with mcpbox-approval- are reserved"
            return Verdict("reply", "protocol", text, rpc_error(ident, jsonrpc.INVALID_REQUEST, text, "protocol"))
        if ident is not None and ident in self.held_requests:
            text = f"mcpbox: request id {ident!r} is already in use by a request waiting for approval"
            return Verdict("reply", "protocol", text, rpc_error(ident, jsonrpc.INVALID_REQUEST, text, "protocol"))
        mode = self.policy.server_requests.mode(method)
        if mode == "deny":
            text = f"mcpbox: {method} is denied by profile {self.profile.name} (policy.server_requests)"
            error = rpc_error(ident, RPC_POLICY_REFUSED, text, "server_requests")
            return Verdict("reply", "server_requests", text, error, label="block")
        cleaned = self._clean(message, raw)
        if mode != "approve" or ident is None or cleaned.action not in ("forward", "rewrite"):
            return cleaned
        to_send = cleaned.message if cleaned.action == "rewrite" and cleaned.message else message.obj
        if len(self.held_requests) + len(self.held_results) >= MAX_HELD:
            text = f"mcpbox: more than {MAX_HELD} server requests are waiting for approval; {method} is refused"
            error = rpc_error(ident, RPC_POLICY_REFUSED, text, "server_requests")
            return Verdict("reply", "server_requests", text, error, label="block")

        def release() -> None:
            self.fx.release_to_client(to_send, None, rule="server_requests", reason=f"a person approved {method}")

        def refuse(why: str) -> None:
            text = f"mcpbox: {method} was refused: {why}"
            error = rpc_error(ident, RPC_POLICY_REFUSED, text, "server_requests")
            self.fx.send_server(error, rule="server_requests", reason=why)

        params = to_send.get("params")
        question = self._question(f"send {method}", method, params)
        self._hold(ident, to_send, question, None, params, release, refuse, table=self.held_requests)
        return Verdict("hold", "server_requests", f"{method} needs a person's approval (policy.server_requests)")

    def _server_asks(self, message: Message, result: dict[str, Any], modern: bool) -> Verdict:
        """A 2026-07-28 ``input_required`` result: the server's requests, judged like server requests."""
        ident = message.id
        requests = result.get("inputRequests")
        methods = (
            sorted({str(r.get("method")) for r in requests.values() if isinstance(r, dict)})
            if isinstance(requests, dict)
            else []
        )
        modes = {method: self.policy.server_requests.mode(method) for method in methods}
        denied = [method for method, mode in modes.items() if mode == "deny"]
        cleaned = self._clean(message, None)
        if cleaned.action not in ("forward", "rewrite"):
            return cleaned
        to_send = cleaned.message if cleaned.action == "rewrite" and cleaned.message else message.obj
        if denied:
            text = f"mcpbox: the server asked for {', '.join(denied)}, which profile {self.profile.name} denies"
            return Verdict("rewrite", "server_requests", text, tool_error(ident, text, modern=modern), label="block")
        if "approve" not in modes.values() or ident is None:
            return cleaned
        if len(self.held_requests) + len(self.held_results) >= MAX_HELD:
            text = f"mcpbox: more than {MAX_HELD} server requests are waiting for approval"
            return Verdict("rewrite", "server_requests", text, tool_error(ident, text, modern=modern), label="block")

        def release() -> None:
            reason = "a person approved the server's requests"
            self.fx.release_to_client(to_send, None, rule="server_requests", reason=reason)

        def refuse(why: str) -> None:
            text = f"mcpbox: the server's requests ({', '.join(methods)}) were refused: {why}"
            self.fx.send_client(tool_error(ident, text, modern=modern), rule="server_requests", reason=why)

        shown = to_send.get("result", {}).get("inputRequests") if isinstance(to_send.get("result"), dict) else None
        question = self._question(f"ask the client for {', '.join(methods)}", None, shown)
        self._hold(ident, to_send, question, None, requests, release, refuse, table=self.held_results)
        return Verdict("hold", "server_requests", f"{', '.join(methods)} need a person's approval")

    def _pins(self) -> tuple[PinFile | None, str | None]:
        try:
            return self.pinning.pins(), None
        except PinError as error:
            return None, str(error)

    def _tools_listed(self, message: Message, result: dict[str, Any]) -> Verdict:
        tools = result.get("tools")
        if not isinstance(tools, list):
            text = "mcpbox: the server's tools/list result has no list of tools"
            reply = rpc_error(message.id, jsonrpc.INTERNAL_ERROR, text, "protocol")
            return Verdict("rewrite", "protocol", text, reply, label="block")
        pins, error = self._pins()
        kept: list[Any] = []
        judged: list[tuple[str, dict[str, Any], Judgement]] = []
        withheld: list[str] = []
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or not isinstance(name, str):
                withheld.append("a tool without a name")
                continue
            judgement = self.pinning.judge_tool(name, tool, pins, error)
            judged.append((name, tool, judgement))
            previous = self.tools.get(name)
            key = judgement.digest or digest(tool)
            view = ToolView(name, tool, key, judgement.visible, judgement.rule, judgement.reason)
            if previous is not None and previous.digest == view.digest:
                view._checker = previous._checker
            self.tools[name] = view
            self._report(name, view.digest, judgement)
            if judgement.visible:
                kept.append(tool)
            else:
                withheld.append(f"{name} ({judgement.rule})")
        self.pinning.record(judged, listing_complete=not result.get("nextCursor"))
        if not withheld:
            return FORWARD
        reason = f"withheld {len(withheld)} tool(s): {', '.join(withheld)}"
        return Verdict("rewrite", "pinning", reason, {**message.obj, "result": {**result, "tools": kept}})

    def _report(self, name: str, key: str, judgement: Judgement) -> None:
        """Findings and withheld tools go to the log and, once per definition, to stderr."""
        if not judgement.findings and judgement.visible:
            return
        self.fx.event(
            "tool_judged",
            tool=name,
            visible=judgement.visible,
            rule=judgement.rule,
            reason=judgement.reason,
            findings=list(judgement.findings),
        )
        if key in self.pinning.warned:
            return
        self.pinning.warned.add(key)
        if judgement.visible:
            self.fx.warn(f"tool {name} of profile {self.profile.name}: suspicious definition ({judgement.findings[0]})")
        elif judgement.rule != "tools.deny" and judgement.reason:
            self.fx.warn(f"withheld {judgement.reason}")

    def _instructions(self, message: Message, result: dict[str, Any]) -> Verdict:
        if "instructions" not in result:
            return FORWARD
        text = result["instructions"]
        pins, error = self._pins()
        judgement = self.pinning.judge_instructions(text, pins, error)
        self.pinning.record([], (text, judgement))
        self._report("(instructions)", digest({"instructions": text}), judgement)
        if judgement.visible:
            return FORWARD
        stripped = {key: value for key, value in result.items() if key != "instructions"}
        return Verdict("rewrite", judgement.rule, judgement.reason, {**message.obj, "result": stripped})

    def _listing(self, message: Message, result: dict[str, Any], method: str) -> Verdict:
        key, field, permits = (
            ("prompts", "name", self.profile.prompts.permits)
            if method == "prompts/list"
            else ("mcp_resources", "uri" if method == "resources/list" else "uriTemplate",
                  self.profile.mcp_resources.permits)
        )  # fmt: skip
        items_key = {"prompts/list": "prompts", "resources/list": "resources"}.get(method, "resourceTemplates")
        items = result.get(items_key)
        if not isinstance(items, list):
            return FORWARD
        kept, dropped = [], []
        block = self.policy.block_suspicious and method == "prompts/list"
        for item in items:
            value = item.get(field) if isinstance(item, dict) else None
            if not isinstance(value, str) or not permits(value):
                dropped.append(f"{value!r} ({key}.allow/deny)")
                continue
            findings = self.pinning.findings(item, digest(item)) if block else ()
            if findings:
                dropped.append(f"{value!r} (suspicious: {findings[0]})")
                self.withheld_prompts.add(value)
                continue
            kept.append(item)
        if not dropped:
            return FORWARD
        reason = f"withheld {len(dropped)} of {method}: {', '.join(dropped)}"
        return Verdict("rewrite", key, reason, {**message.obj, "result": {**result, items_key: kept}})

    # ---- output -------------------------------------------------------------

    def _clean(
        self, message: Message, raw: bytes | None, verdict: Verdict = FORWARD, *, tool_result: bool = False
    ) -> Verdict:
        """Strip escapes and invisible text, redact credentials, wrap tool text: the last rule on the way out."""
        policy = self.policy
        obj = verdict.message if verdict.action == "rewrite" and verdict.message is not None else message.obj
        if verdict.action not in ("forward", "rewrite"):
            return verdict
        wrap = policy.wrap_untrusted and tool_result and "result" in obj
        needed = (policy.sanitize_output or policy.redact_tokens) and (
            raw is None or verdict.action == "rewrite" or output.might_need_cleaning(raw)
        )
        if not needed and not wrap:
            return verdict
        changes: frozenset[str] = frozenset()
        if needed:
            cleaned, changes = output.clean(obj, strip=policy.sanitize_output, redact=policy.redact_tokens)
            if "too-deep" in changes:
                reason = "the message is nested too deeply to be checked"
                if message.kind is Kind.RESPONSE and message.id is not None:
                    error = rpc_error(message.id, jsonrpc.INTERNAL_ERROR, f"mcpbox: {reason}", "output")
                    return Verdict("rewrite", "output", reason, error, label="block")
                if message.kind is Kind.REQUEST:  # the server waits for an answer: it gets an error, not silence
                    error = rpc_error(message.id, jsonrpc.INTERNAL_ERROR, f"mcpbox: {reason}", "output")
                    return Verdict("reply", "output", reason, error, label="block")
                return Verdict("drop", "output", reason)
            assert isinstance(cleaned, dict)  # noqa: S101 - clean() keeps the type of what it is given
            obj = cleaned
        if wrap:
            obj = self._wrap(obj)
        if not changes and not wrap:
            return verdict
        what = ", ".join(sorted(changes)) or "wrapped as untrusted"
        reason = f"{verdict.reason}; output: {what}" if verdict.reason else f"output: {what}"
        return Verdict("rewrite", verdict.rule or "output", reason, obj)

    def _wrap(self, obj: dict[str, Any]) -> dict[str, Any]:
        result = obj.get("result")
        content = result.get("content") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(content, list):
            return obj
        wrapped = [
            {**item, "text": output.wrap_untrusted(item["text"], source=f"an MCP tool of profile {self.profile.name}",
                                                  nonce=self.tag_nonce)}
            if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str)
            else item
            for item in content
        ]  # fmt: skip
        return {**obj, "result": {**result, "content": wrapped}}
