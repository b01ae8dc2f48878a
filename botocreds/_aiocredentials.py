"""The credentials object swapped into aiobotocore clients, and its async slow path.

aiobotocore's signer awaits ``credentials.get_frozen_credentials()`` once per
signing, and its endpoint rules await ``credentials.get_account_id()``. Here
each is the same snapshot read as the sync hot path: no I/O, no lock, no
suspension point while the current set is fresh.

Past expiry a coroutine waits for the refresher's single-flight mint without
blocking its loop: it registers a wake-up that the mint thread delivers with
``loop.call_soon_threadsafe``, so coroutines on any number of loops, in any
number of threads, wait for the same one mint. No ``asyncio.Lock`` is involved
(those belong to one loop). ``asyncio`` is imported only on that slow path, so
importing botocreds does not import it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from botocore.credentials import ReadOnlyCredentials

from ._credentials import SnapshotCredentials, read_only
from ._errors import CredentialsUnavailable

if TYPE_CHECKING:
    import asyncio

    from ._snapshot import Snapshot

logger = logging.getLogger("botocreds")
#: A refresher, seen from here: the runtime, which this module does not import.
Owner = Any
#: Decides whether a snapshot, at a wall-clock time, is the one a waiter wants.
Accept = Callable[["Snapshot", float], bool]


class AioBackgroundCredentials(SnapshotCredentials):
    """aiobotocore-style credentials whose values a botocreds refresher keeps fresh.

    It offers the async interface aiobotocore's signer, presigner and endpoint
    rules use (``await get_frozen_credentials()``, ``await get_account_id()``
    and the other ``get_*`` coroutines), so an aiobotocore client signs with it
    as with its own ``AioRefreshableCredentials``, minus the inline refresh.
    The ``access_key``/``secret_key``/``token``/``account_id`` properties read
    the current set without waiting, and raise
    :class:`~botocreds.CredentialsUnavailable` once it has expired.
    """

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:  # type: ignore[override]
        """The current credentials, as botocore's immutable ``ReadOnlyCredentials``.

        Never returns an expired set: past expiry it awaits (at most the policy's
        ``wait_timeout``) the single-flight mint, without blocking the loop, or
        raises :class:`~botocreds.CredentialsUnavailable`.
        """
        snapshot = self._snapshot
        if self._clock() < snapshot.fresh_until:
            return snapshot.frozen
        owner: Owner = self._owner
        frozen = owner._serve_valid(on_loop=True)
        if frozen is not None:
            return cast(ReadOnlyCredentials, frozen)
        return await wait_for_fresh(owner)

    async def get_account_id(self) -> str | None:
        """The account ID of the current set (what the ``AWS::Auth::AccountId`` builtin reads)."""
        return (await self.get_frozen_credentials()).account_id

    async def get_access_key(self) -> str:
        """The current access key."""
        return cast(str, (await self.get_frozen_credentials()).access_key)

    async def get_secret_key(self) -> str:
        """The current secret key."""
        return cast(str, (await self.get_frozen_credentials()).secret_key)

    async def get_token(self) -> str | None:
        """The current session token, if any."""
        return (await self.get_frozen_credentials()).token

    def _account_id_builtin(self) -> Callable[[], Any]:
        # aiobotocore binds the builtin to this coroutine method and awaits it.
        return self.get_account_id

    def _current(self) -> ReadOnlyCredentials:
        owner: Owner = self._owner
        frozen = owner._serve_valid(on_loop=True)
        if frozen is None:
            raise CredentialsUnavailable(
                source=owner.name,
                reason="the credentials expired: await get_frozen_credentials() "
                "to wait for the next set",
            )
        return cast(ReadOnlyCredentials, frozen)

    @property
    def access_key(self) -> str:
        """The current access key (without waiting)."""
        return cast(str, self._current().access_key)

    @access_key.setter
    def access_key(self, value: str) -> None:
        read_only("access_key", "AioBackgroundCredentials")

    @property
    def secret_key(self) -> str:
        """The current secret key (without waiting)."""
        return cast(str, self._current().secret_key)

    @secret_key.setter
    def secret_key(self, value: str) -> None:
        read_only("secret_key", "AioBackgroundCredentials")

    @property
    def token(self) -> str | None:
        """The current session token, if any (without waiting)."""
        return self._current().token

    @token.setter
    def token(self, value: str | None) -> None:
        read_only("token", "AioBackgroundCredentials")

    @property
    def account_id(self) -> str | None:
        """The current account ID, when the source said (without waiting)."""
        return self._current().account_id

    @account_id.setter
    def account_id(self, value: str | None) -> None:
        read_only("account_id", "AioBackgroundCredentials")


async def wait_for_fresh(owner: Owner) -> ReadOnlyCredentials:
    """Expired: await (bounded) one single-flight mint; never sign with the old set."""
    started = time.monotonic()
    succeeded = False
    try:
        snapshot = await await_mint(
            owner, lambda snapshot, now: now < snapshot.valid_until, "the credentials expired"
        )
        succeeded = True
        return snapshot.frozen
    finally:
        owner._report_request_path_mint(started, succeeded, on_loop=True)


async def invalidate(owner: Owner, error_code: str, rejected_key: str | None) -> bool:
    """The async twin of the runtime's ``_invalidate``: the wait does not block the loop."""
    started = time.monotonic()
    accept = owner._replacement_for(rejected_key)
    retried = accept is None
    if accept is not None:
        try:
            await await_mint(owner, accept, owner._rejected_situation(error_code))
            retried = True
        except CredentialsUnavailable as error:
            # Logged on the delivery thread: log handlers do not run on the loop.
            reason = str(error)
            owner._scheduler.delivery.submit(
                lambda: logger.warning("botocreds: %s", reason), off_loop=True
            )
    owner._report_invalidation(error_code, started, retried, on_loop=True)
    return retried


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def await_mint(owner: Owner, accept: Accept, situation: str) -> Snapshot:
    """Drive the refresher's waiting logic from a coroutine, without blocking its loop."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "botocreds waits for expired credentials on an asyncio event loop; "
            "aiobotocore's anyio backend on trio is not supported"
        ) from None
    pending: list[asyncio.Future[None]] = []

    def arm() -> Callable[[], None]:
        # Called on this loop's thread, under the refresher's lock; the wake-up
        # comes from whichever thread finishes the mint.
        future: asyncio.Future[None] = loop.create_future()
        pending[:] = [future]

        def wake() -> None:
            # RuntimeError: that loop has been closed meanwhile, so nobody waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

        return wake

    steps = owner._mint_steps(accept, situation, arm=arm, on_loop=True)
    try:
        timeout = next(steps)
        while True:
            # Not asyncio.wait_for: before Python 3.12 it can swallow a
            # cancellation that arrives in the same turn as the wake-up.
            future = pending[0]
            timer = loop.call_later(timeout, _resolve, future)
            try:
                await future
            finally:
                timer.cancel()
            timeout = steps.send(None)
    except StopIteration as done:
        snapshot: Snapshot = done.value
        return snapshot
    finally:
        steps.close()
