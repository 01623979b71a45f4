//! DHCPv6 with a real client: ISC `dhclient -6` (Debian's
//! `isc-dhcp-client`; busybox 1.35 has no DHCPv6 client) against the
//! harness's dnsmasq, in the namespaces of [`Net`].
//!
//! Why it is built this way:
//! - **Addresses**: `fd00:5d::1/64` on the server side, a ULA prefix inside
//!   namespaces the test created. dnsmasq also gets
//!   `--dhcp-range=fd00:5d::100,fd00:5d::1ff,64,1h` ([`dnsmasq_v6_args`]):
//!   tests give fixed addresses below `::100`, so a pool address is easy to
//!   tell ([`in_pool6`]). No router advertisement is needed: dhclient
//!   solicits at once.
//! - **No duplicate address detection** (`accept_dad=0`, `nodad`): an
//!   address is usable at once instead of after a second of DAD.
//! - **The client's MAC**: dnsmasq learns a DHCPv6 client's MAC from the
//!   neighbour table, by the packet's source address, and caches what it
//!   found for 90 s (src/arp.c `INTERVAL`); the DUID is not used. So every
//!   MAC gets its own link-local address: [`Net::set_client_mac6`] sets the
//!   MAC, drops the old link-local address and adds the new MAC's EUI-64
//!   one. (A MAC changed under the same link-local address would be
//!   matched as the old MAC for up to 90 s.)
//! - **dhclient** runs as `dhclient -6 -1 -d` with its own `-sf` script,
//!   which only prints what was bound: the default hooks in /etc/dhcp would
//!   rewrite the host's /etc/resolv.conf (network namespaces share the
//!   filesystem). Its `-cf` config asks for the boot-file URL (DHCPv6
//!   option 59); its `-lf` lease file and `-pf` pid file live in the
//!   [`Net`]'s temp directory.
//! - **DUIDs**: dhclient keeps its DUID in the lease file (`default-duid`).
//!   [`Duid::Ll`] (`-D LL`) derives it from the MAC, so it stays the same
//!   whatever happens to the lease file; [`Duid::Llt`] is dhclient's
//!   default, DUID-LLT, which carries the time it was made: a new DUID each
//!   time the lease file is deleted ([`Client6::delete_lease_file`]).
//! - **One exchange** ([`Net::dhcp6_request`]) starts from a lease file that
//!   holds only the DUID ([`Client6::forget_leases`]): a fresh Solicit with
//!   the same DUID, not a Confirm of an old address. It is over when
//!   dhclient logs that it scheduled the renewal (after `Bound to lease`
//!   and the script's run for every address), or, for a client dnsmasq
//!   ignores
//!   ([`Net::dhcp6_expect_ignored`]), once dnsmasq logged that Solicit as
//!   ignored. dhclient is then killed with SIGKILL (it sends no Release)
//!   and never left running: it would renew, and it holds UDP port 546.
//! - **Prerequisites** ([`v6_prerequisites`]): `dhclient` and
//!   `dhcp_release6` (Debian's `dnsmasq-utils`, the operator's tool for a
//!   lease that holds a reserved address), and dhclient not confined by
//!   AppArmor (Debian's profile allows only /etc/dhcp's config and script);
//!   a missing one fails the test with the fix named.

use super::*;

/// The server's IPv6 address.
pub(crate) const SERVER_IP6: &str = "fd00:5d::1";
/// First and last address of dnsmasq's DHCPv6 pool.
pub(crate) const POOL6_START: &str = "fd00:5d::100";
pub(crate) const POOL6_END: &str = "fd00:5d::1ff";

const V6_HINT: &str = "run `sudo scripts/install-test-deps.sh` (installs isc-dhcp-client for \
     `dhclient -6` and dnsmasq-utils for `dhcp_release6`)";

/// How long one DHCPv6 exchange may take: dhclient sends its Solicits
/// about 1, 2, 4 and 8 s apart, so this covers several lost or slow
/// answers on a busy machine; dnsmasq answers in milliseconds.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);

/// dnsmasq's extra arguments for DHCPv6: a range in the server's /64.
pub(crate) fn dnsmasq_v6_args() -> Vec<String> {
    vec![format!("--dhcp-range={POOL6_START},{POOL6_END},64,1h")]
}

