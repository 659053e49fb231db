"""The securetunnel_mqtt fixture: options from the marker, errors at teardown."""

from __future__ import annotations

import pytest


def test_fixture_runs_a_broker_for_the_tests_fake(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json
        import queue

        import boto3
        import paho.mqtt.client as paho
        import pytest
        from paho.mqtt.enums import CallbackAPIVersion


        def test_device_gets_notified(securetunnel, securetunnel_mqtt):
            cert = securetunnel_mqtt.client_cert("robot-1")
            got = queue.Queue()
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id="robot-1")
            client.tls_set(ca_certs=securetunnel_mqtt.ca_file, certfile=cert.cert_file,
                           keyfile=cert.key_file)
            client.on_connect = lambda c, u, f, r, p: c.subscribe(
                "$aws/things/robot-1/tunnels/notify", qos=1)
            client.on_message = lambda c, u, m: got.put(m.payload)
            client.connect(securetunnel_mqtt.host, securetunnel_mqtt.tls_port)
            client.loop_start()
            try:
                securetunnel_mqtt.wait_for_subscriber("robot-1")
                opened = boto3.client("iotsecuretunneling", region_name="us-east-1").open_tunnel(
                    destinationConfig={"thingName": "robot-1", "services": ["SSH"]})
                body = json.loads(got.get(timeout=5))
                assert body["clientAccessToken"] == opened["destinationAccessToken"]
            finally:
                client.disconnect()
                client.loop_stop()
                client._reset_sockets()


        @pytest.mark.securetunnel_mqtt(authorization=False, tls=False)
        def test_marker_options(securetunnel_mqtt):
            assert securetunnel_mqtt.authorization is False
            assert securetunnel_mqtt.tls_port is None and securetunnel_mqtt.ca_file is None
        """
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=2)


def test_broker_errors_fail_the_test_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_broken(securetunnel_mqtt):
            securetunnel_mqtt._record_error(RuntimeError("inside the broker"))
        """
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*MqttBrokerError: 1 unexpected error*", "*RuntimeError: inside the broker"]
    )
