"""Connection failures give one clear StoreError and never show the password anywhere."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from cassandra import (
    AuthenticationFailed,
    InvalidRequest,
    OperationTimedOut,
    ReadFailure,
    Unavailable,
)
from cassandra.cluster import NoHostAvailable
from cql_node import (
    AUTH_RESPONSE,
    AUTHENTICATE,
    BAD_CREDENTIALS,
    OPTIONS,
    PROTOCOL_ERROR,
    STARTUP,
    cql_node,
    error,
    string,
    supported,
)

from hundi.records import Channel, Trade
from hundi.stores.base import StoreError, StoreUnavailable, open_store
from hundi.stores.cassandra.store import _transient

SECRET = "s3cr3t-Pa55-never-shown"


def trade() -> Trade:
    return Trade(
        exchange="x", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=1, recv_ts=2, trade_id=1,
        price=1.0, size=1.0, side=1, first_trade_id=1, last_trade_id=1,
    )  # fmt: skip


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_secret_nowhere(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    assert SECRET not in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # no driver traceback
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)


def test_wrong_password_is_one_clear_error_without_the_password(
    cassandra_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CASSANDRA_PASSWORD", SECRET)
    with pytest.raises(StoreError) as raised:
        open_store(cassandra_url)
    message = str(raised.value)
    assert "authentication failed for user 'cassandra'" in message
    assert "127.0.0.1:9042/hundi_test" in message
    assert not isinstance(raised.value, StoreUnavailable)  # asking again will not help
    assert_secret_nowhere(raised.value, caplog)


def test_unreachable_host_is_one_clear_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CASSANDRA_PASSWORD", SECRET)
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    port = closed_port()
    store = open_store(f"cassandra://127.0.0.1:{port}/hundi_test")  # a collector starts...
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("hundi")
    ]
    assert len(warnings) == 1 and "no host available" in warnings[0]  # ...saying why, once
    with pytest.raises(StoreError) as raised:  # and every write says it (the writer spools)
        store.write({Channel.TRADES: [trade()]})
    store.close()
    message = str(raised.value)
    assert f"127.0.0.1:{port}/hundi_test" in message
    assert "no host available" in message
    assert isinstance(raised.value, StoreUnavailable)  # a later try may succeed
    assert_secret_nowhere(raised.value, caplog)


def test_a_user_without_a_password_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CASSANDRA_PASSWORD", raising=False)
    with pytest.raises(StoreError, match="no CASSANDRA_PASSWORD"):
        open_store(f"cassandra://someone@127.0.0.1:{closed_port()}/hundi_test")


def test_a_password_in_the_url_is_refused_and_not_echoed() -> None:
    with pytest.raises(StoreError) as raised:
        open_store(f"cassandra://cassandra:{SECRET}@127.0.0.1:9042/hundi_test")
    assert "CASSANDRA_PASSWORD" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_an_unresolvable_host_name_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot resolve the host name"):
        open_store("cassandra://no-such-host.invalid/hundi_test")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (NoHostAvailable("down", {"127.0.0.1": ConnectionRefusedError("refused")}), True),
        (NoHostAvailable("login", {"127.0.0.1": AuthenticationFailed("bad credentials")}), False),
        # a login read at QUORUM while replicas are down: the server's refusal says it passes
        (
            NoHostAvailable(
                "login", {"h": AuthenticationFailed("Cannot achieve consistency level QUORUM")}
            ),
            True,
        ),
        (OperationTimedOut("timed out"), True),
        (Unavailable("2 replicas needed"), True),
        (InvalidRequest("no such table"), False),
        (ReadFailure("too many tombstones"), False),  # the same read fails again
    ],
)
def test_only_what_asking_again_may_pass_is_store_unavailable(
    error: Exception, transient: bool
) -> None:
    """A restart's look-up asks again after StoreUnavailable only (hundi.pipeline.resume)."""
    assert _transient(error) is transient


