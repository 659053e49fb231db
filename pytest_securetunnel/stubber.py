"""``SecureTunnelStubber``: botocore's ``Stubber``, backed by the stateful fake.

It keeps the ``Stubber`` API and exception classes, so a Stubber-based suite
migrates by changing one line. What changes:

* queued responses win: a call takes the first response queued for its
  operation, so unrelated calls may come in any order; a call with nothing queued
  for its operation falls through to a :class:`SecureTunnelFake` instead of
  failing. ``strict=True`` restores the Stubber's strict first-in-first-out queue
  and its ``UnStubbedResponseError`` / ``StubResponseError``;
* responses and expected parameters are copied when queued, so later mutation of
  the caller's dicts cannot change them (boto/botocore#2069);
* a parameter mismatch shows what differs, not only two dumps (boto/botocore#2765).

Stubbed calls do not change the fake's state.
"""

from __future__ import annotations

import copy
import difflib
from pprint import pformat
from typing import Any

from botocore.exceptions import StubAssertionError
from botocore.stub import ANY, Stubber

from pytest_securetunnel._router import _router
from pytest_securetunnel.mock import Attachment, attach
from pytest_securetunnel.service import SecureTunnelFake

__all__ = ["ANY", "SecureTunnelStubber"]


def describe_mismatch(expected: dict[str, Any], received: dict[str, Any]) -> str:
    """A readable account of how ``received`` differs from ``expected``."""
    lines: list[str] = []
    for key in expected:
        if key not in received:
            lines.append(f"  missing parameter {key!r} (expected {expected[key]!r})")
        elif expected[key] != received[key]:
            lines.append(
                f"  parameter {key!r}: expected {expected[key]!r}, received {received[key]!r}"
            )
    for key in received:
        if key not in expected:
            lines.append(f"  unexpected parameter {key!r} = {received[key]!r}")
    diff = difflib.unified_diff(
        pformat(expected).splitlines(),
        pformat(received).splitlines(),
        "expected",
        "received",
        lineterm="",
    )
    return "\n".join(["Differences:", *lines, *diff])


class SecureTunnelStubber(Stubber):  # type: ignore[misc]
    """A ``Stubber`` whose unqueued calls are answered by a stateful fake.

    ``fake`` answers calls with nothing queued: the one given, else the fake of an
    active :func:`mock_securetunneling`, else a new :class:`SecureTunnelFake`
    (available as :attr:`fake`). With ``strict=True`` every call must be queued,
    exactly as with botocore's ``Stubber``.
    """

    def __init__(
        self, client: Any, fake: SecureTunnelFake | None = None, *, strict: bool = False
    ) -> None:
        """Wrap ``client``; :meth:`activate` (or a ``with`` block) starts answering."""
        super().__init__(client)
        self._event_id = "securetunnel_stubber"
        self._expected_params_event_id = "securetunnel_stubber_expected_params"
        self._stub_account_id_event_id = "securetunnel_stubber_stub_account_id"
        self.strict = strict
        self._given_fake = fake
        self.fake: SecureTunnelFake | None = fake
        self._attachment: Attachment | None = None

    def activate(self) -> None:
        """Activate the stubber on the client (and the fall-through fake, unless strict)."""
        super().activate()
        if not self.strict and self._attachment is None:
            fake = self._given_fake or _router.active() or SecureTunnelFake()
            self.fake = fake
            self._attachment = attach(self.client, fake)

    def deactivate(self) -> None:
        """Deactivate the stubber and its fall-through fake on the client."""
        super().deactivate()
        if self._attachment is not None:
            self._attachment.detach()
            self._attachment = None

    def __enter__(self) -> SecureTunnelStubber:
        """Activate; deactivated at the end of the block."""
        self.activate()
        return self

    def _add_response(self, method: str, service_response: Any, expected_params: Any) -> None:
        super()._add_response(
            method, copy.deepcopy(service_response), copy.deepcopy(expected_params)
        )

    def add_client_error(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Queue a ``ClientError`` (same arguments as ``Stubber.add_client_error``)."""
        super().add_client_error(method, *args, **kwargs)
        entry = self._queue[-1]
        entry["expected_params"] = copy.deepcopy(entry["expected_params"])
        http, parsed = entry["response"]
        entry["response"] = (http, copy.deepcopy(parsed))

    def _entry_for(self, operation: str) -> int | None:
        """Index of the queued entry that answers ``operation`` (``None``: fall through)."""
        if self.strict:
            return 0  # botocore Stubber semantics: strict FIFO, errors raised by the caller
        for index, entry in enumerate(self._queue):
            if entry["operation_name"] == operation:
                return index
        return None

    def _get_response_handler(self, model: Any, params: Any, context: Any, **kwargs: Any) -> Any:
        index = self._entry_for(model.name)
        if index is None:
            return None  # nothing queued for this operation: the fake's hook answers
        if self.strict:
            return super()._get_response_handler(model, params, context, **kwargs)
        entry = self._queue[index]
        del self._queue[index]
        return entry["response"]

    def _assert_expected_params(self, model: Any, params: Any, context: Any, **kwargs: Any) -> None:
        if self._should_not_stub(context):
            return
        index = self._entry_for(model.name)
        if index is None:
            return
        if self.strict:
            self._assert_expected_call_order(model, params)
        expected = self._queue[index]["expected_params"]
        if expected is None:
            return
        matches = all(key in params and expected[key] == params[key] for key in expected)
        if not matches or sorted(expected) != sorted(params):
            raise StubAssertionError(
                operation_name=model.name,
                reason=(
                    f"Expected parameters:\n{pformat(expected)},\n"
                    f"but received:\n{pformat(params)}\n"
                    f"{describe_mismatch(expected, params)}"
                ),
            )
