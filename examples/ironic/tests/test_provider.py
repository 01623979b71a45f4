"""The hostsdir-broker provider inside real Ironic, against a live broker.

Every comparison runs Ironic's stock ``dnsmasq`` provider
(``DnsmasqDHCPApi``) on the same node into scratch directories and checks
that the broker's directories hold the same file names and bytes.
"""

import importlib.metadata
import os
import secrets
import socket
import subprocess
import threading
import time

import fixtures
from ironic.common import exception
from ironic.conf import CONF

from ironic_hostsdir_broker import conf as broker_conf
from ironic_hostsdir_broker import provider

import ironic_case
from ironic_case import BROKER, STOCK

MAC1 = '52:54:00:cf:2d:32'
MAC2 = '52:54:00:cf:2d:33'
OTHER = '52:54:00:cf:2d:99'


def host_line(mac, tag):
    return ('%s,set:%s,set:ironic\n' % (mac, tag)).encode()


class TestLoading(ironic_case.BrokerTestCase):

    def test_factory_loads_provider_by_entry_point_name(self):
        api = self.use_provider('hostsdir-broker')
        self.assertIsInstance(api.provider, provider.HostsdirBrokerDHCPApi)
        self.assertTrue(api.provider.supports_ipxe_tag())
        eps = {ep.name: ep.value for ep in
               importlib.metadata.entry_points(group='ironic.dhcp')}
        self.assertEqual(
            'ironic_hostsdir_broker.provider:HostsdirBrokerDHCPApi',
            eps['hostsdir-broker'])
        # The stock providers are still there next to it.
        self.assertIn('dnsmasq', eps)

    def test_oslo_config_generator_entry_point(self):
        eps = {ep.name: ep for ep in
               importlib.metadata.entry_points(group='oslo.config.opts')}
        groups = eps['ironic_hostsdir_broker'].load()()
        self.assertEqual(['hostsdir_broker'], [g for g, _ in groups])
        names = {o.name for o in groups[0][1]}
        self.assertEqual({'url', 'token_file', 'timeout', 'retries',
                          'ca_file', 'cert_file', 'key_file', 'insecure',
                          'ipv6_options_as_option6'}, names)
        self.assertTrue(CONF.hostsdir_broker.ipv6_options_as_option6)
        self.assertIs(broker_conf.list_opts, eps[
            'ironic_hostsdir_broker'].load())

    def test_ironic_is_a_release_the_metadata_names(self):
        # pyproject.toml states the supported series and the release each is
        # tested with; run-tests.sh names the series it is running.
        import tomllib
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, '..', 'pyproject.toml'), 'rb') as f:
            series = tomllib.load(f)['tool']['ironic-hostsdir-broker'][
                'ironic-series']
        self.assertEqual({'2026.1', '2026.2'}, set(series))
        running = importlib.metadata.version('ironic')
        self.assertIn(running, series.values())
        under_test = os.environ.get('IRONIC_SERIES_UNDER_TEST')
        if under_test is not None:
            self.assertEqual(series[under_test], running)

    def test_unusable_token_file_is_a_load_error(self):
        missing = os.path.join(self._tmp, 'no-such-token-file')
        self.config(token_file=missing, group='hostsdir_broker')
        exc = self.assertRaises(exception.DHCPLoadError,
                                self.use_provider, BROKER)
        self.assertIn('hostsdir-broker', str(exc))
        self.assertIn(missing, str(exc))

    def test_token_file_without_write_token_is_a_load_error(self):
        path = os.path.join(self._tmp, 'tokens')
        with open(path, 'w') as f:
            f.write('# only a reader\nread %s\n' % secrets.token_hex(32))
        self.config(token_file=path, group='hostsdir_broker')
        exc = self.assertRaises(exception.DHCPLoadError,
                                self.use_provider, BROKER)
        self.assertIn('no "write <token>" line', str(exc))

    def test_update_port_dhcp_opts_does_nothing_like_stock(self):
        api = self.use_provider(BROKER)
        self.assertIsNone(api.provider.update_port_dhcp_opts(
            'port-id', [{'opt_name': '67', 'opt_value': 'x',
                         'ip_version': 4}]))
        self.assertEqual(({}, {}), self.broker_files())


