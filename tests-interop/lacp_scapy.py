#!/usr/bin/python3
"""LACP against a scripted partner: scapy (Debian's python3-scapy, hence /usr/bin/python3)
plays the far end of a vswitch bond and sends what a real switch would, and what a broken or
hostile one might; the bond's state must follow IEEE 802.1AX.

Topology: netns S (scapy) with x0, x1; netns V with their peers m0, m1, the AF_XDP members of
bond0 (balance-tcp, lacp=active, lacp-time=fast) in vswitchd. The checks read `vswitchctl
--format json bond-show` (`lacp-show` carries the same rows).

  1. A partner in sync on both links: negotiated, both members enabled, our partner is the
     scripted system and key.
  2. Malformed PDUs (truncated, a bad TLV length, oversize, another slow protocol): each
     counted in rx_bad, nothing else changes.
  3. A Marker request is answered with a Marker response carrying the same requester and
     transaction id.
  4. The partner changes its key on x1 only: m1 leaves the aggregator (the lead, m0, keeps
     the old key), m0 keeps carrying; back to the old key: m1 rejoins.
  5. The partner falls silent: both members expire 3 s after its last PDU (fast timeout),
     leave the aggregator, and are defaulted 3 s later.

Usage (root): tests-interop/lacp_scapy.py --bindir target/release
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

PARTNER = "02:00:00:00:bb:01"
OURS = "02:00:00:00:aa:01"
ACT, TIMEOUT, AGG, SYNC, COLL, DIST = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def run(argv, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {p.stderr.strip()}")
    return p.stdout


# ---------------------------------------------------------------------------------------------
# inside netns S: the scripted partner and the checks


def inner(args):
    from scapy.all import AsyncSniffer, Ether, Raw, sendp
    from scapy.contrib.lacp import LACP, MarkerProtocol, SlowProtocol

    def ctl(*a):
        out = run([os.path.join(args.bindir, "vswitchctl"), "--socket", args.sock,
                   "--format", "json", *a])
        return json.loads(out) if out.strip() else None

    def bond():
        return ctl("bond-show", "bond0")[0]

    def member(b, name):
        return [m for m in b["members"] if m["name"] == name][0]

    def wait(what, secs, f):
        t0 = time.monotonic()
        while not f():
            if time.monotonic() - t0 > secs:
                raise SystemExit(f"FAIL {what} within {secs} s: {json.dumps(bond(), indent=1)}")
            time.sleep(0.05)
        return time.monotonic() - t0

    def pdu(port, key=77, state=ACT | TIMEOUT | AGG | SYNC | COLL | DIST):
        return (Ether(src=f"02:00:00:00:bc:0{port}", dst="01:80:c2:00:00:02") / SlowProtocol()
                / LACP(actor_system_priority=0x8000, actor_system=PARTNER, actor_key=key,
                       actor_port_priority=0x80, actor_port_number=port, actor_state=state,
                       partner_system=OURS, partner_key=2, partner_port_number=port,
                       partner_state=ACT | TIMEOUT | AGG | SYNC | COLL | DIST))

    def speak(keys, rounds=1):
        for _ in range(rounds):
            for i, key in enumerate(keys):
                sendp(pdu(i + 1, key), iface=f"x{i}", verbose=False)
            time.sleep(0.3)

    def enabled():
        b = bond()
        return [member(b, n)["enabled"] for n in ("m0", "m1")]

    # 1. negotiated
    speak([77, 77], rounds=3)
    took = wait("negotiation", 5, lambda: (speak([77, 77]), bond()["lacp_negotiated"]
                                          and enabled() == [True, True])[1])
    b = bond()
    for n in ("m0", "m1"):
        p = member(b, n)["lacp"]["partner"]
        assert p["system_id"] == PARTNER and p["key"] == 77, p
    print(f"ok 1: negotiated with the scripted partner ({took:.1f} s)")

    # 2. malformed PDUs
    before = member(bond(), "m0")["lacp"]["rx_bad"]
    good = bytes(pdu(1))
    bad_tlv = bytearray(good)
    bad_tlv[17] = 19  # actor TLV length 19
    other = bytearray(good)
    other[14] = 3  # OAM subtype
    frames = [good[:60], bytes(bad_tlv), good + bytes(76), bytes(other)]
    for f in frames:
        sendp(Ether(f), iface="x0", verbose=False)
    wait("malformed PDUs counted", 3,
         lambda: member(bond(), "m0")["lacp"]["rx_bad"] == before + len(frames))
    speak([77, 77])
    b = bond()
    assert b["lacp_negotiated"] and enabled() == [True, True], b
    print(f"ok 2: {len(frames)} malformed PDUs counted in rx_bad, state unchanged")

    # 3. marker
    sniff = AsyncSniffer(iface="x0", filter="ether proto 0x8809", store=True)
    sniff.start()
    time.sleep(0.3)
    sendp(Ether(src="02:00:00:00:bc:01", dst="01:80:c2:00:00:02") / SlowProtocol()
          / MarkerProtocol(marker_type=1, requester_port=1, requester_system=PARTNER,
                           requester_transaction_id=0xC0FFEE), iface="x0", verbose=False)
    time.sleep(0.5)
    got = sniff.stop()
    replies = [p for p in got if MarkerProtocol in p and p[MarkerProtocol].marker_type == 2]
    assert replies, f"no marker response among {[p.summary() for p in got]}"
    r = replies[0][MarkerProtocol]
    assert r.requester_transaction_id == 0xC0FFEE and r.requester_system == PARTNER, r.show(dump=True)
    print("ok 3: marker request answered with the same requester and transaction id")

    # 4. key change on x1 only
    t0 = time.monotonic()
    while enabled() != [True, False]:
        speak([77, 88])
        if time.monotonic() - t0 > 5:
            raise SystemExit(f"FAIL m1 did not leave on a key change: {json.dumps(bond())}")
    b = bond()
    assert member(b, "m1")["lacp"]["attached"] is False and member(b, "m0")["lacp"]["attached"], b
    wait("m1 back on the old key", 5, lambda: (speak([77, 77]), enabled() == [True, True])[1])
    print("ok 4: a member whose partner changes key leaves the aggregator, and rejoins")

    # 5. silence
    speak([77, 77])
    last = time.monotonic()
    exp = wait("expiry", 6, lambda: all(member(bond(), n)["lacp"]["status"] == "expired"
                                        for n in ("m0", "m1")))
    after = time.monotonic() - last
    assert 2.5 <= after <= 4.5, f"expired {after:.2f} s after the last PDU"
    assert enabled() == [False, False], bond()
    wait("defaulted", 5, lambda: all(member(bond(), n)["lacp"]["status"] == "defaulted"
                                     for n in ("m0", "m1")))
    after2 = time.monotonic() - last
    assert after2 <= 7.5, f"defaulted {after2:.2f} s after the last PDU"
    print(f"ok 5: silent partner expired after {after:.1f} s, defaulted after {after2:.1f} s "
          f"(waited {exp:.1f} s)")
    print("lacp_scapy: all checks passed")


# ---------------------------------------------------------------------------------------------
# outside: topology, vswitchd, cleanup


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sock", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.bindir = os.path.abspath(args.bindir)
    if args.inner:
        return inner(args)
    if os.geteuid() != 0:
        sys.exit("run as root")
    pid = os.getpid()
    s_ns, v_ns = f"vswlacp{pid}s", f"vswlacp{pid}v"
    work = tempfile.mkdtemp(prefix="vsw-lacp-")
    sock = os.path.join(work, "ctl.sock")
    d = None
    ok = False
    try:
        for ns in (s_ns, v_ns):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for i in range(2):
            tmp = f"tl{pid % 100000}{i}"
            run(["ip", "link", "add", f"{tmp}x", "netns", s_ns, "type", "veth",
                 "peer", "name", f"{tmp}m", "netns", v_ns])
            for ns, old, new in ((s_ns, f"{tmp}x", f"x{i}"), (v_ns, f"{tmp}m", f"m{i}")):
                run(["ip", "-n", ns, "link", "set", old, "name", new])
                run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                     f"net.ipv6.conf.{new}.disable_ipv6=1"], check=False)
                run(["ip", "-n", ns, "link", "set", new, "up"])
        log = open(os.path.join(work, "vswitchd.log"), "w")
        d = subprocess.Popen(["ip", "netns", "exec", v_ns, os.path.join(args.bindir, "vswitchd"),
                              "--socket", sock, "--state", os.path.join(work, "state.json"),
                              "--pidfile", os.path.join(work, "pid")],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        vctl = [os.path.join(args.bindir, "vswitchctl"), "--socket", sock]
        run(vctl + ["add-br", "br0"])
        run(vctl + ["add-bond", "br0", "bond0", "m0", "m1", "bond_mode=balance-tcp",
                    "lacp=active", "lacp-time=fast", f"lacp-system-id={OURS}"])
        p = subprocess.run(["ip", "netns", "exec", s_ns, "/usr/bin/python3", __file__,
                            "--inner", "--bindir", args.bindir, "--sock", sock], timeout=120)
        ok = p.returncode == 0
    finally:
        if d:
            subprocess.run(["kill", "--", f"-{d.pid}"], stderr=subprocess.DEVNULL)
            d.wait(timeout=10)
        for ns in (s_ns, v_ns):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        if ok:
            subprocess.run(["rm", "-rf", work])
        else:
            print(f"lacp_scapy: FAILED; logs in {work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
