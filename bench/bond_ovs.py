#!/usr/bin/env python3
"""Bond interop and failover: vswitch's bond against Open vSwitch 3.1's userspace bond, LACP
between them, a counted stream across, one member's link cut.

Topology (three network namespaces of our own, four veth pairs):

  gen ns   vswitch-pktgen (CPU0) sends from g0 at --rate and counts what arrives on g1
  vsw ns   vswitchd (PMD on CPU1): afxdp port p1 on s0 (g0's peer), bond0 over afxdp members
           va, vb; no rules (NORMAL)
  ovs ns   ovs-vswitchd (netdev datapath, PMD on CPU1, no DPDK): bond0 over afxdp members oa,
           ob (va's and vb's peers), afxdp port or (g1's peer); NORMAL

Scenarios, in one run (the bonds are reconfigured live between them):

  lacp  both bonds balance-tcp, lacp=active, lacp-time=fast. Checks: both sides negotiated
        within 10 s, OVS's `lacp/show` names our system id as its partner, ours names OVS's;
        then the stream runs, the member carrying it is set down (`ip link set va down` in the
        vswitch netns: both ends lose carrier), and the frames lost give the outage.
  ab    our bond active-backup, OVS's balance-slb, LACP off: the stream runs and our active
        member is set down. (OVS's slb accepts unicast frames on any enabled member, so the
        outage is our failover alone; with OVS in active-backup too it would add OVS's own
        failover, as its active member is the other end of the same link.)

Each outage is lost frames / rate (frames counted by sequence number at the receiver, not a
ping); received > sent would mean duplicates. --check fails the run unless negotiation
happened, every outage is <= 100 ms and nothing was duplicated.

Usage (root; binaries from `cargo build --release -p ctl -p bench`):
  bench/bond_ovs.py --bindir target/release [--rate 100000] [--seconds 6] [--check] [--keep]
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_ovs as c  # noqa: E402

OUR_SYSTEM = "02:00:00:00:aa:01"


class Rig:
    def __init__(self, env):
        pid = os.getpid()
        self.env = env
        self.gen, self.vsw, self.ovs = (f"vswbond{pid}{x}" for x in "gvo")
        for ns in (self.gen, self.vsw, self.ovs):
            env.add_netns(ns)
            c.run(["ip", "-n", ns, "link", "set", "lo", "up"])
        self.links = [("g0", self.gen, "s0", self.vsw), ("va", self.vsw, "oa", self.ovs),
                      ("vb", self.vsw, "ob", self.ovs), ("or", self.ovs, "g1", self.gen)]
        for a, ans, b, bns in self.links:
            c.run(["ip", "link", "add", f"t{pid % 100000}{a}", "netns", ans, "type", "veth",
                   "peer", "name", f"t{pid % 100000}{b}", "netns", bns])
            for ns, tmp, name in ((ans, f"t{pid % 100000}{a}", a), (bns, f"t{pid % 100000}{b}", b)):
                c.run(["ip", "-n", ns, "link", "set", tmp, "name", name])
                c.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                       f"net.ipv6.conf.{name}.disable_ipv6=1"], check=False)
                c.run(["ip", "-n", ns, "link", "set", name, "up"])

    def set_link(self, ns, ifc, up):
        c.run(["ip", "-n", ns, "link", "set", ifc, "up" if up else "down"])

    def tx_packets(self, ns, ifc):
        link = json.loads(c.run(["ip", "-n", ns, "-j", "-s", "link", "show", ifc]))[0]
        return int(link["stats64"]["tx"]["packets"])

    def delete(self):
        for ns in (self.gen, self.vsw, self.ovs):
            self.env.del_netns(ns)


def ours(sw):
    return sw.ctl("bond-show", "bond0", json_out=True)[0]


def wait_both(rig, sw, ovs, lacp, secs=15):
    """Until both bonds have both members enabled (and LACP negotiated, when on)."""
    def ready():
        b = ours(sw)
        mine = all(m["enabled"] for m in b["members"]) and (not lacp or b["lacp_negotiated"])
        theirs = ovs.appctl("bond/show", "bond0")
        their_ok = theirs.count("may_enable: true") + theirs.count(": enabled") >= 2
        if lacp:
            their_ok = their_ok and "lacp_status: negotiated" in theirs
        return mine and their_ok
    t0 = time.monotonic()
    c.wait_until("both bonds up", secs, ready, step=0.1)
    return time.monotonic() - t0


def outage(env, args, rig, sw, tag):
    """Runs the stream, cuts the member carrying it, returns the pktgen counts."""
    name = f"pktgen-{tag}"
    p = env.spawn(name, [
        "timeout", "-k", "5", str(int(args.seconds + 40)),
        "ip", "netns", "exec", rig.gen, "taskset", "-c", "0",
        os.path.join(args.bindir, "vswitch-pktgen"), "--tx-iface", "g0", "--rx-iface", "g1",
        "--rate", str(args.rate), "--warmup", "1", "--seconds", f"{args.seconds:g}",
        "--drain", "1"])
    time.sleep(1 + args.seconds / 3)
    counts = {m: rig.tx_packets(rig.vsw, m) for m in ("va", "vb")}
    time.sleep(0.5)
    moved = {m: rig.tx_packets(rig.vsw, m) - counts[m] for m in counts}
    carrier = max(moved, key=moved.get)
    c.log(f"{tag}: stream on {carrier} ({moved}); setting it down")
    rig.set_link(rig.vsw, carrier, False)
    p.wait(timeout=args.seconds + 45)
    with open(os.path.join(env.work, f"{name}.log"), errors="replace") as f:
        text = f.read()
    m = re.search(r"PKTGEN_RESULT (.*)", text)
    if not m:
        raise c.Fail(f"vswitch-pktgen failed ({p.returncode}):\n{text[-2000:]}")
    r = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m.group(1))}
    lost = r["sent"] - r["received"]
    r.update(member=carrier, lost=lost, outage_ms=1000.0 * max(lost, 0) / args.rate)
    b = ours(sw)
    r["failovers"] = b["failovers"]
    down = [m for m in b["members"] if m["name"] == carrier][0]
    if down["enabled"]:
        raise c.Fail(f"{tag}: {carrier} is down but still enabled in our bond: {b}")
    rig.set_link(rig.vsw, carrier, True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--rate", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.bindir = os.path.abspath(args.bindir)
    if os.geteuid() != 0:
        sys.exit("run as root")
    work = tempfile.mkdtemp(prefix="vsw-bond-")
    env = c.Env(work)
    ok = False
    rig = sw = ovs = None
    results = {}
    try:
        rig = Rig(env)
        sw = c.Vswitch(env, args.bindir, "b", [("p1", ["type=afxdp", "iface=s0"])], ns=rig.vsw)
        sw.ctl("add-bond", "br0", "bond0", "va", "vb", "bond_mode=balance-tcp", "lacp=active",
               "lacp-time=fast", f"lacp-system-id={OUR_SYSTEM}")
        ovs = c.Ovs(env, "b", [("or", ["type=afxdp", "options:xdp-mode=native"])], ns=rig.ovs,
                    dpdk=False)
        ovs.vsctl("add-bond", "br0", "bond0", "oa", "ob", "bond_mode=balance-tcp",
                  "lacp=active", "other_config:lacp-time=fast",
                  "--", "set", "Interface", "oa", "type=afxdp", "options:xdp-mode=native",
                  "--", "set", "Interface", "ob", "type=afxdp", "options:xdp-mode=native",
                  timeout=60)
        took = wait_both(rig, sw, ovs, lacp=True)
        theirs = ovs.appctl("lacp/show", "bond0")
        if "status: active negotiated" not in theirs or f"partner sys_id: {OUR_SYSTEM}" not in theirs:
            raise c.Fail(f"OVS lacp/show does not show us as its negotiated partner:\n{theirs}")
        mine = sw.ctl("lacp-show", "bond0")
        ovs_sys = re.search(r"^\s*sys_id: (\S+)", theirs, re.M).group(1)
        if f"partner sys_id: {ovs_sys}" not in mine:
            raise c.Fail(f"our lacp-show does not name OVS ({ovs_sys}):\n{mine}")
        c.log(f"lacp: negotiated with OVS (sys_id {ovs_sys}) after {took:.1f} s")
        print(theirs)
        print(mine)
        results["lacp"] = outage(env, args, rig, sw, "lacp")
        results["lacp"]["negotiated_s"] = took

        sw.ctl("set", "port", "bond0", "bond_mode=active-backup", "lacp=off")
        ovs.vsctl("set", "Port", "bond0", "bond_mode=balance-slb", "lacp=off")
        took = wait_both(rig, sw, ovs, lacp=False)
        results["ab"] = outage(env, args, rig, sw, "ab")
        for k, r in results.items():
            print(f"BOND_OVS case={k} member={r['member']} sent={int(r['sent'])} "
                  f"received={int(r['received'])} lost={int(r['lost'])} "
                  f"outage_ms={r['outage_ms']:.1f} rate={args.rate}")
        bad = [k for k, r in results.items()
               if r["outage_ms"] > 100 or r["received"] > r["sent"] or r["received"] == 0]
        if bad and args.check:
            raise c.Fail(f"outage over 100 ms, duplicates or nothing received: {bad}")
        ok = True
    except c.Fail as e:
        c.log(f"FAILED: {e}")
    finally:
        for x in (ovs, sw):
            if x:
                x.stop()
        if rig:
            rig.delete()
        env.finish(ok, args.keep)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
