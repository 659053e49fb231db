"""Contract mode: one suite of behaviour checks, run against the fake, an endpoint or AWS.

- :class:`ContractContext`: what a contract test sees (``securetunnel_contract`` fixture).
- :class:`LiveModeError`: live mode refused something unsafe.
- :func:`frozen_time_reason`: whether freezegun or time-machine is faking time now.
- :data:`RUN_TAG_KEY`: the tag every tunnel a contract run opens carries.

The pytest pieces (options, fixtures, hooks) are in :mod:`pytest_securetunnel.contract.plugin`.
"""

from ._context import ContractContext, error_code
from ._errors import LiveModeError
from ._frozen import frozen_time_reason
from ._run import LIVE_ENV, RUN_TAG_KEY, live_data_endpoint

__all__ = [
    "LIVE_ENV",
    "RUN_TAG_KEY",
    "ContractContext",
    "LiveModeError",
    "error_code",
    "frozen_time_reason",
    "live_data_endpoint",
]
