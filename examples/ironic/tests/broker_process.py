"""Starting and stopping a real `hostsdir-broker serve` process for tests."""

import os
import re
import selectors
import signal
import subprocess
import threading
import time

import requests

LISTENING = re.compile(r'listening on (https?://\S+)')
START_TIMEOUT = 20.0


class BrokerMissing(Exception):
    pass


def broker_binary():
    """The broker binary from HOSTSDIR_BROKER_BIN; fails loudly if absent."""
    path = os.environ.get('HOSTSDIR_BROKER_BIN')
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, '..', '..', '..', 'target', 'debug',
                            'hostsdir-broker')
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise BrokerMissing(
            'hostsdir-broker binary not found or not executable at %s; '
            'build it with `cargo build` in the repository root or set '
            'HOSTSDIR_BROKER_BIN' % path)
    return path


class BrokerProcess(object):
    """One broker serving its own hosts/opts directories and lease file."""

    def __init__(self, binary, workdir, token_file=None, extra_args=(),
                 hosts_dir=None, opts_dir=None, lease_file=None, prefix=(),
                 dnsmasq=()):
        """`workdir` holds the log (and, unless given, the directories).

        `prefix` runs the broker through another command that execs it
        (e.g. `ip netns exec NS`), so the child's pid is the broker's;
        `dnsmasq` is a command line for the broker to supervise (after
        `--`).
        """
        self.binary = binary
        self.workdir = workdir
        self.hosts_dir = hosts_dir or os.path.join(workdir, 'hosts')
        self.opts_dir = opts_dir or os.path.join(workdir, 'opts')
        self.lease_file = lease_file or os.path.join(workdir,
                                                     'dnsmasq.leases')
        self.log_path = os.path.join(workdir, 'broker.log')
        self.token_file = token_file
        self.extra_args = list(extra_args)
        self.prefix = list(prefix)
        self.dnsmasq = list(dnsmasq)
        self.proc = None
        self.url = None
        self._stdout_rest = []
        os.makedirs(self.hosts_dir, exist_ok=True)
        os.makedirs(self.opts_dir, exist_ok=True)

    def command(self):
        cmd = self.prefix + [
            self.binary, 'serve', '--listen', '127.0.0.1:0',
            '--hosts-dir', self.hosts_dir, '--opts-dir', self.opts_dir,
            '--lease-file', self.lease_file]
        if self.token_file:
            cmd += ['--token-file', self.token_file]
        cmd += self.extra_args
        if self.dnsmasq:
            cmd += ['--'] + self.dnsmasq
        return cmd

    def start(self):
        # Flags also read HOSTSDIR_BROKER_* variables: keep the caller's
        # environment from changing what is tested.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith('HOSTSDIR_BROKER_')}
        env.setdefault('RUST_BACKTRACE', '1')
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._log, env=env, cwd=self.workdir)
        line = self._first_line()
        m = LISTENING.search(line)
        if not m:
            self.stop()
            raise RuntimeError('broker printed %r instead of "listening on '
                               'http://…"; log:\n%s' % (line, self.log_tail()))
        self.url = m.group(1).rstrip('/')
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _first_line(self):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        buf = b''
        try:
            while b'\n' not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    raise RuntimeError('broker did not print its address '
                                       'within %ss; log:\n%s'
                                       % (START_TIMEOUT, self.log_tail()))
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    code = self.proc.wait(timeout=5)
                    raise RuntimeError('broker exited (%s) before listening; '
                                       'command %s; log:\n%s'
                                       % (code, self.command(),
                                          self.log_tail()))
                buf += chunk
        finally:
            sel.close()
        first, _, rest = buf.partition(b'\n')
        if rest:
            self._stdout_rest.append(rest)
        return first.decode('utf-8', 'replace')

    def _drain(self):
        try:
            while True:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    return
                self._stdout_rest.append(chunk)
        except (OSError, ValueError):
            return

    def log_tail(self, n=40):
        try:
            with open(self.log_path, 'rb') as f:
                lines = f.read().decode('utf-8', 'replace').splitlines()
        except OSError:
            return '(no log)'
        return '\n'.join(lines[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        self._log.close()

    # -- direct API access for arranging and checking ---------------------

    def api(self, method, path, token=None, **kwargs):
        headers = kwargs.pop('headers', {})
        if token:
            headers['Authorization'] = 'Bearer ' + token
        return requests.request(method, self.url + path, headers=headers,
                                timeout=10, **kwargs)

    def files(self, which):
        """{name: bytes} of the regular non-dot files of 'hosts'/'opts'."""
        d = self.hosts_dir if which == 'hosts' else self.opts_dir
        return read_dir(d)


def read_dir(d):
    out = {}
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name.startswith('.') or not os.path.isfile(path):
            continue
        with open(path, 'rb') as f:
            out[name] = f.read()
    return out


# The broker's own lock file, expected in each directory (a dot file:
# dnsmasq ignores it).
LOCK_FILE = '.hostsdir-broker.lock'


def stray_files(d):
    """Temp files, subdirectories etc. that are not plain entries."""
    return sorted(n for n in os.listdir(d)
                  if n != LOCK_FILE
                  and (n.startswith('.') or n.endswith('~')
                       or not os.path.isfile(os.path.join(d, n))))
