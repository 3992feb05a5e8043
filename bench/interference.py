#!/usr/bin/env python3
"""What a MAC flood, flow churn and port churn cost a steady vhost-user stream, live.

vswitchd (one PMD on CPU1, --no-idle-backoff, like compare-ovs) switches a steady stream between
two vhost-user ports p1 p2 of testpmd (CPU0, --no-huge) on port rules, with
`priority=0,actions=NORMAL` for everything else. Each case alternates windows without and with
the interference, `--rounds` times, and reports medians:

  flood10k, flood100k  testpmd flowgen, 1,000 flows on both ports (open loop); a third port p3
                       (AF_XDP on a veth) receives frames from random source MACs at 10k or
                       100k frames/s (vswitch-pktgen --random-src-mac, in its own netns, CPU0).
  churn                the io loop (2 x 32 x 32 frames circulating, closed loop, so any drop is
                       the switch's); 10,000 rule adds/deletes per second of TCP rules the UDP
                       stream does not match: `add-flows` of 1,000 rules and a `del-flows` of
                       them every 200 ms, over one management connection.
  ports                the io loop; a ring port added and deleted 100 times in the window.

Figures per window: the steady stream's cycles per packet (its receive queues' cycles over their
packets, from pmd-rxq-show; `pmd` is the PMD's busy cycles over all packets, which a binary
without per-queue figures also gives), the PMD's EMC hit share, the stream's own EMC share (the PMD's hits over its lookups minus the flood's frames, which
all miss), the stream's Mpps (testpmd RX; with a flood, vswitch-pktgen shares CPU0 with testpmd,
so testpmd generates less: compare cycles, not Mpps), the switch's drops on p1/p2 (tx drops and
pipeline drops: the loop cases must show 0; flowgen is open loop and overruns its own receive
rings), and that p1/p2's queues stayed on their PMD.

Usage (root; binaries from `cargo build --release -p ctl -p bench`):
  bench/interference.py --bindir target/release [--rounds 3] [--seconds 10]
                        [--cases flood10k,flood100k,churn,ports] [--keep] [--pktgen PATH]
"""

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_ovs as c  # noqa: E402


def rxq_stats(sw):
    """{(port, queue): (pmd, packets, cycles)} from pmd-rxq-show, or None (older binary)."""
    try:
        rows = sw.ctl("pmd-rxq-show", json_out=True)
    except c.Fail:
        return None
    out = {}
    for r in rows:
        for q in r.get("rxqs", []):
            out[(q["port"], q["queue"])] = (r["id"], q.get("packets", 0), q.get("cycles", 0))
    return out


def pmd_totals(sw):
    rows = sw.ctl("pmd-stats", json_out=True)
    keys = ("packets", "busy_ns", "idle_ns", "emc_hits", "megaflow_hits", "misses")
    return {k: sum(r.get(k, 0) for r in rows) for k in keys}


def rx_of(sw, port):
    for p in sw.ctl("dump-ports", "br0", json_out=True):
        if p["name"] == port:
            return p["rx_packets"]
    return 0


def drops(sw, ports=("p1", "p2")):
    """Frames of the stream the switch lost: tx drops and pipeline drops on p1, p2."""
    total = 0
    for p in sw.ctl("dump-ports", "br0", json_out=True):
        if p["name"] in ports:
            total += p.get("tx_dropped", 0)
            total += sum(n for r, n in p.get("drops", {}).items() if r != "mac-learn-limited")
    return total


