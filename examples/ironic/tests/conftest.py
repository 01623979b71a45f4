"""pytest fixtures: a live hostsdir-broker process per test."""

import os

import pytest

# Ironic's unit-test package first: it selects oslo.service's threading
# backend (as Ironic 2025.2+ conductors run), which must happen before
# anything else imports oslo.service.
import ironic.tests.unit  # noqa: F401,E402

# Import what the conductor imports before any Ironic test base class bans
# subprocess.Popen: zeroconf, pulled in by ironic.conductor, runs ldconfig
# while being imported. Failing here (no Ironic installed) is meant to be
# loud: the whole run errors out.
import ironic.conductor.base_manager  # noqa: F401,E402
import ironic.drivers.fake_hardware  # noqa: F401,E402

# Registers the [hostsdir_broker] options with Ironic's CONF.
import ironic_hostsdir_broker.provider  # noqa: F401,E402

import broker_process  # noqa: E402


@pytest.fixture(scope='session')
def broker_bin():
    try:
        return broker_process.broker_binary()
    except broker_process.BrokerMissing as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def start_broker(broker_bin, tmp_path):
    """start_broker(name=, token_file=, before_start=callable) -> process.

    Every broker started is stopped at the end of the test.
    """
    started = []

    def start(name='broker', token_file=None, before_start=None,
              extra_args=()):
        workdir = os.path.join(str(tmp_path), name)
        os.makedirs(workdir, exist_ok=True)
        proc = broker_process.BrokerProcess(broker_bin, workdir,
                                            token_file=token_file,
                                            extra_args=extra_args)
        if before_start is not None:
            before_start(proc)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


# Set to 1 to let the end-to-end tests skip (instead of fail) where they
# cannot run: not root, no udhcpc, no dnsmasq 2.93. Nothing sets it in
# run-tests.sh or scripts/test-all.sh, so there a missing prerequisite is a
# failure naming it.
ALLOW_SKIP_ENV = 'IRONIC_E2E_ALLOW_SKIP'


@pytest.fixture
def understack_world(broker_bin, tmp_path):
    """understack's dnsmasq 2.93 supervised by a broker, in namespaces,
    with a DHCP client (understack_world.World); torn down afterwards,
    also when the test fails."""
    import understack_world
    try:
        understack_world.prerequisites()
    except understack_world.Missing as e:
        if os.environ.get(ALLOW_SKIP_ENV) == '1':
            pytest.skip('%s (%s=1)' % (e, ALLOW_SKIP_ENV))
        pytest.fail('%s; set %s=1 to skip these tests instead'
                    % (e, ALLOW_SKIP_ENV), pytrace=False)
    world = understack_world.World(broker_bin, str(tmp_path / 'understack'))
    try:
        yield world
    finally:
        world.close()
