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

"""Ironic DHCP provider that manages dnsmasq through hostsdir-broker.

It produces the same files as Ironic's stock ``dnsmasq`` provider
(``ironic.dhcp.dnsmasq.DnsmasqDHCPApi``), but instead of writing into
``[dnsmasq]dhcp_hostsdir`` / ``dhcp_optsdir`` itself it asks the broker,
which validates every line, writes atomically, detects MAC conflicts and
reloads dnsmasq when a replaced or deleted file needs it:

* hosts: ``ironic-<mac>.conf`` holding ``<mac>,set:<tag>,set:ironic``
  (``<mac>,ignore`` after a clean);
* options: ``ironic-<node uuid>.conf`` holding one
  ``tag:<tag>,<opt_name>,<opt_value>`` line per option;
* ``<tag>`` is kept in ``node.driver_internal_info['dnsmasq_tag']``.

Each update is one ``POST /v1/batch``: all of the node's files are written,
or none.
"""

import threading

from ironic.common import exception
from ironic.conf import CONF
from ironic.dhcp import base
from oslo_log import log as logging
from oslo_utils import uuidutils

from ironic_hostsdir_broker import client as broker_client
from ironic_hostsdir_broker import conf as broker_conf

LOG = logging.getLogger(__name__)

broker_conf.register_opts(CONF)

TAG_KEY = 'dnsmasq_tag'
# How often a clean is tried again when the options file changed between
# reading its ETag and the batch (412).
_CLEAN_ATTEMPTS = 3


def host_entry_name(mac):
    """The hostsdir file name the stock provider uses for a MAC."""
    return 'ironic-{}.conf'.format(mac)


def option_entry_name(node):
    """The optsdir file name the stock provider uses for a node."""
    return 'ironic-{}.conf'.format(node.uuid)


def as_option6(opt_name):
    """Turns ``[tag:…,]59`` into ``[tag:…,]option6:59``.

    ``option:<name>`` becomes ``option6:<name>``; an ``option6:`` option and
    anything else are returned unchanged.
    """
    head, sep, option = opt_name.rpartition(',')
    if option.isdigit():
        option = 'option6:' + option
    elif option.startswith('option:'):
        option = 'option6:' + option[len('option:'):]
    return head + sep + option