class Window:
    def __init__(self, sw, tp):
        self.sw, self.tp = sw, tp
        self.rxq0 = rxq_stats(sw)
        self.pmd0 = pmd_totals(sw)
        self.drops0 = drops(sw)
        self.rx0, _, self.t0 = tp.stats()
        self.flood0 = rx_of(sw, "p3")

    def end(self, ghz):
        rxq1 = rxq_stats(self.sw)
        pmd1 = pmd_totals(self.sw)
        rx1, _, t1 = self.tp.stats()
        d = {k: pmd1[k] - self.pmd0[k] for k in pmd1}
        looked = d["emc_hits"] + d["megaflow_hits"] + d["misses"]
        flood = rx_of(self.sw, "p3") - self.flood0
        # The stream's share: every flood frame is from a new address, so it misses the EMC.
        stream = looked - flood
        res = {
            "stream_emc_pct": 100.0 * min(d["emc_hits"], stream) / stream if stream > 0 else None,
            "mpps": (rx1 - self.rx0) / (t1 - self.t0) / 1e6,
            "pmd_cyc": d["busy_ns"] * ghz / d["packets"] if d["packets"] else None,
            "emc_pct": 100.0 * d["emc_hits"] / looked if looked else None,
            "lost": drops(self.sw) - self.drops0,
            "steady_cyc": None,
            "moved": None,
        }
        if self.rxq0 is not None and rxq1 is not None:
            keys = [k for k in rxq1 if k[0] in ("p1", "p2")]
            pk = sum(rxq1[k][1] - self.rxq0.get(k, (0, 0, 0))[1] for k in keys)
            cy = sum(rxq1[k][2] - self.rxq0.get(k, (0, 0, 0))[2] for k in keys)
            res["steady_cyc"] = cy / pk if pk else None
            res["moved"] = sum(1 for k in keys if k in self.rxq0 and self.rxq0[k][0] != rxq1[k][0])
        return res


