"""understack's dnsmasq, driven by the real Ironic provider, end to end.

The configuration rackerlabs/understack deploys (see understack_world.py):
dnsmasq 2.93 run ``--no-daemon`` under the broker's supervision, with
``dhcp-authoritative``, ``dhcp-ignore-clid``, ``dhcp-match=ipxe,175``, a
provisioning range tagged ``set:prov1``, no ``dhcp-ignore=tag:!known``,
``/etc/dnsmasq.d/hostsdir.d`` and ``optsdir.d``, and its lease file at
``/var/lib/misc/dnsmasq.leases`` (all under a temporary root). Ironic
nodes, ports and tasks are real (Ironic's DB-backed test case); the DHCP
options are what Ironic's boot interfaces send (IPv4 and IPv6 halves); the
provider is loaded by its entry point and talks to the broker over HTTP;
a real DHCP client (busybox udhcpc, in another network namespace) checks
what dnsmasq answers:

- a node PXE-boots with its options: the PXE ROM gets the iPXE binary, iPXE
  itself (option 175, understack's ``ipxe`` tag) the iPXE script;
- a cleaned node is ignored, while an unknown MAC still gets a pool address
  (understack has no ``dhcp-ignore=tag:!known``) unless Ironic's PXE
  filter's deny-all entry is in the hosts directory;
- a re-enrolled node gets its new tag and boot file;
- every answer comes from the broker's child dnsmasq 2.93: its server id,
  the version and pid the broker reports, the binary behind that pid, and
  dnsmasq's own log line for the exchange.

Needs root, ``ip``, ``udhcpc`` and dnsmasq 2.93 (``scripts/build-dnsmasq.sh
2.93``): without them every test here FAILS naming what is missing (set
``IRONIC_E2E_ALLOW_SKIP=1`` to skip them instead).
"""

import os
import re

from ironic.common import dhcp_factory
from ironic.pxe_filter import dnsmasq as pxe_filter_dnsmasq
import pytest

import ironic_case
from ironic_case import BROKER
import understack_world as uw

MAC = '52:54:00:5e:00:11'
OTHER_PORT = '52:54:00:5e:00:99'
UNKNOWN = '52:54:00:5e:00:21'
UNKNOWN_2 = '52:54:00:5e:00:22'
# What iPXE sends and understack's `dhcp-match=ipxe,175` looks for.
IPXE = ('-x', '0xaf:01')
HTTP_URL = 'http://%s:8080' % uw.SERVER_IP
IPXE_SCRIPT = HTTP_URL + '/boot.ipxe'

# dnsmasq's own lines in the log it shares with the broker.
DNSMASQ_LINE = re.compile(r'\bdnsmasq(-dhcp|-tftp)?\[\d+\]: ')
# dnsmasq log words that mean a line or file was refused or misread.
# Logged at start and on SIGHUP because the fixture has no upstream DNS
# server (understack's forwards to the cluster's resolver).
BENIGN = 'warning: no upstream servers configured'
BAD_LOG_WORDS = ('duplicate', 'cannot', 'bad ', 'error', 'failed',
                 'illegal', 'ignoring', 'unknown', 'warning')