class HostsdirBrokerDHCPApi(base.BaseDHCP):
    """DHCP provider writing dnsmasq host and option files via the broker."""

    def __init__(self):
        """Checks the configuration; contacts nobody.

        :raises: BrokerError for an unusable url or token file, which
            Ironic's DHCPFactory reports as DHCPLoadError.
        """
        self._lock = threading.Lock()
        self._broker = None
        self._client().check()

    # -- helpers ---------------------------------------------------------

    def _client(self):
        """The broker client for the current configuration."""
        group = CONF.hostsdir_broker
        fresh = broker_client.BrokerClient.from_conf(group)
        with self._lock:
            if self._broker is None or \
                    self._broker.settings() != fresh.settings():
                self._broker = fresh
            return self._broker

    @staticmethod
    def _pxe_enabled_macs(ports):
        """MACs of the PXE-enabled ports, each once, in port order."""
        seen = []
        for port in ports:
            if port.pxe_enabled and port.address not in seen:
                seen.append(port.address)
        return seen

    @staticmethod
    def _option_line(tag, option):
        """One dhcp-option line, as the stock provider writes it.

        :raises: KeyError when opt_name or opt_value is missing.
        """
        opt_name = option['opt_name']
        opt_value = option['opt_value']
        if (CONF.hostsdir_broker.ipv6_options_as_option6
                and str(option.get('ip_version')) == '6'):
            opt_name = as_option6(str(opt_name))
        return f'tag:{tag},{opt_name},{opt_value}'

    # -- BaseDHCP --------------------------------------------------------

    def update_port_dhcp_opts(self, port_id, dhcp_options, context=None):
        """Does nothing, like the stock dnsmasq provider.

        Options are per node (``update_dhcp_opts``), not per port.
        """
        LOG.debug('hostsdir-broker provider ignores per-port DHCP options '
                  '(port %s)', port_id)

    def update_dhcp_opts(self, task, options, vifs=None):
        """Send or update the DHCP BOOT options for this node.

        Writes the node's options file and one host file per PXE-enabled
        port in one broker batch (all or nothing).

        :param task: A TaskManager instance.
        :param options: list of dicts with ``opt_name``, ``opt_value`` and
            ``ip_version``, as built by
            ``ironic.common.pxe_utils.dhcp_options_for_instance``.
        :param vifs: Ignored, like the stock dnsmasq provider does.
        :raises: FailedToUpdateDHCPOptOnPort
        """
        node = task.node
        macs = self._pxe_enabled_macs(task.ports)

        tag = node.driver_internal_info.get(TAG_KEY)
        if not tag:
            tag = uuidutils.generate_uuid()
            node.set_driver_internal_info(TAG_KEY, tag)
            node.save()

        lines = []
        for option in options:
            try:
                lines.append(self._option_line(tag, option))
            except KeyError as missing:
                LOG.warning('Ignoring option %(opt)s for node %(node)s: '
                            'missing %(missing)s',
                            {'opt': option, 'node': node.uuid,
                             'missing': missing})

        ops = [{'op': 'put', 'kind': 'option',
                'name': option_entry_name(node),
                'spec': {'lines': lines}}]
        for mac in macs:
            # Tag each address with the tag unique to this node.
            ops.append({'op': 'put', 'kind': 'host',
                        'name': host_entry_name(mac),
                        'spec': {'line': f'{mac},set:{tag},set:ironic'}})

        LOG.debug('Writing DHCP configuration of node %(node)s through '
                  'hostsdir-broker: options %(opts)s; hosts %(macs)s',
                  {'node': node.uuid, 'opts': '; '.join(lines),
                   'macs': ', '.join(macs) or '(none)'})
        try:
            # Unconditional puts of fixed bytes: repeating them is harmless,
            # so the client may retry after an ambiguous failure.
            self._client().batch(ops, idempotent=True)
        except broker_client.BrokerError as e:
            LOG.error('Failed to update the DHCP options of node %(node)s: '
                      '%(err)s', {'node': node.uuid, 'err': e})
            raise exception.FailedToUpdateDHCPOptOnPort(
                'Failed to update the DHCP options of node %(node)s '
                'through hostsdir-broker: %(err)s'
                % {'node': node.uuid, 'err': e})

    def clean_dhcp_opts(self, task):
        """Clean up the DHCP BOOT options for the node in `task`.

        Every PXE-enabled MAC gets an ``<mac>,ignore`` host file and the
        node's options file is removed, in one batch. The options file may
        be absent (never written, or already cleaned), and a delete of an
        absent entry is a 404 that would fail the whole batch, so its ETag
        is read first and the delete is only included, conditional on that
        ETag, when it exists; a 412 (it changed or vanished meanwhile)
        starts over. Cleaning twice therefore succeeds twice.

        The ``dnsmasq_tag`` is discarded only once the broker has accepted
        the batch, so a failed clean leaves the node describing the files
        that are still in place.

        :param task: A TaskManager instance.
        :raises: FailedToCleanDHCPOpts
        """
        node = task.node
        macs = self._pxe_enabled_macs(task.ports)
        opt_name = option_entry_name(node)

        for attempt in range(1, _CLEAN_ATTEMPTS + 1):
            # Changing the host rule to ignore is picked up by dnsmasq; when
            # the MAC is in use again the file is replaced with a new tag.
            ops = [{'op': 'put', 'kind': 'host',
                    'name': host_entry_name(mac),
                    'spec': {'line': f'{mac},ignore'}} for mac in macs]
            try:
                client = self._client()
                current = client.get_option(opt_name)
                if current is not None:
                    ops.append({'op': 'delete', 'kind': 'option',
                                'name': opt_name,
                                'if_match': current['etag']})
                LOG.debug('Cleaning DHCP configuration of node %(node)s '
                          'through hostsdir-broker: ignore %(macs)s; '
                          '%(opts)s', {'node': node.uuid,
                                       'macs': ', '.join(macs) or '(none)',
                                       'opts': 'remove ' + opt_name
                                       if current is not None
                                       else 'no options file'})
                if ops:
                    client.batch(ops, idempotent=False)
                break
            except (broker_client.BrokerError, KeyError, TypeError) as e:
                if isinstance(e, broker_client.BrokerError) and \
                        e.status == 412 and attempt < _CLEAN_ATTEMPTS:
                    LOG.debug('Options file %s of node %s changed during '
                              'the clean; starting over', opt_name, node.uuid)
                    continue
                if not isinstance(e, broker_client.BrokerError):
                    e = 'unexpected answer to GET of %s: no etag (%s)' % (
                        opt_name, e)
                LOG.error('Failed to clean the DHCP options of node '
                          '%(node)s: %(err)s', {'node': node.uuid, 'err': e})
                raise exception.FailedToCleanDHCPOpts(
                    'Failed to clean up the DHCP options of node %(node)s '
                    'through hostsdir-broker: %(err)s'
                    % {'node': node.uuid, 'err': e})

        # Discard this unique tag.
        node.del_driver_internal_info(TAG_KEY)
        node.save()

    def get_ip_addresses(self, task):
        """IP addresses leased to the PXE-enabled ports of `task`.

        Asks the broker's ``GET /v1/leases?mac=`` once per MAC instead of
        reading dnsmasq's lease file.

        :param task: a TaskManager instance.
        :returns: List of IP addresses.
        :raises: FailedToGetIPAddressOnPort when the broker cannot answer.
        """
        addresses = []
        for mac in self._pxe_enabled_macs(task.ports):
            try:
                items = self._client().leases(mac)
            except broker_client.BrokerError as e:
                raise exception.FailedToGetIPAddressOnPort(
                    'Failed to get the DHCP leases of MAC %(mac)s of node '
                    '%(node)s from hostsdir-broker: %(err)s'
                    % {'mac': mac, 'node': task.node.uuid, 'err': e})
            for item in items:
                if not isinstance(item, dict):
                    continue
                if str(item.get('mac') or '').lower() == mac.lower() and \
                        item.get('ip'):
                    addresses.append(item['ip'])
        LOG.debug('Found addresses for %s: %s',
                  task.node.uuid, ', '.join(addresses))
        return addresses

    def supports_ipxe_tag(self):
        """Whether the provider will correctly apply the 'ipxe' tag.

        True, like the stock dnsmasq provider, on the assumption that the
        dnsmasq configuration includes ``dhcp-match=set:ipxe,175``.

        :returns: True
        """
        return True