class Ctl:
    """One management connection, for a churn of requests."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def request(self, command, args):
        line = json.dumps({"version": 1, "command": command, "args": args}) + "\n"
        self.s.sendall(line.encode())
        reply = json.loads(self.f.readline())
        if not reply.get("ok"):
            raise c.Fail(f"{command}: {reply.get('error')}")
        return reply.get("result")

    def close(self):
        self.s.close()


def churn_rules(sock, stop, counts):
    """10,000 changes per second: every 200 ms, 1,000 TCP rules in, then the same out."""
    ctl = Ctl(sock)
    batch = 0
    rules = lambda b: [f"priority=200,tcp,nw_dst=10.99.{b % 200}.{i % 250},tp_src={i},"
                       f"tp_dst=80,actions=drop" for i in range(1000)]
    next_t = time.monotonic()
    try:
        while not stop.is_set():
            ctl.request("add-flows", ["br0", *rules(batch)])
            counts["changes"] += 1000
            next_t += 0.1
            time.sleep(max(0.0, next_t - time.monotonic()))
            r = ctl.request("del-flows", ["br0", f"tcp,nw_dst=10.99.{batch % 200}.0/24"])
            counts["changes"] += r["deleted"]
            next_t += 0.1
            time.sleep(max(0.0, next_t - time.monotonic()))
            batch += 1
    finally:
        ctl.close()


def churn_ports(sw, stop, counts, n=100):
    for i in range(n):
        if stop.is_set():
            break
        sw.ctl("add-port", "br0", "churn", "type=ring")
        sw.ctl("del-port", "br0", "churn")
        counts["changes"] += 2


def run_case(env, args, case, index, ghz):
    tag = f"i{index}"
    rig = c.VethRig(env, f"f{index}") if case.startswith("flood") else None
    socks = [os.path.join(env.work, f"{tag}-{i}.sock") for i in (0, 1)]
    ports = c.vhost_ports("v", socks)
    if rig:
        ports.append(("p3", ["type=afxdp", f"iface={rig.s[0]}"]))
    loop = not case.startswith("flood")
    extra = ["--total-num-mbufs=16384"] + ([] if loop else c.FLOWGEN)
    tp = c.Testpmd(env, tag, socks, huge=False, extra_args=extra)
    sw = c.Vswitch(env, args.bindir, tag, ports, ns=rig.sw_ns if rig else None)
    tp.wait_ready()
    sw.ctl("add-flow", "br0", "priority=100,in_port=p1,actions=output:p2")
    sw.ctl("add-flow", "br0", "priority=100,in_port=p2,actions=output:p1")
    sw.ctl("add-flow", "br0", "priority=0,actions=NORMAL")
    c.wait_until("vhost-user ports connected", 30,
                 lambda: sw.ctl("show").count("connected=yes") >= 2)
    c.wait_until("testpmd links up", 30, tp.links_up)
    tp.cmd("start tx_first 32" if loop else "start")
    rx0 = tp.stats()[0]
    c.wait_until("frames through the switch", 15, lambda: tp.stats()[0] > rx0 + 10000)
    time.sleep(args.warm)
    rows = {"quiet": [], "interfered": []}
    extra_info = []
    for _ in range(args.rounds):
        for which in ("quiet", "interfered"):
            stop = threading.Event()
            counts = {"changes": 0}
            worker = None
            gen = None
            if which == "interfered":
                if rig:
                    rate = 10_000 if case == "flood10k" else 100_000
                    gen = env.spawn(f"flood-{tag}", [
                        "timeout", "-k", "5", str(int(args.seconds + 30)),
                        "ip", "netns", "exec", rig.gen_ns, "taskset", "-c", "0",
                        args.pktgen, "--tx-iface", rig.g[0],
                        "--random-src-mac", "--rate", str(rate), "--warmup", "1",
                        "--seconds", f"{args.seconds + 1:g}"])
                    time.sleep(1.5)
                elif case == "churn":
                    worker = threading.Thread(target=churn_rules,
                                              args=(sw.ctl_sock, stop, counts))
                else:
                    worker = threading.Thread(target=churn_ports, args=(sw, stop, counts))
            w = Window(sw, tp)
            if worker:
                worker.start()
            time.sleep(args.seconds)
            stop.set()
            res = w.end(ghz)
            if worker:
                worker.join(timeout=30)
            if gen:
                env.kill(gen)
            res["changes_per_s"] = counts["changes"] / args.seconds
            rows[which].append(res)
            time.sleep(1)
    if rig:
        learned = "n/a"
        for b in sw.ctl("show", json_out=True)["bridges"]:
            for p in b["ports"]:
                if p["name"] == "p3":
                    learned = p["status"].get("mac_learned", "n/a")
        for p in sw.ctl("dump-ports", "br0", json_out=True):
            if p["name"] == "p3":
                extra_info.append(f"p3 received {p['rx_packets']} flood frames, learned "
                                  f"{learned}, learning refused "
                                  f"{p.get('drops', {}).get('mac-learn-limited', 0)} times")
    tp.stop()
    sw.stop()
    if rig:
        rig.delete()
    return rows, extra_info


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warm", type=float, default=3)
    ap.add_argument("--cases", default="flood10k,flood100k,churn,ports")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--pktgen", help="the vswitch-pktgen to flood with (default: BINDIR's; "
                    "lets an older vswitchd be measured with a newer generator)")
    args = ap.parse_args()
    args.bindir = os.path.abspath(args.bindir)
    args.pktgen = os.path.abspath(args.pktgen or os.path.join(args.bindir, "vswitch-pktgen"))
    if os.geteuid() != 0:
        sys.exit("run as root")
    work = tempfile.mkdtemp(prefix="vsw-interference-")
    env = c.Env(work)
    ghz = c.cpu_ghz()
    c.log(f"interference: {args.rounds} rounds x {args.seconds:g} s, TSC {ghz:.3f} GHz, "
          f"binaries {args.bindir}, work {work}")
    ok = False
    try:
        print(f"{'case':<11} {'window':<11} {'steady cyc/pkt':>14} {'pmd cyc/pkt':>12} "
              f"{'EMC hit':>8} {'stream EMC':>10} {'Mpps':>6} {'lost':>5} {'moved':>5} "
              f"{'changes/s':>9}")
        for index, case in enumerate(args.cases.split(",")):
            rows, info = run_case(env, args, case, index, ghz)
            base = med(rows["quiet"], "steady_cyc") or med(rows["quiet"], "pmd_cyc")
            for which in ("quiet", "interfered"):
                r = rows[which]
                lost = sum(x["lost"] for x in r)
                moved = sum(x["moved"] or 0 for x in r)
                print(f"{case:<11} {which:<11} {fmt(med(r, 'steady_cyc'), '14.0f')} "
                      f"{fmt(med(r, 'pmd_cyc'), '12.0f')} {fmt(med(r, 'emc_pct'), '7.2f')}% "
                      f"{fmt(med(r, 'stream_emc_pct'), '9.2f')}% "
                      f"{fmt(med(r, 'mpps'), '6.2f')} {lost:>5} {moved:>5} "
                      f"{fmt(med(r, 'changes_per_s'), '9.0f')}", flush=True)
            steady = med(rows["interfered"], "steady_cyc") or med(rows["interfered"], "pmd_cyc")
            if base and steady:
                print(f"{'':<11} interfered/quiet steady cycles: {steady / base:.3f}")
            for line in info:
                print(f"{'':<11} {line}")
        ok = True
    except c.Fail as e:
        c.log(f"FAILED: {e}")
    finally:
        env.finish(ok, args.keep)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