class TestSameFilesAsStock(ironic_case.BrokerTestCase):
    """IPv4 option lists, default configuration: byte-identical files."""

    def _compare(self, boot_interface, boot_mode, macs=(MAC1, MAC2),
                 other_macs=(OTHER,)):
        node = self.make_node(boot_interface, boot_mode, macs, other_macs)
        options = self.update_with(BROKER, node)
        tag = self.tag_of(node)
        self.assertTrue(tag)
        self.update_with(STOCK, node, options)
        self.assertEqual(tag, self.tag_of(node), 'stock reuses the tag')
        self.assert_same_as_stock()

        hosts, opts = self.broker_files()
        self.assertEqual({'ironic-%s.conf' % m: host_line(m, tag)
                          for m in macs}, hosts)
        self.assertEqual(['ironic-%s.conf' % node.uuid], list(opts))
        text = opts['ironic-%s.conf' % node.uuid].decode()
        self.assertEqual(len(options), len(text.splitlines()))
        self.assertTrue(text.endswith('\n'))
        for line in text.splitlines():
            self.assertTrue(line.startswith('tag:%s,' % tag), line)
        return text

    def test_pxe_bios(self):
        text = self._compare('pxe', 'bios')
        self.assertIn(',67,pxelinux.0\n', text)
        self.assertIn(',66,192.0.2.10\n', text)
        self.assertIn(',255,192.0.2.10\n', text)

    def test_pxe_uefi(self):
        text = self._compare('pxe', 'uefi')
        self.assertIn(',67,bootx64.efi\n', text)

    def test_ipxe_bios(self):
        text = self._compare('ipxe', 'bios')
        self.assertIn(',tag:!ipxe,67,undionly.kpxe\n', text)
        self.assertIn(',tag:ipxe,67,http://192.0.2.10:8080/boot.ipxe\n',
                      text)

    def test_ipxe_uefi(self):
        text = self._compare('ipxe', 'uefi')
        self.assertIn(',tag:!ipxe,67,snponly.efi\n', text)

    def test_uefi_http_boot(self):
        text = self._compare('http', 'uefi')
        self.assertIn(',60,HTTPClient\n', text)
        self.assertIn(',67,http://192.0.2.10:8080/', text)

    def test_uefi_http_ipxe_boot(self):
        self._compare('http-ipxe', 'uefi')

    def test_single_port(self):
        self._compare('pxe', 'bios', macs=(MAC1,), other_macs=())

    def test_no_pxe_enabled_port(self):
        # The only port is not PXE-enabled: an options file, no host file.
        self._compare('pxe', 'bios', macs=(), other_macs=(MAC2,))

    def test_option_without_value_is_skipped_like_stock(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        options = [{'opt_name': '67', 'opt_value': 'pxelinux.0',
                    'ip_version': 4},
                   {'opt_name': '66', 'ip_version': 4},
                   {'opt_value': 'x', 'ip_version': 4}]
        self.update_with(BROKER, node, options)
        self.update_with(STOCK, node, options)
        self.assert_same_as_stock()

    def test_no_options_at_all(self):
        # Stock writes a file holding a single "\n".
        node = self.make_node('pxe', 'bios', (MAC1,))
        self.update_with(BROKER, node, [])
        self.update_with(STOCK, node, [])
        self.assert_same_as_stock()


class TestFullOptionSet(ironic_case.BrokerTestCase):
    """The IPv4 + IPv6 option list Ironic's boot interfaces really send."""

    IP_VERSIONS = (4, 6)

    def test_stock_form_is_refused_with_a_clear_error(self):
        # The stock provider writes the IPv6 boot URL as a bare "59" (the
        # DHCPv4 rebinding time). The broker refuses that line, so with
        # option6 turned off the update fails cleanly and writes nothing.
        self.config(ipv6_options_as_option6=False, group='hostsdir_broker')
        node = self.make_node('ipxe', 'uefi', (MAC1,))
        with self.acquire(node) as task:
            options = self.boot_options(task)
            self.assertIn(6, {o['ip_version'] for o in options})
            api = self.use_provider(BROKER)
            exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                    api.update_dhcp, task, options)
        self.assertIn('option6:59', str(exc))
        hosts, opts = self.broker_files()
        self.assertEqual({}, hosts)
        self.assertEqual({}, opts)

    def _option6(self, boot_interface, boot_mode):
        self.config(ipv6_options_as_option6=True, group='hostsdir_broker')
        node = self.make_node(boot_interface, boot_mode, (MAC1, MAC2),
                              (OTHER,))
        options = self.update_with(BROKER, node)
        tag = self.tag_of(node)
        self.update_with(STOCK, node, options)
        broker_hosts, broker_opts = self.broker_files()
        stock_hosts, stock_opts = self.stock_files()
        self.assertEqual(stock_hosts, broker_hosts)
        self.assert_no_strays()

        name = 'ironic-%s.conf' % node.uuid
        ours = broker_opts[name].decode().splitlines()
        stock = stock_opts[name].decode().splitlines()
        self.assertEqual(len(stock), len(ours))
        for opt, our, theirs in zip(options, ours, stock):
            if opt['ip_version'] == 4:
                self.assertEqual(theirs, our)
            else:
                # Stock's line with the option number made option6:.
                self.assertEqual('tag:%s,%s,%s' % (
                    tag, opt['opt_name'], opt['opt_value']), theirs)
                self.assertEqual('tag:%s,%s,%s' % (
                    tag, provider.as_option6(opt['opt_name']),
                    opt['opt_value']), our)
        self.assertTrue(broker_opts[name].endswith(b'\n'))
        return broker_opts[name].decode()

    def test_option6_pxe_bios(self):
        text = self._option6('pxe', 'bios')
        self.assertIn(',option6:59,tftp://[2001:db8::10]/pxelinux.0\n',
                      text)

    def test_option6_pxe_uefi(self):
        self._option6('pxe', 'uefi')

    def test_option6_ipxe_bios(self):
        text = self._option6('ipxe', 'bios')
        self.assertIn(',tag:!ipxe6,option6:59,', text)
        self.assertIn(',tag:ipxe6,option6:59,http://192.0.2.10:8080/'
                      'boot.ipxe\n', text)

    def test_option6_ipxe_uefi(self):
        self._option6('ipxe', 'uefi')

    def test_option6_uefi_http_boot(self):
        self._option6('http', 'uefi')

    def test_option6_uefi_http_ipxe_boot(self):
        self._option6('http-ipxe', 'uefi')

    def test_option6_clean_and_repeat(self):
        self.config(ipv6_options_as_option6=True, group='hostsdir_broker')
        node = self.make_node('ipxe', 'uefi', (MAC1,))
        options = self.update_with(BROKER, node)
        first = self.broker_files()
        self.update_with(BROKER, node, options)
        self.assertEqual(first, self.broker_files())
        self.clean_with(BROKER, node)
        self.clean_with(STOCK, node)
        self.assert_same_as_stock()