class UnderstackTestCase(ironic_case.BrokerTestCase):

    # What Ironic's boot interfaces send: the IPv4 and the IPv6 list.
    IP_VERSIONS = (4, 6)

    @pytest.fixture(autouse=True)
    def _inject_world(self, understack_world):
        self.world = understack_world

    def make_broker(self):
        return self.world.broker

    def setUp(self):
        super().setUp()
        # The boot servers are the dnsmasq host, as in understack.
        self.config(tftp_server=uw.SERVER_IP, group='pxe')
        self.config(http_url=HTTP_URL, group='deploy')
        self.dnsmasq_pid = self.assert_served_by_dnsmasq_293()

    # -- checks ------------------------------------------------------------

    def assert_served_by_dnsmasq_293(self):
        """The broker's child is the one dnsmasq here, and it is 2.93."""
        status = self.world.status()
        d = status['dnsmasq']
        self.assertEqual('supervise', status['reload']['method'])
        self.assertEqual(uw.DNSMASQ_VERSION, d['version'], status)
        self.assertTrue(d['running'], status)
        self.assertEqual([d['pid']], self.world.dnsmasq_pids(),
                         'the broker reports another dnsmasq than the one '
                         'running in the server namespace')
        self.assertEqual(os.path.realpath(self.world.dnsmasq_bin),
                         os.path.realpath('/proc/%d/exe' % d['pid']))
        return d['pid']

    def assert_lease(self, lease, mac, boot_file, what):
        """A lease from the broker's dnsmasq, from the tagged range, with
        `boot_file` (None: none), and logged by that dnsmasq."""
        self.assertIsNotNone(lease, '%s: no lease for %s' % (what, mac))
        self.assertEqual(uw.SERVER_IP, lease.get('serverid'), lease)
        self.assertEqual(uw.SERVER_IP, lease.get('router'),
                         'the range tag set:%s did not apply: %s'
                         % (uw.RANGE_TAG, lease))
        last = int(uw.POOL_END.rsplit('.', 1)[1])
        first = int(uw.POOL_START.rsplit('.', 1)[1])
        net, _, host = lease.ip.rpartition('.')
        self.assertEqual(uw.SERVER_IP.rpartition('.')[0], net, lease)
        self.assertTrue(first <= int(host) <= last, lease)
        self.assertEqual(boot_file, lease.boot_file, '%s: %s' % (what, lease))
        ack = 'dnsmasq-dhcp[%d]: ' % self.dnsmasq_pid
        acked = 'DHCPACK(%s) %s %s' % (uw.SRV_IF, lease.ip, mac)
        self.assertTrue(
            any(ack in line and acked in line
                for line in self.world.log().splitlines()),
            '%s: dnsmasq %d did not log %r'
            % (what, self.dnsmasq_pid, acked))
        return lease

    def assert_same_dnsmasq_and_clean_log(self):
        """dnsmasq was never restarted (each reload was a SIGHUP it
        survived) and logged no refused or misread line."""
        self.assertEqual(self.dnsmasq_pid, self.assert_served_by_dnsmasq_293())
        d = self.world.status()['dnsmasq']
        self.assertEqual(0, d['restarts'], d)
        # Paths (the test's temp dir) are left out of the words checked.
        bad = [line for line in self.world.log().splitlines()
               if DNSMASQ_LINE.search(line) and BENIGN not in line
               and any(w in re.sub(r'/\S*', '', line.lower())
                       for w in BAD_LOG_WORDS)]
        self.assertEqual([], bad)

    def wait_reloads_done(self):
        """Until the broker has no reload pending (SIGHUP delivered)."""
        uw.wait_until('the broker delivering its pending reload',
                      lambda: not self.world.status()['reload']['pending'],
                      uw.START_TIMEOUT)

    def host_file(self, mac):
        with open(os.path.join(self.world.root.hosts_dir,
                               'ironic-%s.conf' % mac)) as f:
            return f.read()

    def options_file(self, node):
        path = os.path.join(self.world.root.opts_dir,
                            'ironic-%s.conf' % node.uuid)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return f.read()

    def get_ip_addresses(self, node):
        api = dhcp_factory.DHCPFactory()
        with self.acquire(node) as task:
            return api.provider.get_ip_addresses(task)