/// Whether `addr` is in dnsmasq's DHCPv6 pool.
pub(crate) fn in_pool6(addr: &str) -> bool {
    let parse = |a: &str| a.parse::<std::net::Ipv6Addr>().map(u128::from);
    match (parse(addr), parse(POOL6_START), parse(POOL6_END)) {
        (Ok(a), Ok(lo), Ok(hi)) => (lo..=hi).contains(&a),
        _ => false,
    }
}

/// Panics, naming the fix, when a DHCPv6 tool is missing (the DHCPv4
/// prerequisites are checked by [`version_binaries`]).
pub(crate) fn v6_prerequisites() {
    let missing: Vec<&str> = ["dhclient", "dhcp_release6"]
        .into_iter()
        .filter(|t| find_in_path(t).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "DHCPv6 end-to-end prerequisites missing: {} not found; {V6_HINT}",
        missing.join(", ")
    );
    // Debian's AppArmor profile for dhclient lets it read /etc/dhcp only and
    // run /etc/dhcp/dhclient-script only: the test's own config, lease
    // files and script in /tmp would be refused.
    let profiles = "/sys/kernel/security/apparmor/profiles";
    let confined = fs::read_to_string(profiles)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("sbin/dhclient") && l.ends_with("(enforce)"));
    assert!(
        !confined,
        "AppArmor confines dhclient ({profiles} lists its profile in enforce mode): it may          not read the test's config and lease files or run its script; on a test machine run          `aa-complain /etc/apparmor.d/sbin.dhclient` (apparmor-utils)"
    );
}

/// Runs `f` on the dnsmasq versions named (all when empty), in parallel
/// threads, after checking the DHCPv6 prerequisites.
pub(crate) fn for_v6_versions(versions: &[&str], f: impl Fn(&DnsmasqBinary) + Sync) {
    v6_prerequisites();
    if versions.is_empty() {
        for_each_version(f);
    } else {
        for_versions(versions, f);
    }
}

/// A scenario's world whose network has IPv6 and whose dnsmasq also
/// serves DHCPv6 ([`World::on_net`]).
pub(crate) fn world6(bin: &DnsmasqBinary, mode: Mode, quiet_ms: u64, extra: &[&str]) -> World {
    let net = Net::new();
    net.enable_v6();
    World::on_net(net, bin, mode, quiet_ms, extra, &dnsmasq_v6_args())
}