class TestClean(ironic_case.BrokerTestCase):

    def test_clean_same_as_stock_and_drops_tag(self):
        node = self.make_node('ipxe', 'uefi', (MAC1, MAC2), (OTHER,))
        options = self.update_with(BROKER, node)
        self.update_with(STOCK, node, options)
        self.clean_with(BROKER, node)
        self.assertIsNone(self.tag_of(node))
        self.clean_with(STOCK, node)
        self.assert_same_as_stock()
        self.assertEqual(({'ironic-%s.conf' % MAC1: b'%s,ignore\n' % MAC1
                           .encode(),
                           'ironic-%s.conf' % MAC2: b'%s,ignore\n' % MAC2
                           .encode()}, {}), self.broker_files())

    def test_clean_twice_and_clean_without_update(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        # Never updated: no options file exists.
        self.clean_with(BROKER, node)
        self.clean_with(STOCK, node)
        self.assert_same_as_stock()
        # Updated, then cleaned twice.
        self.update_with(BROKER, node)
        self.update_with(STOCK, node, None)
        self.clean_with(BROKER, node)
        self.clean_with(BROKER, node)
        self.clean_with(STOCK, node)
        self.clean_with(STOCK, node)
        self.assert_same_as_stock()

    def test_update_after_clean_uses_a_new_tag(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        self.update_with(BROKER, node)
        first = self.tag_of(node)
        self.clean_with(BROKER, node)
        options = self.update_with(BROKER, node)
        second = self.tag_of(node)
        self.assertNotEqual(first, second)
        self.update_with(STOCK, node, options)
        self.assert_same_as_stock()
        self.assertEqual(host_line(MAC1, second),
                         self.broker.files('hosts')['ironic-%s.conf' % MAC1])


class TestCleanRace(ironic_case.BrokerTestCase):

    def test_options_changed_between_read_and_batch_412_starts_over(self):
        from ironic_hostsdir_broker import client as broker_client
        node = self.make_node('pxe', 'bios', (MAC1,))
        self.update_with(BROKER, node)
        tag = self.tag_of(node)
        name = 'ironic-%s.conf' % node.uuid
        real = broker_client.BrokerClient.get_option
        calls = []

        def racing_get_option(client, entry):
            answer = real(client, entry)
            calls.append(entry)
            if len(calls) == 1:
                # Another writer replaces the file right after our read.
                r = self.broker.api('PUT', '/v1/options/' + name, json={
                    'lines': ['tag:%s,67,other.efi' % tag]})
                self.assertEqual(200, r.status_code, r.text)
            return answer

        self.useFixture(fixtures.MockPatchObject(
            broker_client.BrokerClient, 'get_option',
            autospec=True, side_effect=racing_get_option))
        self.clean_with(BROKER, node)
        self.assertEqual([name, name], calls)
        self.assertEqual({}, self.broker.files('opts'))
        self.assertEqual(b'%s,ignore\n' % MAC1.encode(),
                         self.broker.files('hosts')['ironic-%s.conf' % MAC1])


class TestRepeatedUpdate(ironic_case.BrokerTestCase):

    def _stats(self):
        out = {}
        for d in (self.broker.hosts_dir, self.broker.opts_dir):
            for name in os.listdir(d):
                if not name.startswith('.'):
                    st = os.stat(os.path.join(d, name))
                    out[name] = (st.st_ino, st.st_mtime_ns)
        return out

    def test_same_bytes_again_writes_nothing(self):
        node = self.make_node('ipxe', 'bios', (MAC1, MAC2))
        options = self.update_with(BROKER, node)
        before = self.broker_files()
        stats = self._stats()
        time.sleep(0.05)
        self.update_with(BROKER, node, options)
        self.assertEqual(before, self.broker_files())
        self.assertEqual(stats, self._stats(),
                         'unchanged entries were rewritten')
        self.update_with(STOCK, node, options)
        self.assert_same_as_stock()

    def test_changed_options_replace_the_file(self):
        node = self.make_node('ipxe', 'bios', (MAC1,))
        first = self.update_with(BROKER, node)
        self.update_with(STOCK, node, first)
        self.assert_same_as_stock()
        before = self.broker.files('opts')

        self.config(http_url='http://192.0.2.20:8080', group='deploy')
        second = self.update_with(BROKER, node)
        self.assertNotEqual(first, second)
        self.update_with(STOCK, node, second)
        self.assert_same_as_stock()
        self.assertNotEqual(before, self.broker.files('opts'))
        # Other values for the same options and tags: the new lines shadow
        # the ones dnsmasq already read, so no reload is needed.
        status = self.broker.api('GET', '/v1/status').json()
        self.assertEqual(status['reload']['requested'], 0, status['reload'])
        self.assertGreaterEqual(status['reload']['avoided'], 1)

        # Switching the boot interface changes the option set itself (an
        # option or a tag set is dropped): that needs a reload.
        node.refresh()
        node.boot_interface = 'pxe'
        node.save()
        third = self.update_with(BROKER, node)
        self.update_with(STOCK, node, third)
        self.assert_same_as_stock()
        status = self.broker.api('GET', '/v1/status').json()
        self.assertGreaterEqual(status['reload']['requested'], 1)

    def test_port_added_later(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        self.update_with(BROKER, node)
        from ironic.tests.unit.objects import utils as object_utils
        from oslo_utils import uuidutils
        object_utils.create_test_port(self.context, node_id=node.id,
                                      uuid=uuidutils.generate_uuid(),
                                      address=MAC2, pxe_enabled=True)
        options = self.update_with(BROKER, node)
        self.update_with(STOCK, node, options)
        self.assert_same_as_stock()


class _SilentServer(object):
    """Accepts TCP connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns = []
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)

    def close(self):
        self._stop = True
        for c in self._conns:
            c.close()
        self.sock.close()


def _closed_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class TestFailures(ironic_case.BrokerTestCase):

    def test_broker_down_update_leaves_nothing_behind(self):
        done = self.make_node('pxe', 'bios', (MAC1,))
        self.update_with(BROKER, done)
        before = self.broker_files()
        self.broker.stop()

        node = self.make_node('pxe', 'bios', (MAC2,))
        self.config(retries=2, group='hostsdir_broker')
        start = time.monotonic()
        exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                self.update_with, BROKER, node)
        self.assertLess(time.monotonic() - start, 5)
        self.assertIn(self.broker.url, str(exc))
        self.assertIn('unreachable', str(exc))
        self.assertIn(node.uuid, str(exc))
        self.assertEqual(before, self.broker_files())
        self.assert_no_strays()

    def test_broker_down_clean_keeps_the_tag(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        self.update_with(BROKER, node)
        tag = self.tag_of(node)
        before = self.broker_files()
        self.broker.stop()
        exc = self.assertRaises(exception.FailedToCleanDHCPOpts,
                                self.clean_with, BROKER, node)
        self.assertIn('unreachable', str(exc))
        self.assertEqual(tag, self.tag_of(node))
        self.assertEqual(before, self.broker_files())

    def test_broker_down_get_ip_addresses(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        api = self.use_provider(BROKER)
        self.broker.stop()
        with self.acquire(node) as task:
            exc = self.assertRaises(exception.FailedToGetIPAddressOnPort,
                                    api.provider.get_ip_addresses, task)
        self.assertIn(MAC1, str(exc))
        self.assertIn('unreachable', str(exc))

    def test_nothing_listening_is_bounded(self):
        self.config(url='http://127.0.0.1:%d' % _closed_port(), retries=3,
                    group='hostsdir_broker')
        node = self.make_node('pxe', 'bios', (MAC1,))
        start = time.monotonic()
        self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                          self.update_with, BROKER, node)
        # 4 attempts, back-off 0.25 + 0.5 + 1 s.
        self.assertLess(time.monotonic() - start, 4)

    def test_unanswering_broker_times_out(self):
        server = _SilentServer()
        self.addCleanup(server.close)
        self.config(url='http://127.0.0.1:%d' % server.port, timeout=0.5,
                    retries=1, group='hostsdir_broker')
        node = self.make_node('pxe', 'bios', (MAC1,))
        start = time.monotonic()
        exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                self.update_with, BROKER, node)
        elapsed = time.monotonic() - start
        self.assertIn('timeout', str(exc))
        # An update is an unconditional, repeatable write: retried once.
        self.assertEqual(2, server.accepted)
        self.assertLess(elapsed, 3)

    def test_mac_held_by_another_entry_is_409(self):
        # ironic-inspector's / Ironic's dnsmasq PXE filter names host files
        # by the bare MAC: one such file already holds MAC1.
        def preexisting(broker):
            with open(os.path.join(broker.hosts_dir, MAC1), 'w') as f:
                f.write('%s,ignore\n' % MAC1)

        broker = self.start_broker('with-filter-file',
                                   before_start=preexisting)
        self.point_at(broker)
        before = self.broker_files(broker)
        self.assertEqual([MAC1], list(before[0]))

        node = self.make_node('pxe', 'bios', (MAC2, MAC1))
        exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                self.update_with, BROKER, node)
        text = str(exc)
        self.assertIn('409 conflict', text)
        # The broker's message names the entry holding the MAC.
        self.assertIn(MAC1, text)
        self.assertIn(broker.url, text)
        # All or nothing: neither MAC2's host file nor the options file.
        self.assertEqual(before, self.broker_files(broker))
        self.assert_no_strays(broker)

    def test_broker_message_of_the_409_is_passed_on_verbatim(self):
        def preexisting(broker):
            with open(os.path.join(broker.hosts_dir, MAC1), 'w') as f:
                f.write('%s,ignore\n' % MAC1)

        broker = self.start_broker('verbatim', before_start=preexisting)
        self.point_at(broker)
        # What the broker itself says to a direct request for the same put.
        direct = broker.api('PUT', '/v1/hosts/ironic-%s.conf' % MAC1,
                            json={'line': '%s,set:x,set:ironic' % MAC1})
        self.assertEqual(409, direct.status_code, direct.text)
        message = direct.json()['error']['message']
        node = self.make_node('pxe', 'bios', (MAC1,))
        exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                self.update_with, BROKER, node)
        self.assertIn(message, str(exc))

    def test_invalid_option_value_is_400_and_writes_nothing(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        options = [{'opt_name': '67', 'opt_value': 'pxelinux.0',
                    'ip_version': 4},
                   {'opt_name': '66',
                    'opt_value': '192.0.2.10\ndhcp-host=evil',
                    'ip_version': 4}]
        exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                self.update_with, BROKER, node, options)
        text = str(exc)
        self.assertIn('400', text)
        self.assertIn('ops[0]', text)
        self.assertEqual(({}, {}), self.broker_files())
        self.assert_no_strays()

    def test_unknown_option_name_is_400(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        options = [{'opt_name': 'tag:ipxe,bootfile-nmae',
                    'opt_value': 'x', 'ip_version': 4}]
        exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                self.update_with, BROKER, node, options)
        self.assertIn('400', str(exc))
        self.assertEqual(({}, {}), self.broker_files())

    def test_400_message_is_the_brokers(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        bad = {'opt_name': '67', 'opt_value': 'a\nb', 'ip_version': 4}
        api = self.use_provider(BROKER)
        with self.acquire(node) as task:
            exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                    api.update_dhcp, task, [bad])
            tag = task.node.driver_internal_info['dnsmasq_tag']
        direct = self.broker.api(
            'PUT', '/v1/options/ironic-%s.conf' % node.uuid,
            json={'lines': ['tag:%s,67,a\nb' % tag]})
        self.assertEqual(400, direct.status_code, direct.text)
        self.assertIn(direct.json()['error']['message'], str(exc))


class TestMigration(ironic_case.BrokerTestCase):
    """Directories the stock provider wrote, taken over by the broker."""

    def _options(self, node, ip_versions):
        self.use_provider(BROKER)
        with self.acquire(node) as task:
            return self.boot_options(task, ip_versions)

    def _stock_then_broker(self, node, options):
        """Stock writes into a new broker's directories, then it starts."""
        def stock_writes(broker):
            self.config(dhcp_hostsdir=broker.hosts_dir,
                        dhcp_optsdir=broker.opts_dir, group='dnsmasq')
            self.update_with(STOCK, node, options)

        broker = self.start_broker('migrated', before_start=stock_writes)
        self.config(dhcp_hostsdir=self.stock_hosts,
                    dhcp_optsdir=self.stock_opts, group='dnsmasq')
        self.point_at(broker)
        return broker

    @staticmethod
    def _check(broker):
        return subprocess.run(
            [broker.binary, 'check', '--hosts-dir', broker.hosts_dir,
             '--opts-dir', broker.opts_dir],
            capture_output=True, text=True, timeout=60)

    @staticmethod
    def _reloads(broker):
        r = broker.api('GET', '/v1/status')
        return r.json()['reload']['requested']

    def _inodes(self, broker):
        out = {}
        for d in (broker.hosts_dir, broker.opts_dir):
            for name in os.listdir(d):
                if not name.startswith('.'):
                    st = os.stat(os.path.join(d, name))
                    out[name] = (st.st_ino, st.st_mtime_ns)
        return out

    def test_stock_files_pass_check_and_are_adopted_unchanged(self):
        node = self.make_node('ipxe', 'uefi', (MAC1, MAC2))
        options = self._options(node, (4,))
        broker = self._stock_then_broker(node, options)
        result = self._check(broker)
        self.assertEqual(0, result.returncode,
                         result.stdout + result.stderr)
        before = self.broker_files(broker)
        inodes = self._inodes(broker)
        self.update_with(BROKER, node, options)
        self.assertEqual(before, self.broker_files(broker))
        self.assertEqual(inodes, self._inodes(broker))
        self.assertEqual(0, self._reloads(broker))
        self.clean_with(BROKER, node)
        self.update_with(STOCK, node, options)
        self.clean_with(STOCK, node)
        self.assert_same_as_stock(broker)

    def test_check_flags_stock_ipv6_boot_url_lines(self):
        node = self.make_node('ipxe', 'uefi', (MAC1,))
        broker = self._stock_then_broker(node, self._options(node, (4, 6)))
        result = self._check(broker)
        self.assertNotEqual(0, result.returncode)
        self.assertIn('ironic-%s.conf' % node.uuid, result.stdout +
                      result.stderr)
        self.assertIn('option6:59', result.stdout + result.stderr)

    def test_clean_removes_a_stock_written_ipv6_options_file(self):
        # Every options file written by a stock conductor holds the "59"
        # lines; cleaning such a node through the broker must still remove
        # it, as the stock clean does.
        node = self.make_node('ipxe', 'uefi', (MAC1,))
        options = self._options(node, (4, 6))
        broker = self._stock_then_broker(node, options)
        self.clean_with(BROKER, node)
        self.update_with(STOCK, node, options)
        self.clean_with(STOCK, node)
        self.assert_same_as_stock(broker)

    def test_replacing_a_stock_written_ipv6_options_file_reloads(self):
        # dnsmasq loaded the stock file; replacing it with other bytes
        # needs a reload (DNSMASQ-FACTS), like any other replacement.
        self.config(ipv6_options_as_option6=True, group='hostsdir_broker')
        node = self.make_node('ipxe', 'uefi', (MAC1,))
        options = self._options(node, (4, 6))
        broker = self._stock_then_broker(node, options)
        self.update_with(BROKER, node, options)
        text = broker.files('opts')['ironic-%s.conf' % node.uuid].decode()
        self.assertIn(',option6:59,', text)
        self.assertGreaterEqual(self._reloads(broker), 1)


class TestLeases(ironic_case.BrokerTestCase):

    LEASES = (
        '1732400000 52:54:00:cf:2d:32 192.0.2.101 node-1 '
        '01:52:54:00:cf:2d:32\n'
        '1732400100 52:54:00:aa:bb:cc 192.0.2.150 * *\n'
        '0 52:54:00:cf:2d:33 192.0.2.102 * *\n'
        '1732400300 52:54:00:cf:2d:99 192.0.2.199 other *\n'
        'duid 00:01:00:01:2c:aa:bb:cc:dd:ee:ff:00\n'
        '1732400200 1234567 2001:db8::55 node-1 00:01:00:01:2c:aa:bb:cc\n'
    )

    def _write_leases(self, text):
        for path in (self.broker.lease_file, self.stock_leases):
            with open(path, 'w') as f:
                f.write(text)

    def _addresses(self, provider_name, node):
        api = self.use_provider(provider_name)
        with self.acquire(node) as task:
            return api.provider.get_ip_addresses(task)

    def test_same_addresses_as_stock(self):
        self._write_leases(self.LEASES)
        node = self.make_node('pxe', 'uefi', (MAC1, MAC2), (OTHER,))
        ours = self._addresses(BROKER, node)
        self.assertEqual(['192.0.2.101', '192.0.2.102'], ours)
        self.assertEqual(self._addresses(STOCK, node), ours)

    def test_no_lease_for_the_node(self):
        self._write_leases(self.LEASES)
        node = self.make_node('pxe', 'bios', ('52:54:00:00:00:01',))
        self.assertEqual([], self._addresses(BROKER, node))
        self.assertEqual([], self._addresses(STOCK, node))

    def test_lease_file_not_written_yet(self):
        node = self.make_node('pxe', 'bios', (MAC1,))
        self.assertFalse(os.path.exists(self.broker.lease_file))
        self.assertEqual([], self._addresses(BROKER, node))


class TestOption6(ironic_case.BrokerTestCase):

    def test_as_option6(self):
        self.assertEqual('option6:59', provider.as_option6('59'))
        self.assertEqual('tag:!ipxe6,option6:59',
                         provider.as_option6('tag:!ipxe6,59'))
        self.assertEqual('tag:a,option6:bootfile-url',
                         provider.as_option6('tag:a,option:bootfile-url'))
        self.assertEqual('option6:23', provider.as_option6('option6:23'))


class TestAuthentication(ironic_case.BrokerTestCase):

    def _tokens(self, name, text):
        path = os.path.join(self._tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_write_token_is_used(self):
        write = secrets.token_hex(32)
        path = self._tokens('tokens', '# roles\nread %s\nwrite %s\n'
                            % (secrets.token_hex(32), write))
        broker = self.start_broker('auth', token_file=path)
        self.point_at(broker, token_file=path)
        # Without a token the broker refuses: auth is really on.
        self.assertEqual(401, broker.api('POST', '/v1/batch',
                                         json={'ops': []}).status_code)
        node = self.make_node('pxe', 'bios', (MAC1,))
        options = self.update_with(BROKER, node)
        self.update_with(STOCK, node, options)
        self.assert_same_as_stock(broker)
        self.clean_with(BROKER, node)
        self.assertEqual({}, broker.files('opts'))

    def test_wrong_token_is_a_clear_error(self):
        path = self._tokens('tokens', 'write %s\n' % secrets.token_hex(32))
        mine = self._tokens('mine', 'write %s\n' % secrets.token_hex(32))
        broker = self.start_broker('auth', token_file=path)
        self.point_at(broker, token_file=mine)
        node = self.make_node('pxe', 'bios', (MAC1,))
        exc = self.assertRaises(exception.FailedToUpdateDHCPOptOnPort,
                                self.update_with, BROKER, node)
        self.assertIn('401', str(exc))
        self.assertEqual(({}, {}), self.broker_files(broker))
