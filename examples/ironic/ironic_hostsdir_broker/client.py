#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""A small client for the hostsdir-broker HTTP API (v1).

Only what the Ironic provider needs: batches, reading one options entry,
and leases. Every failure becomes a :class:`BrokerError` whose text names
the broker, the request and the broker's own error message.
"""

import json
import os
import threading
import time
import urllib.parse

from oslo_log import log as logging
import requests
from urllib3 import exceptions as urllib3_exc

LOG = logging.getLogger(__name__)

# A 503 with one of these codes means the broker wrote nothing (the entry is
# exactly as before), so the same request may simply be sent again, even a
# conditional one. `reload_failed` and `reload_deferred` (a 503 after a
# write with ?wait=reload: the change IS stored) are not among them, and
# neither is 507 `no_space` (nothing written, but a retry cannot help).
_NOTHING_WRITTEN_503_CODES = frozenset({
    'lock_timeout', 'store_unavailable', 'store_stalled', 'store_failed',
    'shutting_down'})
# 500 `outcome_unknown`: the change may be in place and may not be durable.
# Only a request that converges to the same state when sent again
# (`idempotent`) may be retried; any other is raised for the caller to read
# the entry back.
_OUTCOME_UNKNOWN = 'outcome_unknown'
# Answers from something in front of the broker (a proxy): the request may
# or may not have reached the broker.
_AMBIGUOUS_STATUSES = frozenset({502, 504})
_BACKOFF_FIRST = 0.25
_BACKOFF_MAX = 2.0


class BrokerError(Exception):
    """A request to the broker failed.

    :ivar status: the HTTP status, or None when no answer was received.
    :ivar code: the broker's error code (``conflict``, ``invalid_value``…),
        or ``unreachable`` / ``timeout`` / ``bad_answer`` / ``config``.
    :ivar message: the broker's error message (or what went wrong).
    :ivar field: the broker's ``field`` (JSON path), if any.
    """

    def __init__(self, message, status=None, code=None, field=None,
                 request=None):
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.request = request
        super().__init__(self._text())

    def _text(self):
        parts = []
        if self.request:
            parts.append(self.request)
        if self.status is not None:
            parts.append('answered %s %s:' % (self.status,
                                              self.code or 'error'))
        elif self.code:
            parts.append('failed (%s):' % self.code)
        parts.append(self.message)
        text = ' '.join(parts)
        if self.field:
            text += ' (field %s)' % self.field
        return text


class _TokenFile(object):
    """The `write` token of a `<role> <token>` file, re-read on change."""

    ROLE = 'write'

    def __init__(self, path):
        self.path = path
        self._stamp = None
        self._token = None
        self._lock = threading.Lock()

    def token(self):
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise BrokerError('cannot read token_file %s: %s'
                              % (self.path, e.strerror), code='config')
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._token = self._parse()
                self._stamp = stamp
            return self._token

    def _parse(self):
        try:
            with open(self.path, encoding='utf-8') as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise BrokerError('cannot read token_file %s: %s'
                              % (self.path, e), code='config')
        for line in text.splitlines():
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) == 2 and fields[0] == self.ROLE:
                return fields[1]
        raise BrokerError('token_file %s has no "%s <token>" line'
                          % (self.path, self.ROLE), code='config')


class BrokerClient(object):
    """Talks to one broker; safe to share between threads."""

    def __init__(self, url, token_file=None, timeout=10.0, retries=3,
                 ca_file=None, cert_file=None, key_file=None,
                 insecure=False):
        parsed = urllib.parse.urlsplit(url or '')
        if parsed.scheme not in ('http', 'https') or not parsed.netloc:
            raise BrokerError('url %r is not an http:// or https:// URL'
                              % url, code='config')
        self.url = url.rstrip('/')
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._tokens = _TokenFile(token_file) if token_file else None
        if insecure:
            self._verify = False
        else:
            self._verify = ca_file or True
        if cert_file and key_file:
            self._cert = (cert_file, key_file)
        else:
            self._cert = cert_file or None
        self._local = threading.local()

    @classmethod
    def from_conf(cls, group):
        """Builds a client from the ``[hostsdir_broker]`` option group."""
        return cls(url=group.url, token_file=group.token_file,
                   timeout=group.timeout, retries=group.retries,
                   ca_file=group.ca_file, cert_file=group.cert_file,
                   key_file=group.key_file, insecure=group.insecure)

    def settings(self):
        """What decides this client's behaviour, to detect config changes."""
        return (self.url, self._tokens.path if self._tokens else None,
                self.timeout, self.retries, self._verify, self._cert)

    def check(self):
        """Fails early on a token file that cannot be used."""
        if self._tokens is not None:
            self._tokens.token()

    # -- the calls the provider makes ---------------------------------

    def batch(self, ops, idempotent):
        """POST /v1/batch; returns the list of results."""
        answer = self._request('POST', '/v1/batch', body={'ops': ops},
                               idempotent=idempotent)
        results = answer.get('results') if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise BrokerError('the answer to POST /v1/batch has no "results" '
                              'list', code='bad_answer',
                              request=self._describe('POST', '/v1/batch'))
        return results

    def get_option(self, name):
        """GET /v1/options/{name}; the entry, or None when it is absent."""
        path = '/v1/options/' + urllib.parse.quote(name, safe='')
        return self._request('GET', path, idempotent=True, absent_ok=True)

    def leases(self, mac=None):
        """GET /v1/leases[?mac=]; the list of lease items."""
        params = {'mac': mac} if mac else None
        answer = self._request('GET', '/v1/leases', params=params,
                               idempotent=True)
        items = answer.get('items') if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise BrokerError('the answer to GET /v1/leases has no "items" '
                              'list', code='bad_answer',
                              request=self._describe('GET', '/v1/leases'))
        return items

    # -- plumbing ------------------------------------------------------

    def _session(self):
        session = getattr(self._local, 'session', None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _describe(self, method, path):
        return 'hostsdir-broker %s: %s %s' % (self.url, method, path)

    def _request(self, method, path, body=None, params=None,
                 idempotent=False, absent_ok=False):
        what = self._describe(method, path)
        headers = {'Accept': 'application/json'}
        data = None
        if body is not None:
            headers['Content-Type'] = 'application/json'
            data = json.dumps(body).encode('utf-8')
        if self._tokens is not None:
            token = self._tokens.token()
            headers['Authorization'] = 'Bearer ' + token

        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                resp = self._session().request(
                    method, self.url + path, params=params, data=data,
                    headers=headers, timeout=(self.timeout, self.timeout),
                    verify=self._verify, cert=self._cert,
                    allow_redirects=False)
            except requests.exceptions.SSLError as e:
                # A TLS set-up problem does not go away by retrying.
                raise BrokerError('TLS error: %s' % e, code='tls',
                                  request=what)
            except (requests.exceptions.ConnectionError,
                    requests.exceptions.Timeout) as e:
                not_sent = _never_sent(e)
                code = 'timeout' if isinstance(
                    e, requests.exceptions.Timeout) else 'unreachable'
                err = BrokerError(_short(e), code=code, request=what)
                if not last and (not_sent or idempotent):
                    self._pause(attempt, err)
                    continue
                raise err

            if 200 <= resp.status_code < 300:
                return _json_or_none(resp, what)
            err = _error_from(resp, what)
            if absent_ok and resp.status_code == 404 and \
                    err.code == 'not_found':
                return None
            retry = False
            if resp.status_code == 503:
                retry = idempotent or err.code in _NOTHING_WRITTEN_503_CODES
            elif resp.status_code == 500 and err.code == _OUTCOME_UNKNOWN:
                retry = idempotent
            elif resp.status_code in _AMBIGUOUS_STATUSES:
                retry = idempotent
            if retry and not last:
                self._pause(attempt, err)
                continue
            raise err
        raise AssertionError('unreachable')  # pragma: no cover

    def _pause(self, attempt, err):
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * (2 ** (attempt - 1)))
        LOG.warning('%s; trying again in %.2f s (attempt %d of %d)',
                    err, delay, attempt + 1, self.retries + 1)
        time.sleep(delay)


def _never_sent(exc):
    """True when the connection was never established (request not sent)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, 'reason', reason)
    return isinstance(reason, (urllib3_exc.NewConnectionError,
                               urllib3_exc.ConnectTimeoutError))


def _short(exc):
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, 'reason', reason)
    return str(reason) or exc.__class__.__name__


def _json_or_none(resp, what):
    if resp.status_code == 204 or not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        raise BrokerError('the answer is not JSON', status=resp.status_code,
                          code='bad_answer', request=what)


def _error_from(resp, what):
    """A BrokerError carrying the broker's `{"error": {...}}` answer."""
    code = message = field = None
    try:
        err = resp.json().get('error')
        if isinstance(err, dict):
            code = err.get('code')
            message = err.get('message')
            field = err.get('field')
    except (ValueError, AttributeError):
        pass
    if not message:
        text = (resp.text or '').strip().replace('\n', ' ')
        message = text[:300] if text else (resp.reason or 'no error message')
    return BrokerError(message, status=resp.status_code, code=code,
                       field=field, request=what)
