"""Test base: Ironic's own DB-backed unit-test case plus a live broker.

Nodes and ports are real Ironic objects in Ironic's sqlite test database
(``ironic.tests.unit.objects.utils``); tasks are real
``task_manager.acquire`` tasks with the node's real boot interface; the DHCP
options come from ``pxe_utils.dhcp_options_for_instance`` exactly as
``PXEBaseMixin`` builds them (IPv4 list + IPv6 list).
"""

import os
import tempfile

from ironic.common import dhcp_factory
from ironic.common import pxe_utils
from ironic.conductor import task_manager
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as object_utils
from oslo_utils import uuidutils
import pytest

import broker_process

BROKER = 'hostsdir-broker'
STOCK = 'dnsmasq'


class BrokerTestCase(db_base.DbTestCase):

    # The broker is a subprocess: do not ban process creation.
    block_execute = False

    @pytest.fixture(autouse=True)
    def _inject_pytest_fixtures(self, start_broker, tmp_path):
        self._start_broker_fixture = start_broker
        self._tmp = str(tmp_path)

    def setUp(self):
        super().setUp()
        self.config(enabled_boot_interfaces=['fake', 'pxe', 'ipxe', 'http',
                                             'http-ipxe'])
        self.config(tftp_server='192.0.2.10', group='pxe')
        self.config(http_url='http://192.0.2.10:8080', group='deploy')
        # The iPXE boot interfaces write boot.ipxe into http_root on load.
        self.config(http_root=tempfile.mkdtemp(dir=self._tmp),
                    group='deploy')
        self.config(tftp_root=tempfile.mkdtemp(dir=self._tmp), group='pxe')
        self.config(my_ipv6='2001:db8::10')

        # Where the stock provider writes, for comparison.
        self.stock_hosts = tempfile.mkdtemp(dir=self._tmp)
        self.stock_opts = tempfile.mkdtemp(dir=self._tmp)
        self.stock_leases = os.path.join(self._tmp, 'stock.leases')
        self.config(dhcp_hostsdir=self.stock_hosts,
                    dhcp_optsdir=self.stock_opts,
                    dhcp_leasefile=self.stock_leases, group='dnsmasq')

        self.broker = self.make_broker()
        self.point_at(self.broker)
        self.use_provider(BROKER)

    def _clear_attrs(self):
        # Ironic's TestCase deletes every public instance attribute on
        # clean-up, which includes the bound test method pytest sets on the
        # instance and removes itself afterwards. Nothing to free here.
        pass

    def tearDown(self):
        dhcp_factory.DHCPFactory._dhcp_provider = None
        super().tearDown()

    # -- set-up helpers ----------------------------------------------------

    def make_broker(self):
        """The broker the provider talks to (a subclass may supply one)."""
        return self.start_broker()

    def start_broker(self, name='broker', **kwargs):
        return self._start_broker_fixture(name=name, **kwargs)

    def point_at(self, broker, **kwargs):
        opts = dict(url=broker.url, retries=1, timeout=5.0)
        opts.update(kwargs)
        self.config(group='hostsdir_broker', **opts)

    def use_provider(self, name):
        """Selects a DHCP provider and drops the factory's cached one."""
        self.config(dhcp_provider=name, group='dhcp')
        dhcp_factory.DHCPFactory._dhcp_provider = None
        return dhcp_factory.DHCPFactory()

    def make_node(self, boot_interface='pxe', boot_mode='bios',
                  macs=('52:54:00:cf:2d:32',), other_macs=(), **kwargs):
        """A node with PXE-enabled ports `macs` and other ports."""
        node = object_utils.create_test_node(
            self.context, uuid=uuidutils.generate_uuid(),
            boot_interface=boot_interface,
            properties={'cpu_arch': 'x86_64',
                        'capabilities': 'boot_mode:%s' % boot_mode},
            **kwargs)
        for pxe, addresses in ((True, macs), (False, other_macs)):
            for mac in addresses:
                object_utils.create_test_port(
                    self.context, node_id=node.id,
                    uuid=uuidutils.generate_uuid(), address=mac,
                    pxe_enabled=pxe)
        return node

    def acquire(self, node):
        return task_manager.acquire(self.context, node.uuid,
                                    purpose='hostsdir-broker test')

    # Which halves of the option list update_with() sends by default.
    # Ironic's boot interfaces (PXEBaseMixin._prepare_dhcp) always send
    # both, the IPv4 list followed by the IPv6 list; the stock rendering of
    # the IPv6 half (a bare "59" holding a URL) is refused by the broker, so
    # tests about something else use the IPv4 half, and the full list is
    # tested on its own (test_provider.TestFullOptionSet).
    IP_VERSIONS = (4,)

    def boot_options(self, task, ip_versions=None):
        """The options PXEBaseMixin._prepare_dhcp sends for the task.

        Only the halves for `ip_versions` (default: self.IP_VERSIONS).
        """
        boot = task.driver.boot
        ipxe = getattr(boot, 'ipxe_enabled', False)
        http = getattr(boot, 'http_boot_enabled', False)
        opts = []
        for version in ip_versions or self.IP_VERSIONS:
            opts += pxe_utils.dhcp_options_for_instance(
                task, ipxe_enabled=ipxe, ip_version=version,
                http_boot_enabled=http)
        return opts

    # -- running a provider --------------------------------------------------

    def update_with(self, provider, node, options=None):
        """Runs DHCPFactory().update_dhcp on a fresh task; returns options."""
        api = self.use_provider(provider)
        with self.acquire(node) as task:
            if options is None:
                options = self.boot_options(task)
            api.update_dhcp(task, options)
        return options

    def clean_with(self, provider, node):
        api = self.use_provider(provider)
        with self.acquire(node) as task:
            api.clean_dhcp(task)

    def tag_of(self, node):
        node.refresh()
        return node.driver_internal_info.get('dnsmasq_tag')

    # -- reading results ---------------------------------------------------

    def stock_files(self):
        return (broker_process.read_dir(self.stock_hosts),
                broker_process.read_dir(self.stock_opts))

    def broker_files(self, broker=None):
        broker = broker or self.broker
        return broker.files('hosts'), broker.files('opts')

    def assert_no_strays(self, broker=None):
        broker = broker or self.broker
        for d in (broker.hosts_dir, broker.opts_dir):
            self.assertEqual([], broker_process.stray_files(d),
                             'temporary or other non-entry files in %s' % d)

    def assert_same_as_stock(self, broker=None):
        broker_hosts, broker_opts = self.broker_files(broker)
        stock_hosts, stock_opts = self.stock_files()
        self.assertEqual(stock_hosts, broker_hosts)
        self.assertEqual(stock_opts, broker_opts)
        self.assert_no_strays(broker)
