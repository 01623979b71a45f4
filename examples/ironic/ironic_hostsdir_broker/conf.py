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

"""The ``[hostsdir_broker]`` configuration group."""

import copy

from oslo_config import cfg

GROUP = 'hostsdir_broker'

opts = [
    cfg.URIOpt('url',
               default='http://127.0.0.1:8787',
               schemes=['http', 'https'],
               help='Base URL of the hostsdir-broker API, e.g. '
                    'https://dhcp.example.net:8787. The broker must own the '
                    'dhcp-hostsdir and dhcp-optsdir of the dnsmasq that '
                    'serves the provisioning network.'),
    cfg.StrOpt('token_file',
               help='File of "<role> <token>" lines (the same format as the '
                    'broker\'s --token-file; "#" starts a comment). The '
                    'token of role "write" is sent as "Authorization: '
                    'Bearer <token>". The file is re-read when it changes. '
                    'Leave unset when the broker runs without tokens.'),
    cfg.FloatOpt('timeout',
                 default=10.0,
                 min=0.1,
                 help='Seconds to wait for the broker to accept a connection '
                      'and, separately, for its answer, on each attempt.'),
    cfg.IntOpt('retries',
               default=3,
               min=0,
               max=10,
               help='How many times a failed request is tried again. Only '
                    'requests that are safe to repeat are retried: a '
                    'connection that could not be opened, a 503 answer (the '
                    'broker wrote nothing), or a read/timeout failure of a '
                    'request that is idempotent (reads, and updates, which '
                    'are unconditional writes of the same bytes).'),
    cfg.StrOpt('ca_file',
               help='CA bundle used to verify the broker\'s TLS certificate. '
                    'Default: the system\'s CA store.'),
    cfg.StrOpt('cert_file',
               help='Client certificate (PEM) for brokers that require one '
                    '(--tls-client-ca).'),
    cfg.StrOpt('key_file',
               help='Private key (PEM) of cert_file, when not in the same '
                    'file.'),
    cfg.BoolOpt('insecure',
                default=False,
                help='Do not verify the broker\'s TLS certificate. For '
                     'testing only.'),
    cfg.BoolOpt('ipv6_options_as_option6',
                default=True,
                help='Write options whose ip_version is 6 as dnsmasq '
                     '"option6:" options (e.g. "option6:59" for the DHCPv6 '
                     'boot file URL). The stock "dnsmasq" provider writes '
                     'them as plain numbers, which dnsmasq reads as DHCPv4 '
                     'options (59 is then the DHCPv4 rebinding time), and '
                     'which the broker therefore refuses for the boot URL. '
                     'On by default: Ironic 39\'s PXE, iPXE and HTTP boot '
                     'interfaces always send IPv6 boot options, so with it '
                     'off every update is refused. Off writes the stock '
                     'provider\'s exact bytes, which only works for option '
                     'lists without IPv6 entries.'),
]


def register_opts(conf):
    conf.register_opts(opts, group=GROUP)


def list_opts():
    """Options of this plugin, for oslo-config-generator.

    Registered as the ``ironic_hostsdir_broker`` namespace of the
    ``oslo.config.opts`` entry point.
    """
    return [(GROUP, copy.deepcopy(opts))]
