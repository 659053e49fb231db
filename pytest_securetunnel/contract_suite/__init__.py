"""The contract suite: the observable behaviour the fake promises, as pytest tests.

Run it against the fake, an endpoint or AWS::

    pytest --pyargs pytest_securetunnel.contract_suite
    pytest --pyargs pytest_securetunnel.contract_suite --securetunnel-endpoint-url URL
    pytest --pyargs pytest_securetunnel.contract_suite --securetunnel-live

Each test is marked ``securetunnel_contract(tunnels=N)``: N is the most tunnels it opens.
"""
