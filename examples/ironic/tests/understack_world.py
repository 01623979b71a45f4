"""understack's dnsmasq, brought up for the end-to-end tests.

rackerlabs/understack runs Ironic's dnsmasq as the StatefulSet
``ironic-dnsmasq``: dnsmasq 2.93 (Debian forky) started with
``--no-daemon``, its configuration rendered into
``/etc/dnsmasq.d/dnsmasq.conf`` (``/etc/dnsmasq.conf`` is a symlink to it,
and ``conf-dir=/etc/dnsmasq.d`` reads that directory too), the hosts and
options directories below it on the PVC ``dnsmasq-ironic``, and the lease
file at Debian's default ``/var/lib/misc/dnsmasq.leases`` on the PVC
``dnsmasq-dhcp``. This module rebuilds that under a temporary root:

- ``<root>/etc/dnsmasq.d/dnsmasq.conf`` holds understack's DHCP options
  (``dhcp-authoritative``, ``dhcp-ignore-clid``, ``dhcp-match=ipxe,175``,
  a ``dhcp-range`` tagged with ``set:``, no ``dhcp-ignore=tag:!known``,
  ``log-facility=-``...) with the paths moved under ``<root>``;
- the broker (``hostsdir-broker serve``) supervises ``dnsmasq --no-daemon``
  in a network namespace of its own, on the directories and lease file
  above, as in ``examples/understack/``;
- a second namespace, joined by a veth pair, holds the DHCP client: busybox
  ``udhcpc``, which reports what each DHCP exchange gave it;
- the broker's API listens on 127.0.0.1 inside the server namespace; a
  relay process, started in that namespace with a listening socket made in
  this one, carries the test's HTTP (the Ironic provider's included) to it.

Everything is root-only (namespaces); :func:`prerequisites` says what is
missing. :meth:`World.close` stops every process and deletes the
namespaces, and is meant to run from a fixture finalizer.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import requests

import broker_process

# Addresses inside the namespaces this module creates (nowhere else).
SERVER_IP = '192.168.200.1'
PREFIX_LEN = 24
POOL_START = '192.168.200.4'
POOL_END = '192.168.200.12'
# The tag understack's template gives a provisioning network's range
# (DHCP_TAGS / DHCP_RANGE_<TAG>), here set by the range itself.
RANGE_TAG = 'prov1'
SRV_IF = 'ustk-srv'
CLI_IF = 'ustk-cli'
NS_PREFIX = 'hdbi-'
# The dnsmasq release understack's image ships (Debian forky).
DNSMASQ_VERSION = '2.93'

INSTALL_HINT = (
    'run as root (network namespaces), with `ip` (iproute2), busybox '
    '`udhcpc` and dnsmasq %s built by `scripts/build-dnsmasq.sh %s` '
    '(`sudo scripts/install-test-deps.sh` installs all of them)'
    % (DNSMASQ_VERSION, DNSMASQ_VERSION))

# How long a DHCP client keeps asking before it concludes "no lease": one
# DISCOVER per second, four of them, because a busy machine can delay
# dnsmasq's answer past one or two. A test that expects no answer asks
# twice and then also requires dnsmasq's log line saying it ignored the
# client, so a slow answer cannot pass for a refusal.
DHCP_TRIES = 4
NO_ANSWER_TRIES = 2
# dnsmasq starts in well under a second; the limit covers a busy machine.
START_TIMEOUT = 20.0

_counter = [0]


class Missing(Exception):
    """A prerequisite of the end-to-end tests is not there."""


def repo_root():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.abspath(os.path.join(here, '..', '..', '..'))


def dnsmasq_path():
    """dnsmasq 2.93: HDB_DNSMASQ_2_93, else target/dnsmasq-2.93/dnsmasq."""
    return os.environ.get('HDB_DNSMASQ_2_93') or os.path.join(
        repo_root(), 'target', 'dnsmasq-%s' % DNSMASQ_VERSION, 'dnsmasq')


def dnsmasq_banner(path):
    out = subprocess.run([path, '--version'], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=10)
    return out.stdout.decode('utf-8', 'replace').splitlines()[0]


def prerequisites():
    """The dnsmasq 2.93 binary; raises Missing naming what is absent."""
    missing = []
    if os.geteuid() != 0:
        missing.append('root (euid is %d)' % os.geteuid())
    for tool in ('ip', 'udhcpc'):
        if shutil.which(tool) is None:
            missing.append('`%s` on PATH' % tool)
    path = dnsmasq_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        missing.append('dnsmasq %s at %s' % (DNSMASQ_VERSION, path))
    else:
        banner = dnsmasq_banner(path)
        if not banner.startswith('Dnsmasq version %s ' % DNSMASQ_VERSION):
            missing.append('dnsmasq %s at %s (it says %r)'
                           % (DNSMASQ_VERSION, path, banner))
    if missing:
        raise Missing('the understack end-to-end tests need %s: %s'
                      % (', '.join(missing), INSTALL_HINT))
    return path


def run(*argv):
    """Runs a setup command; raises with its output when it fails."""
    out = subprocess.run(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=30)
    if out.returncode != 0:
        raise RuntimeError('`%s` failed (%d): %s' % (
            ' '.join(argv), out.returncode,
            out.stdout.decode('utf-8', 'replace').strip()))
    return out.stdout.decode('utf-8', 'replace')


def wait_until(what, cond, timeout):
    """Polls `cond` until true; raises naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('%s: not within %ss' % (what, timeout))
        time.sleep(0.05)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_pids(ns):
    out = subprocess.run(['ip', 'netns', 'pids', ns], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=10)
    return [int(p) for p in out.stdout.split()]