/// The link-local address a MAC gives by EUI-64 (`fe80::…/64`).
fn eui64_link_local(mac: &str) -> String {
    let b: Vec<u8> = mac
        .split(':')
        .map(|o| u8::from_str_radix(o, 16).unwrap_or_else(|_| panic!("bad MAC {mac}")))
        .collect();
    assert_eq!(b.len(), 6, "bad MAC {mac}");
    format!(
        "fe80::{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}/64",
        b[0] ^ 0x02,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

/// dhclient's DUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Duid {
    /// `-D LL`: DUID-LL, type 3, from the MAC. Stable.
    Ll,
    /// dhclient's default, DUID-LLT (type 1: the MAC and the time it was
    /// made), kept in the lease file: a new one after the file is deleted.
    Llt,
}

/// One DHCPv6 client identity: a MAC, a DUID kind and dhclient's lease
/// file (which holds the DUID).
pub(crate) struct Client6 {
    /// The MAC the client interface gets.
    pub(crate) mac: String,
    /// How dhclient makes its DUID.
    pub(crate) duid: Duid,
    /// dhclient's `-lf`.
    pub(crate) lease_file: PathBuf,
}

impl Client6 {
    /// A client whose lease file lives in `net`'s temp directory.
    pub(crate) fn new(net: &Net, mac: &str, duid: Duid) -> Client6 {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Client6 {
            mac: mac.to_owned(),
            duid,
            lease_file: net
                .scratch
                .path()
                .join(format!("dhclient6-{}-{n}.leases", mac.replace(':', ""))),
        }
    }

    /// The DUID `-D LL` gives (`00:03:00:01:<mac>`), as dnsmasq logs it.
    pub(crate) fn ll_duid(&self) -> String {
        format!("00:03:00:01:{}", self.mac.to_ascii_lowercase())
    }

    /// Keeps only the lease file's `default-duid` line: the next exchange
    /// starts with a Solicit, under the same DUID.
    pub(crate) fn forget_leases(&self) {
        let text = match fs::read_to_string(&self.lease_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => panic!("reading {}: {e}", self.lease_file.display()),
        };
        let kept: String = text
            .lines()
            .filter(|l| l.starts_with("default-duid"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&self.lease_file, kept)
            .unwrap_or_else(|e| panic!("writing {}: {e}", self.lease_file.display()));
    }

    /// Deletes the lease file, DUID included (what makes dhclient's
    /// default DUID-LLT change).
    pub(crate) fn delete_lease_file(&self) {
        match fs::remove_file(&self.lease_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", self.lease_file.display()),
        }
    }
}

/// What one DHCPv6 exchange bound (from dhclient's script, one `BOUND6`
/// event per address).
#[derive(Clone, Debug, Default)]
pub(crate) struct Lease6 {
    /// Every address bound, in the order dhclient reported them.
    pub(crate) addresses: Vec<String>,
    /// Option 59, the boot-file URL.
    pub(crate) bootfile_url: Option<String>,
    /// The client's DUID as sent (`00:03:00:01:…`, lowercase, two digits
    /// per octet, as dnsmasq writes it).
    pub(crate) duid: String,
    /// The server's DUID.
    pub(crate) server_duid: String,
    /// Every `new_*` variable of every event.
    pub(crate) events: Vec<BTreeMap<String, String>>,
}

/// `0:3:0:1:52:54:0:0:6:1` (dhclient) → `00:03:00:01:52:54:00:00:06:01`.
fn two_digit_hex(id: &str) -> String {
    id.split(':')
        .map(|o| format!("{:0>2}", o.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(":")
}

impl Lease6 {
    /// Parses the events file the script wrote; `None` without a bound
    /// address.
    fn parse(text: &str) -> Option<Lease6> {
        let mut events = Vec::new();
        let mut current: Option<BTreeMap<String, String>> = None;
        for line in text.lines() {
            if line.starts_with("HDB6-BEGIN ") {
                current = Some(BTreeMap::new());
            } else if line == "HDB6-END" {
                events.extend(current.take());
            } else if let (Some(vars), Some((k, v))) = (current.as_mut(), line.split_once('=')) {
                vars.insert(k.to_owned(), v.to_owned());
            }
        }
        let addresses: Vec<String> = events
            .iter()
            .filter_map(|e| e.get("new_ip6_address").cloned())
            .collect();
        let first = events.first()?;
        if addresses.is_empty() {
            return None;
        }
        Some(Lease6 {
            addresses,
            bootfile_url: first.get("new_dhcp6_bootfile_url").cloned(),
            duid: first
                .get("new_dhcp6_client_id")
                .map(|d| two_digit_hex(d))
                .unwrap_or_default(),
            server_duid: first
                .get("new_dhcp6_server_id")
                .map(|d| two_digit_hex(d))
                .unwrap_or_default(),
            events,
        })
    }

    /// Whether `addr` was bound.
    pub(crate) fn has(&self, addr: &str) -> bool {
        self.addresses.iter().any(|a| a == addr)
    }

    /// The one address bound (panics when there are several).
    pub(crate) fn address(&self) -> &str {
        assert_eq!(
            self.addresses.len(),
            1,
            "expected one address, got {self:?}"
        );
        &self.addresses[0]
    }

    /// Whether every address bound came from the pool.
    pub(crate) fn only_pool(&self) -> bool {
        self.addresses.iter().all(|a| in_pool6(a))
    }
}

/// One dhclient run's outcome.
struct Run {
    /// dhclient's own log (stdout and stderr).
    output: String,
    /// What the script saw bound.
    lease: Option<Lease6>,
}

impl Net {
    /// Gives both ends IPv6: no DAD, `fd00:5d::1/64` on the server side.
    /// Must run before dnsmasq starts (it joins the DHCPv6 multicast group
    /// on the interfaces it finds at start-up).
    pub(crate) fn enable_v6(&self) {
        for (ns, dev) in [(&self.srv, &self.srv_if), (&self.cli, &self.cli_if)] {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{dev}.accept_dad=0"),
                ],
            );
        }
        let addr = format!("{SERVER_IP6}/64");
        run(
            "ip",
            &[
                "-n",
                &self.srv,
                "addr",
                "add",
                &addr,
                "dev",
                &self.srv_if,
                "nodad",
            ],
        );
        // The link-local addresses made when the links came up (before DAD
        // was turned off) finish their DAD within a second or two.
        for (ns, dev) in [(&self.srv, &self.srv_if), (&self.cli, &self.cli_if)] {
            let ready = wait_until(Duration::from_secs(10), || {
                let out = run("ip", &["-n", ns, "-6", "addr", "show", "dev", dev]);
                out.contains("scope link") && !out.contains("tentative")
            });
            assert!(ready, "{ns}/{dev}: no usable IPv6 link-local address");
        }
    }

    /// Sets the client interface's MAC and gives it that MAC's EUI-64
    /// link-local address in place of the old one (see the module doc).
    pub(crate) fn set_client_mac6(&self, mac: &str) {
        let dev = self.cli_if.as_str();
        run(
            "ip",
            &["-n", &self.cli, "link", "set", "dev", dev, "address", mac],
        );
        run(
            "ip",
            &[
                "-n", &self.cli, "-6", "addr", "flush", "dev", dev, "scope", "link",
            ],
        );
        let ll = eui64_link_local(mac);
        run(
            "ip",
            &["-n", &self.cli, "addr", "add", &ll, "dev", dev, "nodad"],
        );
    }

    fn dhclient_files(&self) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        let dir = self.scratch.path();
        (
            dir.join("dhclient6.conf"),
            dir.join("dhclient6-script"),
            dir.join("dhclient6-events"),
            dir.join("dhclient6.pid"),
        )
    }

    /// Writes dhclient's config and script (once per [`Net`]).
    fn write_dhclient_files(&self) {
        let (conf, script, events, _) = self.dhclient_files();
        if script.exists() {
            return;
        }
        fs::write(
            &conf,
            "# hostsdir-broker tests: also ask for the boot-file URL (option 59).\n\
             also request dhcp6.bootfile-url;\n",
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
        // Only prints: no address is configured, no file of the host touched.
        let text = format!(
            "#!/bin/sh\n\
             case \"$reason\" in BOUND6|RENEW6|REBIND6|REBOOT6) ;; *) exit 0 ;; esac\n\
             {{ echo \"HDB6-BEGIN $reason\"; env | grep '^new_' | sort; echo HDB6-END; }} >> '{}'\n\
             exit 0\n",
            events.display()
        );
        fs::write(&script, text).unwrap_or_else(|e| panic!("writing {}: {e}", script.display()));
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", script.display()));
    }

    /// Runs dhclient for `c` until it bound, `done()` holds, or
    /// [`EXCHANGE_LIMIT`] passed; then kills it.
    fn run_dhclient(&self, c: &Client6, mut done: impl FnMut() -> bool) -> Run {
        self.write_dhclient_files();
        let (conf, script, events, pid) = self.dhclient_files();
        self.set_client_mac6(&c.mac);
        fs::write(&events, "").unwrap_or_else(|e| panic!("writing {}: {e}", events.display()));
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let out_path = self.scratch.path().join(format!("dhclient6-{n}.out"));
        let out = fs::File::create(&out_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", out_path.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", out_path.display()));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.cli, "dhclient", "-6", "-1", "-d"]);
        if c.duid == Duid::Ll {
            cmd.args(["-D", "LL"]);
        }
        cmd.arg("-cf")
            .arg(&conf)
            .arg("-lf")
            .arg(&c.lease_file)
            .arg("-pf")
            .arg(&pid)
            .arg("-sf")
            .arg(&script)
            .arg(&self.cli_if)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let mut child = Guarded(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot run dhclient: {e}; {V6_HINT}")),
        );
        let output = || fs::read_to_string(&out_path).unwrap_or_default();
        // dhclient logs `Bound to lease`, runs the script for each address,
        // then schedules the renewal (dhc6.c `start_bound`).
        wait_until(EXCHANGE_LIMIT, || {
            output().contains("Renewal event scheduled")
                || done()
                || matches!(child.0.try_wait(), Ok(Some(_)))
        });
        // SIGKILL: dhclient sends no Release, and never lingers renewing.
        let _ = child.0.kill();
        let _ = child.0.wait();
        let text = fs::read_to_string(&events).unwrap_or_default();
        Run {
            output: output(),
            lease: Lease6::parse(&text),
        }
    }

    /// One DHCPv6 exchange for `c`, from a Solicit (the lease file keeps
    /// only the DUID). `None` when nothing was bound within
    /// [`EXCHANGE_LIMIT`].
    pub(crate) fn dhcp6_request(&self, c: &Client6) -> Option<Lease6> {
        let _one_at_a_time = self.dhcp.lock().unwrap_or_else(|e| e.into_inner());
        c.forget_leases();
        let r = self.run_dhclient(c, || false);
        if r.lease.is_none() {
            eprintln!(
                "dhclient -6 for {} bound nothing; its log:\n{}",
                c.mac,
                tail(&r.output, 30)
            );
        }
        r.lease
    }

    /// For a client dnsmasq should ignore: runs dhclient until dnsmasq
    /// logged one more Solicit of this DUID as ignored. Returns what was
    /// bound anyway (the caller fails on `Some`); panics if dnsmasq never
    /// logged the Solicit. Needs [`Duid::Ll`] (the DUID to look for).
    pub(crate) fn dhcp6_expect_ignored(&self, c: &Client6, dirs: &Dirs) -> Option<Lease6> {
        assert_eq!(c.duid, Duid::Ll, "dhcp6_expect_ignored needs Duid::Ll");
        let _one_at_a_time = self.dhcp.lock().unwrap_or_else(|e| e.into_inner());
        c.forget_leases();
        let duid = c.ll_duid();
        let ignored = || {
            dirs.log_text()
                .lines()
                .filter(|l| {
                    l.contains("DHCPSOLICIT(") && l.contains(&duid) && l.contains("ignored")
                })
                .count()
        };
        let before = ignored();
        let r = self.run_dhclient(c, || ignored() > before);
        assert!(
            r.lease.is_some() || ignored() > before,
            "dnsmasq logged no ignored Solicit from {duid} within {EXCHANGE_LIMIT:?}; \
             dhclient's log:\n{}\ndnsmasq's log:\n{}",
            tail(&r.output, 20),
            tail(&dirs.log_text(), 20)
        );
        r.lease
    }

    /// `dhcp_release6` (dnsmasq-utils) in the server namespace: tells the
    /// dnsmasq there that the client `client_duid`/`iaid` releases `ip` —
    /// what an operator does for a lease that holds a reserved address.
    pub(crate) fn dhcp_release6(&self, server_duid: &str, client_duid: &str, iaid: &str, ip: &str) {
        let tool = find_in_path("dhcp_release6")
            .unwrap_or_else(|| panic!("dhcp_release6 not found; {V6_HINT}"));
        let out = self
            .srv_command(&tool)
            .args(["--iface", &self.srv_if, "--server-id", server_duid])
            .args(["--client-id", client_duid, "--iaid", iaid, "--ip", ip])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run dhcp_release6: {e}; {V6_HINT}"));
        assert!(
            out.status.success(),
            "dhcp_release6 for {ip} ({client_duid}, IAID {iaid}) failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One DHCPv6 line of dnsmasq's lease file:
/// `<expiry> [T]<iaid> <address> <hostname|*> <DUID>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease6Line {
    /// The IAID, decimal as dnsmasq writes it.
    pub(crate) iaid: String,
    /// The leased address.
    pub(crate) address: String,
    /// The client's DUID.
    pub(crate) duid: String,
}

/// dnsmasq's lease file: its own DUID (the `duid` line) and the DHCPv6
/// leases.
pub(crate) fn lease_file6(dirs: &Dirs) -> (Option<String>, Vec<Lease6Line>) {
    let text = fs::read_to_string(&dirs.leases).unwrap_or_default();
    let mut server = None;
    let mut leases = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["duid", id] => server = Some((*id).to_owned()),
            [_, iaid, addr, _, duid, ..] if addr.parse::<std::net::Ipv6Addr>().is_ok() => leases
                .push(Lease6Line {
                    iaid: iaid.trim_start_matches('T').to_owned(),
                    address: (*addr).to_owned(),
                    duid: (*duid).to_owned(),
                }),
            _ => {}
        }
    }
    (server, leases)
}
