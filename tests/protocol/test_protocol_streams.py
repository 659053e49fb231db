"""StreamTable: the streams of one connection, from both directions."""

from __future__ import annotations

from pytest_securetunnel.protocol import StreamTable, TunnelMessage


def test_empty_table() -> None:
    table = StreamTable()
    assert table.active_streams == {}
    assert table.active_stream_id("SSH") is None
    assert table.last_stream_id("SSH") is None
    assert table.connection_ids("SSH") == frozenset()
    assert not table.has_started("SSH")
    assert not table.started_without_service_id


def test_stream_start_activates_stream_per_service() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(1, "SSH", 1), from_client=True)
    table.apply(TunnelMessage.stream_start(1, "VNC"), from_client=True)
    assert table.active_streams == {"SSH": 1, "VNC": 1}
    assert table.connection_ids("SSH") == {1}
    assert table.connection_ids("VNC") == {1}  # connection id 0 means connection 1


def test_new_stream_start_replaces_the_service_stream() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(1, "SSH", 1), from_client=True)
    table.apply(TunnelMessage.connection_start(1, 2, "SSH"), from_client=True)
    table.apply(TunnelMessage.stream_start(2, "SSH", 1), from_client=True)
    assert table.active_streams == {"SSH": 2}
    assert table.connection_ids("SSH") == {1}


def test_stream_reset_of_active_stream_ends_it() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(1, "SSH"), from_client=True)
    table.apply(TunnelMessage.stream_reset(1, "SSH"), from_client=False)
    assert table.active_streams == {}
    assert table.has_started("SSH")
    assert table.last_stream_id("SSH") == 1


def test_stale_stream_reset_is_ignored() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(2, "SSH"), from_client=True)
    table.apply(TunnelMessage.stream_reset(1, "SSH"), from_client=False)
    table.apply(TunnelMessage.stream_reset(2, "VNC"), from_client=False)
    assert table.active_streams == {"SSH": 2}


def test_connection_start_and_reset_track_connection_ids() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(1, "SSH", 1), from_client=True)
    table.apply(TunnelMessage.connection_start(1, 2, "SSH"), from_client=True)
    table.apply(TunnelMessage.connection_start(1, 3, "SSH"), from_client=True)
    table.apply(TunnelMessage.connection_reset(1, 0, "SSH"), from_client=False)  # 0 means 1
    table.apply(TunnelMessage.connection_reset(9, 2, "SSH"), from_client=False)  # stale stream
    assert table.connection_ids("SSH") == {2, 3}
    table.apply(TunnelMessage.connection_reset(1, 2, "SSH"), from_client=False)
    table.apply(TunnelMessage.connection_reset(1, 3, "SSH"), from_client=False)
    assert table.connection_ids("SSH") == frozenset()
    assert table.active_streams == {"SSH": 1}


def test_session_reset_ends_all_streams() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(1, "SSH"), from_client=True)
    table.apply(TunnelMessage.stream_start(1, "VNC"), from_client=True)
    table.apply(TunnelMessage.session_reset(), from_client=False)
    assert table.active_streams == {}
    assert table.has_started("SSH")


def test_relayed_stream_start_with_service_id_ends_stream_without_one() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(1), from_client=False)
    assert table.started_without_service_id
    table.apply(TunnelMessage.stream_start(2, "SSH"), from_client=False)
    assert not table.started_without_service_id
    assert table.active_streams == {"SSH": 2}


def test_data_and_unknown_types_change_nothing() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.data(1, b"x", "SSH"), from_client=True)
    table.apply(TunnelMessage(42, stream_id=1, ignorable=True), from_client=True)
    assert table.active_streams == {}
    assert not table.has_started("SSH")


def test_clear_forgets_everything() -> None:
    table = StreamTable()
    table.apply(TunnelMessage.stream_start(1), from_client=True)
    table.clear()
    assert table.active_streams == {}
    assert not table.has_started()
    assert not table.started_without_service_id