@pytest.mark.parametrize(
    "refusal",
    [
        "Invalid or unsupported protocol version (5); supported versions are (3/v3, 4/v4)",
        "Beta version of the protocol used (5/v5-beta), but USE_BETA flag is unset",  # 3.x
    ],
)
def test_a_node_refusing_the_protocol_version_stops_a_collector_at_start(
    monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    """The driver re-raises a set version's refusal as a plain DriverException or, in a 3.x
    node's words, a ProtocolException: both counted as an outage, so a collector started
    against an old node spooled for good instead of saying why, and its restart look-ups were
    asked again all run."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "5")
    answer = lambda _opcode, _body: error(PROTOCOL_ERROR, refusal)  # noqa: E731
    with cql_node(answer) as port, pytest.raises(StoreError) as raised:
        open_store(f"cassandra://127.0.0.1:{port}/hundi_test")  # a collector's store
    assert not isinstance(raised.value, StoreUnavailable)
    assert "protocol" in str(raised.value)


def test_a_login_its_replicas_cannot_check_is_an_outage_from_the_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A login read at QUORUM while system_auth replicas are down (a rolling restart): the
    collector starts and spools, as for a node down, and says why (not "check the password");
    it stopped with exit 2 at start while every later read counted it as an outage."""
    monkeypatch.setenv("CASSANDRA_PROTOCOL_VERSION", "4")
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "5")
    monkeypatch.setenv("CASSANDRA_USER", "writer")
    monkeypatch.setenv("CASSANDRA_PASSWORD", SECRET)
    message = "Unable to perform authentication: Cannot achieve consistency level QUORUM"
    answers = {
        OPTIONS: supported(),
        STARTUP: (AUTHENTICATE, string("org.apache.cassandra.auth.PasswordAuthenticator")),
        AUTH_RESPONSE: error(BAD_CREDENTIALS, message),
    }
    with cql_node(lambda opcode, _body: answers.get(opcode)) as port:
        store = open_store(f"cassandra://127.0.0.1:{port}/hundi_test")  # started, unopened
        with pytest.raises(StoreUnavailable) as raised:
            store.last_position("x", "BTC-USDT", Channel.TRADES, 10**18)
        store.close()
    assert "Cannot achieve consistency level QUORUM" in str(raised.value)
    assert "check CASSANDRA_USER" not in str(raised.value)
    assert_secret_nowhere(raised.value, caplog)


def test_a_thread_waiting_to_open_gets_the_failure_it_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer waits while a restart look-up tries to open the store against a node that
    never answers; that try failing is the writer's answer too (it connected again after it:
    twice the connect timeout per write)."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts (the kernel's backlog), never answers
        store = open_store(f"cassandra://127.0.0.1:{silent.getsockname()[1]}/hundi_test")
        connecting = threading.Event()
        connects: list[str] = []
        connect = store._connect  # type: ignore[attr-defined]

        def counted() -> object:
            connects.append(threading.current_thread().name)
            connecting.set()
            return connect()

        monkeypatch.setattr(store, "_connect", counted)
        failures: list[BaseException] = []

        def look_up() -> None:
            try:
                store.last_position("x", "BTC-USDT", Channel.TRADES, 10**18)
            except StoreError as exc:
                failures.append(exc)

        looking = threading.Thread(target=look_up, name="look-up")
        looking.start()
        assert connecting.wait(60), "the look-up never tried to open the store"
        with pytest.raises(StoreUnavailable, match="no host available"):
            store.write({Channel.TRADES: [trade()]})
        looking.join(60)
        store.close()
    assert connects == ["look-up"]
    assert [type(e) for e in failures] == [StoreUnavailable]


def test_a_closed_store_is_not_opened_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A look-up the stop gave up on may still ask the store after the writer closed it: it
    connected and prepared the schema again, once per question."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    store = open_store(f"cassandra://127.0.0.1:{closed_port()}/hundi_test")  # unopened
    store.close()
    connects: list[str] = []
    monkeypatch.setattr(store, "_connect", lambda: connects.append("connect"))
    with pytest.raises(StoreError, match="the store was closed") as raised:
        store.last_position("x", "BTC-USDT", Channel.TRADES, 10**18)
    assert not isinstance(raised.value, StoreUnavailable) and connects == []