def _kill_netns(ns):
    """Kills what still runs in `ns` (all of it started by a test) and
    deletes the namespace."""
    for pid in _netns_pids(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while _netns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(['ip', 'netns', 'del', ns], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=10)


def remove_stale_namespaces():
    """Deletes namespaces an earlier, killed run of these tests left."""
    try:
        names = os.listdir('/run/netns')
    except FileNotFoundError:
        return
    for name in names:
        m = re.match(r'%s(\d+)-' % re.escape(NS_PREFIX), name)
        if m and int(m.group(1)) != os.getpid() and \
                not _pid_alive(int(m.group(1))):
            _kill_netns(name)


# ---------------------------------------------------------------------------
# understack's file layout and configuration, under a temporary root


class Root(object):
    """understack's dnsmasq paths under `base`."""

    def __init__(self, base, srv_if):
        self.base = base
        self.etc = os.path.join(base, 'etc')
        self.conf_dir = os.path.join(self.etc, 'dnsmasq.d')
        self.hosts_dir = os.path.join(self.conf_dir, 'hostsdir.d')
        self.opts_dir = os.path.join(self.conf_dir, 'optsdir.d')
        self.conf = os.path.join(self.conf_dir, 'dnsmasq.conf')
        self.conf_link = os.path.join(self.etc, 'dnsmasq.conf')
        self.lease_dir = os.path.join(base, 'var', 'lib', 'misc')
        self.lease_file = os.path.join(self.lease_dir, 'dnsmasq.leases')
        self.tftp_root = os.path.join(base, 'var', 'lib', 'openstack-helm',
                                      'tftpboot')
        for d in (self.hosts_dir, self.opts_dir, self.lease_dir,
                  self.tftp_root):
            os.makedirs(d, exist_ok=True)
        with open(self.conf, 'w') as f:
            f.write(self.config_text(srv_if))
        # As in understack's image: /etc/dnsmasq.conf -> dnsmasq.d/dnsmasq.conf
        os.symlink(self.conf, self.conf_link)

    def config_text(self, srv_if):
        """understack's rendered dnsmasq.conf, for one provisioning
        network, with its paths under this root (see the module doc)."""
        return '\n'.join([
            '# understack-style dnsmasq.conf (hostsdir-broker test fixture)',
            'log-facility=-',
            'conf-dir=%s' % self.conf_dir,
            'interface=%s' % srv_if,
            'bind-dynamic',
            'port=53',
            'no-hosts',
            # understack forwards DNS to the cluster's resolver; the test
            # namespace has no upstream, so none is read or configured.
            'no-resolv',
            'dhcp-authoritative',
            'dhcp-ignore-clid',
            'dhcp-range=set:%s,%s,%s,255.255.255.0,30m'
            % (RANGE_TAG, POOL_START, POOL_END),
            'dhcp-option=tag:%s,option:router,%s' % (RANGE_TAG, SERVER_IP),
            'enable-tftp',
            'tftp-no-fail',
            'tftp-root=%s' % self.tftp_root,
            'log-dhcp',
            'dhcp-match=ipxe,175',
            'dhcp-match=set:efi,option:client-arch,7',
            'dhcp-match=set:efi,option:client-arch,9',
            'dhcp-match=set:efi,option:client-arch,11',
            'dhcp-match=set:efi,option:client-arch,16',
            'dhcp-pxe-vendor=PXEClient,HTTPClient',
            'dhcp-hostsdir=%s' % self.hosts_dir,
            'dhcp-optsdir=%s' % self.opts_dir,
            # Debian's compiled-in default, which understack relies on;
            # spelled out here only because the root moved.
            'dhcp-leasefile=%s' % self.lease_file,
            '',
        ])

    def dnsmasq_argv(self, binary):
        """understack's container args (`dnsmasq --no-daemon`, without its
        patched-in `--conf-poll`), plus the moved configuration file."""
        return [binary, '--no-daemon', '--conf-file=%s' % self.conf_link]


# ---------------------------------------------------------------------------
# Namespaces, relay, DHCP client


class Lease(dict):
    """What one DHCP exchange gave udhcpc (its `bound` variables)."""

    @property
    def ip(self):
        return self.get('ip')

    @property
    def boot_file(self):
        """Option 67 if sent, else the BOOTP header's file field."""
        return self.get('bootfile') or self.get('boot_file')


UDHCPC_SCRIPT = '''#!/bin/sh
[ "$1" = bound ] || exit 0
echo HDB-LEASE-BEGIN
for v in ip mask router serverid lease bootfile boot_file siaddr hostname; do
    eval "val=\\${$v-}"
    [ -n "$val" ] && printf '%s=%s\\n' "$v" "$val"
done
echo HDB-LEASE-END
exit 0
'''

RELAY = r'''
import socket, sys, threading
listener = socket.socket(fileno=int(sys.argv[1]))
port = int(sys.argv[2])
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(c):
    try:
        t = socket.create_connection(("127.0.0.1", port))
    except OSError:
        c.close()
        return
    up = threading.Thread(target=pump, args=(c, t), daemon=True)
    up.start()
    pump(t, c)
    up.join()
    c.close()
    t.close()
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''


class World(object):
    """understack's dnsmasq 2.93 supervised by the broker, and a client."""

    def __init__(self, broker_bin, workdir):
        self.dnsmasq_bin = prerequisites()
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        remove_stale_namespaces()
        _counter[0] += 1
        base = '%s%d-%d' % (NS_PREFIX, os.getpid(), _counter[0])
        self.srv, self.cli = base + '-srv', base + '-cli'
        self.broker = None
        self.relay = None
        self._namespaces = []
        try:
            self._make_network()
            self.root = Root(os.path.join(workdir, 'root'), SRV_IF)
            self.script = os.path.join(workdir, 'udhcpc-script')
            with open(self.script, 'w') as f:
                f.write(UDHCPC_SCRIPT)
            os.chmod(self.script, 0o755)
            self._start_broker(broker_bin)
            self._start_relay()
        except BaseException:
            self.close()
            raise

    # -- setting up ------------------------------------------------------

    def _make_network(self):
        for ns in (self.srv, self.cli):
            run('ip', 'netns', 'add', ns)
            self._namespaces.append(ns)
        run('ip', 'link', 'add', SRV_IF, 'netns', self.srv, 'type', 'veth',
            'peer', 'name', CLI_IF, 'netns', self.cli)
        run('ip', '-n', self.srv, 'addr', 'add',
            '%s/%d' % (SERVER_IP, PREFIX_LEN), 'dev', SRV_IF)
        for ns, dev in ((self.srv, SRV_IF), (self.srv, 'lo'),
                        (self.cli, CLI_IF), (self.cli, 'lo')):
            run('ip', '-n', ns, 'link', 'set', dev, 'up')

    def _start_broker(self, broker_bin):
        logdir = os.path.join(self.workdir, 'broker')
        os.makedirs(logdir, exist_ok=True)
        self.broker = broker_process.BrokerProcess(
            broker_bin, logdir,
            hosts_dir=self.root.hosts_dir, opts_dir=self.root.opts_dir,
            lease_file=self.root.lease_file,
            prefix=['ip', 'netns', 'exec', self.srv],
            dnsmasq=self.root.dnsmasq_argv(self.dnsmasq_bin))
        self.broker.start()
        # dnsmasq logs to stderr (log-facility=-), which it shares with the
        # broker: its banner there means it has read its configuration.
        wait_until('dnsmasq %s started by the broker' % DNSMASQ_VERSION,
                   lambda: 'started, version %s' % DNSMASQ_VERSION
                   in self.log(), START_TIMEOUT)

    def _start_relay(self):
        in_ns_url = self.broker.url
        port = int(in_ns_url.rsplit(':', 1)[1])
        listener = socket.socket()
        try:
            listener.bind(('127.0.0.1', 0))
            listener.listen(64)
            self.relay = subprocess.Popen(
                ['ip', 'netns', 'exec', self.srv, sys.executable, '-c', RELAY,
                 str(listener.fileno()), str(port)],
                pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL)
            relay_port = listener.getsockname()[1]
        finally:
            listener.close()
        self.broker.url = 'http://127.0.0.1:%d' % relay_port
        wait_until('the broker answering /healthz through the relay',
                   self._healthy, START_TIMEOUT)

    def _healthy(self):
        try:
            return requests.get(self.broker.url + '/healthz',
                                timeout=5).status_code == 200
        except requests.RequestException:
            return False

    # -- looking at it -----------------------------------------------------

    def log(self):
        """The broker's stderr, which is also dnsmasq's log."""
        try:
            with open(self.broker.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def status(self):
        r = self.broker.api('GET', '/v1/status')
        r.raise_for_status()
        return r.json()

    def dnsmasq_pids(self):
        """Pids of the processes named dnsmasq in the server namespace."""
        pids = []
        for pid in _netns_pids(self.srv):
            try:
                with open('/proc/%d/comm' % pid) as f:
                    if f.read().strip() == 'dnsmasq':
                        pids.append(pid)
            except OSError:
                pass
        return pids

    def leases_on_disk(self):
        try:
            with open(self.root.lease_file) as f:
                return f.read()
        except FileNotFoundError:
            return ''

    # -- DHCP ----------------------------------------------------------------

    def dhcp(self, mac, tries=DHCP_TRIES, extra=()):
        """One DHCP exchange from the client namespace with MAC `mac`.

        `extra` are more udhcpc arguments, e.g. ``('-x', '0xaf:01')`` to
        send option 175 as iPXE does (understack's ``dhcp-match=ipxe,175``
        then sets the ``ipxe`` tag), or ``('-C',)`` to send no client id.
        Returns a Lease, or None when no lease was obtained.
        """
        run('ip', '-n', self.cli, 'link', 'set', 'dev', CLI_IF, 'address',
            mac)
        argv = ['ip', 'netns', 'exec', self.cli, 'udhcpc', '-f', '-q', '-n',
                '-B', '-t', str(tries), '-T', '1', '-A', '0',
                '-O', 'bootfile', '-i', CLI_IF, '-s', self.script]
        argv += list(extra)
        # udhcpc gives up by itself after `tries` seconds; this is a
        # backstop against a hung client.
        out = subprocess.run(argv, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=tries + 15)
        text = out.stdout.decode('utf-8', 'replace')
        if 'HDB-LEASE-BEGIN' not in text:
            return None
        body = text.split('HDB-LEASE-BEGIN', 1)[1].split('HDB-LEASE-END')[0]
        lease = Lease()
        for line in body.strip().splitlines():
            key, _, value = line.partition('=')
            lease[key] = value
        return lease

    def dhcp_expect_ignored(self, mac, extra=()):
        """Asks for a lease that dnsmasq must ignore; returns what came.

        The caller asserts None; this also waits for dnsmasq's own log line
        (`DHCPDISCOVER(<if>) <mac> ignored`), which proves the request
        arrived and was refused rather than answered late.
        """
        before = self.log().count('%s ignored' % mac)
        lease = self.dhcp(mac, tries=NO_ANSWER_TRIES, extra=extra)
        if lease is None:
            wait_until('dnsmasq logging that it ignored %s' % mac,
                       lambda: self.log().count('%s ignored' % mac) > before,
                       START_TIMEOUT)
        return lease

    # -- tearing down --------------------------------------------------------

    def close(self):
        """Stops the broker (which stops dnsmasq) and the relay, then kills
        anything left in the namespaces and deletes them."""
        if self.broker is not None:
            try:
                self.broker.stop()
            except Exception as e:  # noqa: BLE001 - clean up the rest anyway
                print('stopping the broker: %s' % e, file=sys.stderr)
        if self.relay is not None and self.relay.poll() is None:
            self.relay.kill()
            self.relay.wait(timeout=10)
        for ns in self._namespaces:
            _kill_netns(ns)
        self._namespaces = []