class TestUnderstackDnsmasq(UnderstackTestCase):

    def test_node_pxe_boots_with_its_options(self):
        node = self.make_node('ipxe', 'uefi', macs=(MAC,),
                              other_macs=(OTHER_PORT,))
        self.update_with(BROKER, node)
        tag = self.tag_of(node)
        self.assertEqual('%s,set:%s,set:ironic\n' % (MAC, tag),
                         self.host_file(MAC))
        opts = self.options_file(node)
        self.assertIn('tag:%s,tag:!ipxe,67,snponly.efi\n' % tag, opts)
        self.assertIn('tag:%s,tag:ipxe,67,%s\n' % (tag, IPXE_SCRIPT), opts)
        self.assertIn(',option6:59,', opts)

        # The NIC's PXE ROM, then iPXE (option 175 sets the `ipxe` tag).
        rom = self.assert_lease(self.world.dhcp(MAC), MAC, 'snponly.efi',
                                'PXE ROM')
        ipxe = self.assert_lease(self.world.dhcp(MAC, extra=IPXE), MAC,
                                 IPXE_SCRIPT, 'iPXE')
        self.assertEqual(rom.ip, ipxe.ip)
        # dhcp-ignore-clid: a boot stage sending another client id keeps
        # the address (without the option, dnsmasq gives it another one).
        os_stage = self.assert_lease(
            self.world.dhcp(MAC, extra=('-x', '0x3d:ff00c0ffee')), MAC,
            'snponly.efi', 'another client id')
        self.assertEqual(rom.ip, os_stage.ip)

        # The lease file where understack keeps it, read back through the
        # broker by the provider.
        leases = self.world.leases_on_disk()
        self.assertEqual(1, leases.count(' %s %s ' % (MAC, rom.ip)), leases)
        self.assertEqual([rom.ip], self.get_ip_addresses(node))
        self.assert_same_dnsmasq_and_clean_log()

    def test_cleaned_node_is_ignored(self):
        node = self.make_node('ipxe', 'uefi', macs=(MAC,))
        self.update_with(BROKER, node)
        self.assert_lease(self.world.dhcp(MAC), MAC, 'snponly.efi', 'booted')

        self.clean_with(BROKER, node)
        self.assertIsNone(self.tag_of(node))
        self.assertEqual('%s,ignore\n' % MAC, self.host_file(MAC))
        self.assertIsNone(self.options_file(node))
        # The `ignore` record shadows the old one at once (no reload), and
        # understack's lack of dhcp-ignore=tag:!known does not matter: the
        # MAC is known, as one to ignore.
        self.assertIsNone(self.world.dhcp_expect_ignored(MAC))
        self.assertIsNone(self.world.dhcp_expect_ignored(MAC, extra=IPXE))
        # The options file's removal needs a SIGHUP; 2.93 survives it with
        # Ironic's `set:` hosts leased.
        self.wait_reloads_done()
        self.assertGreaterEqual(
            self.world.status()['reload']['delivered'], 1)
        self.assertIsNone(self.world.dhcp_expect_ignored(MAC))
        self.assert_same_dnsmasq_and_clean_log()

    def test_unknown_hosts_without_and_with_ironics_deny_entry(self):
        # No dhcp-ignore=tag:!known: a MAC nobody enrolled gets an address
        # from the tagged range, and no boot file.
        self.assert_lease(self.world.dhcp(UNKNOWN), UNKNOWN, None,
                          'unknown MAC')
        # Ironic's PXE filter (ironic.pxe_filter.dnsmasq, not configured by
        # understack) denies unknown hosts with a wildcard entry; through
        # the broker it is one more host entry.
        name = pxe_filter_dnsmasq._UNKNOWN_HOSTS_FILE
        line = pxe_filter_dnsmasq._DENY_UNKNOWN_HOSTS.strip()
        r = self.world.broker.api('PUT', '/v1/hosts/%s' % name,
                                  json={'line': line})
        self.assertEqual(201, r.status_code, r.text)
        node = self.make_node('ipxe', 'uefi', macs=(MAC,))
        self.update_with(BROKER, node)
        self.assertIsNone(self.world.dhcp_expect_ignored(UNKNOWN_2))
        # An exact MAC beats the wildcard, whatever the order read.
        self.assert_lease(self.world.dhcp(MAC), MAC, 'snponly.efi',
                          'enrolled node next to the deny-all entry')
        self.assert_same_dnsmasq_and_clean_log()

    def test_reenrolled_node_gets_its_new_tags(self):
        node = self.make_node('ipxe', 'uefi', macs=(MAC,))
        self.update_with(BROKER, node)
        old_tag = self.tag_of(node)
        self.assert_lease(self.world.dhcp(MAC), MAC, 'snponly.efi', 'first')
        self.clean_with(BROKER, node)
        self.assertIsNone(self.world.dhcp_expect_ignored(MAC))

        # Deleted from Ironic and enrolled again, now booting BIOS: a new
        # node (new options file), the same port MAC (its host file goes
        # from `ignore` to the new tag).
        node.destroy()
        again = self.make_node('ipxe', 'bios', macs=(MAC,))
        self.update_with(BROKER, again)
        new_tag = self.tag_of(again)
        self.assertNotEqual(old_tag, new_tag)
        self.assertEqual('%s,set:%s,set:ironic\n' % (MAC, new_tag),
                         self.host_file(MAC))
        self.assert_lease(self.world.dhcp(MAC), MAC, 'undionly.kpxe',
                          're-enrolled, PXE ROM')
        self.assert_lease(self.world.dhcp(MAC, extra=IPXE), MAC,
                          IPXE_SCRIPT, 're-enrolled, iPXE')
        # Still so once every pending reload is delivered.
        self.wait_reloads_done()
        self.assert_lease(self.world.dhcp(MAC), MAC, 'undionly.kpxe',
                          're-enrolled, after the reloads')
        self.assert_same_dnsmasq_and_clean_log()

    def test_broker_supervises_no_daemon_dnsmasq(self):
        # understack runs `dnsmasq --no-daemon`: the broker keeps that
        # (adds no --keep-in-foreground), knows its pid without a pid file,
        # and stops it with itself.
        with open('/proc/%d/cmdline' % self.dnsmasq_pid, 'rb') as f:
            argv = f.read().decode().split('\0')
        self.assertIn('--no-daemon', argv)
        self.assertNotIn('--keep-in-foreground', argv)
        self.assertNotIn('-k', argv)
        self.world.broker.stop()
        self.assertEqual(0, self.world.broker.proc.returncode,
                         self.world.log()[-2000:])
        uw.wait_until('dnsmasq gone with the broker',
                      lambda: not self.world.dnsmasq_pids(),
                      uw.START_TIMEOUT)
