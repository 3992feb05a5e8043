#!/usr/bin/env python3
"""Side-by-side vhost-user loop benchmark: vswitch vs Open vSwitch 3.1 (DPDK).

Driven by bench/compare-ovs.sh (which installs packages, builds, reserves hugepages and cleans
up after us as a last resort). Python 3 standard library only.

Topology (one switch at a time):

    dpdk-testpmd (CPU0, io forward)              switch (PMD on CPU1)
      port0 net_virtio_user0 server=1  <-- sock0 -->  p1 (vhost-user client)
      port1 net_virtio_user1 server=1  <-- sock1 -->  p2 (vhost-user client)

testpmd is seeded with `start tx_first 32` (32 bursts of 32 txonly frames per port); io forward
then sends whatever port1 receives out of port0 and vice versa, so the seeded frames loop
p1 -> switch -> p2 -> testpmd -> p1 ... for ever. The forwarded rate is the rate at which the
switch delivers frames to testpmd: the sum over both testpmd ports of RX packets, per second.

Every process we start gets its own session (process group); its pid is appended to
WORK/pids so the shell wrapper can kill it by id if we die.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

MAC0 = "02:00:00:00:0a:01"  # testpmd port0, attached to switch port p1
MAC1 = "02:00:00:00:0a:02"  # testpmd port1, attached to switch port p2
OVS_SOCKET_MEM_MB = 512
TESTPMD_MEM_MB = 128

FLOWGEN = ["--forward-mode=flowgen", "--flowgen-flows=1000", "--txpkts=64"]
CASES = {
    # name: (table label, rules, extra testpmd args, testpmd start command)
    # Closed loop: 2 x 32 x 32 seeded frames loop through io forward (peer.md's scenario).
    "p2p": ("loop, p2p rules, 1 flow", "p2p", [], "start tx_first 32"),
    "normal": ("loop, NORMAL, 1 flow", "normal", [], "start tx_first 32"),
    # Open loop: testpmd flowgen sends 1000 flows (dst IP varies) on both ports as fast as it
    # can and drops what it receives. No NORMAL variant: flowgen (DPDK 22.11) sends the same
    # fixed source MAC out of both ports, so MAC learning would see a move on every batch.
    "p2p-1k": ("flowgen, p2p rules, 1000 flows", "p2p", FLOWGEN, "start"),
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Fail(Exception):
    pass


class Env:
    """Work directory bookkeeping shared with the shell wrapper's trap."""

    def __init__(self, work):
        self.work = work
        self.procs = []  # (name, Popen)
        self.prefixes = []
        self.netns = []

    def _append(self, fname, value):
        with open(os.path.join(self.work, fname), "a") as f:
            f.write(f"{value}\n")

    def spawn(self, name, argv, env=None, stdin=None):
        out = open(os.path.join(self.work, f"{name}.log"), "ab")
        p = subprocess.Popen(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        out.close()
        self._append("pids", p.pid)
        self.procs.append((name, p))
        return p

    def kill(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log(f"warning: pid {p.pid} did not die")
        if p.stdin:
            try:
                p.stdin.close()
            except OSError:
                pass
        self.procs = [(n, q) for (n, q) in self.procs if q is not p]

    def add_prefix(self, prefix):
        self._append("prefixes", prefix)
        self.prefixes.append(prefix)

    def add_netns(self, name):
        run(["ip", "netns", "add", name])
        self._append("netns", name)
        self.netns.append(name)

    def cleanup(self):
        for _, p in reversed(list(self.procs)):
            self.kill(p)
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, timeout=10)
        self.netns = []
        for prefix in self.prefixes:
            shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
        self.prefixes = []


def run(argv, timeout=20, env=None, check=True):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Fail(f"timed out after {timeout}s: {' '.join(argv)}")
    if check and r.returncode != 0:
        raise Fail(f"failed ({r.returncode}): {' '.join(argv)}\n{r.stdout}{r.stderr}")
    return r.stdout


def wait_until(what, secs, f, step=0.2):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        v = f()
        if v:
            return v
        time.sleep(step)
    raise Fail(f"timed out ({secs}s) waiting for {what}")


def loadavg1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def proc_status(pid, keys=("VmRSS", "HugetlbPages")):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0])  # kB
    except OSError:
        pass
    return out


def cpu_ghz():
    """The TSC frequency: the kernel's `tsc: Detected N MHz` (tsc_known_freq on this VM kind)
    through /proc/cpuinfo's `cpu MHz` of CPU1 (the PMD's CPU)."""
    mhz = None
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("processor"):
                cpu = int(line.split(":")[1])
            elif line.startswith("cpu MHz") and (mhz is None or cpu == 1):
                mhz = float(line.split(":")[1])
    if not mhz:
        raise Fail("no 'cpu MHz' in /proc/cpuinfo")
    return mhz / 1000.0


# ---------------------------------------------------------------------------------------------
# testpmd


class Testpmd:
    def __init__(self, env, tag, socks, huge, extra_args=()):
        self.env = env
        self.prefix = f"vswcmp{os.getpid()}{tag}"
        env.add_prefix(self.prefix)
        for s in socks:
            try:
                os.unlink(s)
            except FileNotFoundError:
                pass
        argv = ["timeout", "-k", "5", "3600", "dpdk-testpmd", "--lcores", "0@0,1@0", "--no-pci",
                f"--file-prefix={self.prefix}", "--log-level=lib.eal:error", "--iova-mode=va"]
        if huge:
            argv += ["-m", str(TESTPMD_MEM_MB), "--single-file-segments"]
        else:
            argv += ["--no-huge", "-m", "256"]
        for i, (s, mac) in enumerate(zip(socks, (MAC0, MAC1))):
            argv += ["--vdev", f"net_virtio_user{i},path={s},server=1,queue_size=1024,mac={mac}"]
        argv += ["--", "-i", "--nb-cores=1", "--forward-mode=io",
                 f"--eth-peer=0,{MAC1}", f"--eth-peer=1,{MAC0}", *extra_args]
        # (a later --forward-mode in extra_args wins)
        self.p = env.spawn(f"testpmd-{tag}", argv, stdin=subprocess.PIPE)
        self.sock = None
        self.tpath = os.path.join("/var/run/dpdk", self.prefix, "dpdk_telemetry.v2")
        # In server mode virtio_user blocks in accept() for its first client while EAL probes
        # the vdevs, one after the other: the switch must connect before testpmd is ready.
        wait_until("testpmd's first vhost-user socket", 30,
                   lambda: self._alive() and os.path.exists(socks[0]))

    def wait_ready(self):
        """Both vdevs probed (the switch connected to both) and the telemetry socket up."""
        wait_until("testpmd's telemetry socket (the switch connecting to both ports)", 60,
                   lambda: self._alive() and os.path.exists(self.tpath))

    def _alive(self):
        if self.p.poll() is not None:
            raise Fail(f"testpmd exited ({self.p.returncode}); see "
                       f"{self.env.work}/testpmd-*.log")
        return True

    def cmd(self, line):
        self._alive()
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def telemetry(self, query):
        try:
            if self.sock is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.settimeout(5)
                s.connect(self.tpath)
                s.recv(65536)  # banner
                self.sock = s
            self.sock.send(query.encode())
            return json.loads(self.sock.recv(1 << 20).decode())
        except (OSError, ValueError) as e:
            if self.sock:
                self.sock.close()
                self.sock = None
            time.sleep(0.5)
            self._alive()
            raise Fail(f"testpmd telemetry {query}: {e}")

    def stats(self):
        """(rx, tx) summed over ports 0 and 1, and a monotonic timestamp."""
        rx = tx = 0
        t = time.monotonic()
        for port in (0, 1):
            st = self.telemetry(f"/ethdev/stats,{port}")["/ethdev/stats"]
            rx += st["ipackets"]
            tx += st["opackets"]
        return rx, tx, t

    def links_up(self):
        for port in (0, 1):
            st = self.telemetry(f"/ethdev/link_status,{port}")["/ethdev/link_status"]
            if st.get("status") != "UP":
                return False
        return True

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        try:
            self.cmd("stop")
            self.cmd("quit")
            self.p.wait(timeout=5)
        except (Fail, OSError, subprocess.TimeoutExpired):
            pass
        self.env.kill(self.p)
        shutil.rmtree(os.path.join("/var/run/dpdk", self.prefix), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# switches


class Vswitch:
    name = "vswitch"

    def __init__(self, env, bindir, tag, socks):
        self.env = env
        self.bindir = bindir
        self.dir = os.path.join(env.work, f"vsw{tag}")
        os.makedirs(self.dir)
        self.ctl_sock = os.path.join(self.dir, "ctl.sock")
        self.pidfile = os.path.join(self.dir, "vswitchd.pid")
        self.ns = f"vswcmp{os.getpid()}v{tag}"
        env.add_netns(self.ns)
        self.p = env.spawn(f"vswitchd-{tag}", [
            "ip", "netns", "exec", self.ns,
            os.path.join(bindir, "vswitchd"), "--socket", self.ctl_sock,
            "--state", os.path.join(self.dir, "state.json"), "--pidfile", self.pidfile,
            "--pmd-cores", "1", "--no-idle-backoff"])
        wait_until("vswitchd's socket", 20, lambda: self._alive() and os.path.exists(self.ctl_sock))
        self.ctl("add-br", "br0")
        self.ctl("add-port", "br0", "p1", "type=vhost-user", f"path={socks[0]}")
        self.ctl("add-port", "br0", "p2", "type=vhost-user", f"path={socks[1]}")

    def _alive(self):
        if self.p.poll() is not None:
            raise Fail(f"vswitchd exited ({self.p.returncode}); see {self.env.work}/vswitchd-*.log")
        return True

    def ctl(self, *args, json_out=False):
        argv = [os.path.join(self.bindir, "vswitchctl"), "--socket", self.ctl_sock]
        if json_out:
            argv += ["--format", "json"]
        out = run(argv + list(args))
        return json.loads(out) if json_out else out

    def set_case(self, case):
        self.ctl("del-flows", "br0")
        if case == "p2p":
            self.ctl("add-flow", "br0", "in_port=p1,actions=output:p2")
            self.ctl("add-flow", "br0", "in_port=p2,actions=output:p1")
        # no rules: NORMAL

    def connected(self):
        return self.ctl("show").count("connected=yes") >= 2

    def pmd_snapshot(self):
        v = self.ctl("pmd-stats", json_out=True)
        rows = v if isinstance(v, list) else v.get("pmds", [])
        rows = [r for r in rows if r.get("core") == 1] or rows
        return {k: sum(r.get(k, 0) for r in rows) for k in ("packets", "busy_ns", "idle_ns")}

    def pmd_begin(self):
        self._t0 = self.pmd_snapshot()

    def pmd_end(self, ghz):
        t1 = self.pmd_snapshot()
        d = {k: t1[k] - self._t0[k] for k in t1}
        total = d["busy_ns"] + d["idle_ns"]
        return {
            "switch_pkts": d["packets"],
            "cyc_per_pkt": d["busy_ns"] * ghz / d["packets"] if d["packets"] else None,
            "idle_pct": 100.0 * d["idle_ns"] / total if total else None,
        }

    def pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return self.p.pid

    def fdb(self):
        try:
            return self.ctl("fdb-show", "br0")
        except Fail as e:
            return str(e)

    def port_summary(self):
        try:
            ports = self.ctl("dump-ports", "br0", json_out=True)
            return {p["name"]: {k: p[k] for k in ("rx_packets", "tx_packets", "tx_dropped")}
                    | {"drops": p.get("drops", {})} for p in ports}
        except Fail:
            return {}

    def stop(self):
        self.env.kill(self.p)


class Ovs:
    name = "OVS 3.1"
    VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"

    def __init__(self, env, tag, socks):
        self.env = env
        self.dir = os.path.join(env.work, f"ovs{tag}")
        d = self.dir
        for sub in ("run", "db", "log", "etc"):
            os.makedirs(os.path.join(d, sub))
        self.oenv = dict(os.environ, OVS_RUNDIR=f"{d}/run", OVS_DBDIR=f"{d}/db",
                         OVS_LOGDIR=f"{d}/log", OVS_SYSCONFDIR=f"{d}/etc",
                         OVS_PKGDATADIR="/usr/share/openvswitch")
        self.db = f"unix:{d}/run/db.sock"
        self.ctl_path = f"{d}/run/ovs-vswitchd.ctl"
        self.prefix = f"vswcmp{os.getpid()}o{tag}"
        env.add_prefix(self.prefix)
        run(["ovsdb-tool", "create", f"{d}/db/conf.db", "/usr/share/openvswitch/vswitch.ovsschema"],
            env=self.oenv)
        self.dbp = env.spawn(f"ovsdb-server-{tag}", [
            "ovsdb-server", f"{d}/db/conf.db", f"--remote=punix:{d}/run/db.sock",
            f"--pidfile={d}/run/ovsdb-server.pid", f"--unixctl={d}/run/ovsdb-server.ctl",
            f"--log-file={d}/log/ovsdb-server.log"], env=self.oenv)
        wait_until("ovsdb-server's socket", 20,
                   lambda: self._alive(self.dbp) and os.path.exists(f"{d}/run/db.sock"))
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   "other_config:dpdk-init=true",
                   f'other_config:dpdk-extra="--no-pci --file-prefix={self.prefix} --iova-mode=va"',
                   f"other_config:dpdk-socket-mem={OVS_SOCKET_MEM_MB}",
                   "other_config:dpdk-lcore-mask=0x1",
                   "other_config:pmd-cpu-mask=0x2")
        self.ns = f"vswcmp{os.getpid()}o{tag}"
        env.add_netns(self.ns)
        self.p = env.spawn(f"ovs-vswitchd-{tag}", [
            "ip", "netns", "exec", self.ns, self.VSWITCHD, self.db,
            f"--pidfile={d}/run/ovs-vswitchd.pid", f"--unixctl={self.ctl_path}",
            f"--log-file={d}/log/ovs-vswitchd.log"], env=self.oenv)
        wait_until("ovs-vswitchd's control socket", 60,
                   lambda: self._alive(self.p) and os.path.exists(self.ctl_path))
        # DPDK initialised (dpdk_initialized=true) before we add DPDK ports.
        wait_until("OVS DPDK initialisation", 60, lambda: self._alive(self.p) and self.vsctl(
            "get", "Open_vSwitch", ".", "dpdk_initialized").strip() == "true")
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   timeout=60)
        for i, s in enumerate(socks):
            self.vsctl("add-port", "br0", f"p{i + 1}", "--", "set", "Interface", f"p{i + 1}",
                       "type=dpdkvhostuserclient", f"options:vhost-server-path={s}",
                       f"ofport_request={i + 1}", timeout=60)

    def _alive(self, p):
        if p.poll() is not None:
            raise Fail(f"an OVS process exited ({p.returncode}); see {self.dir}/log")
        return True

    def vsctl(self, *args, timeout=20):
        return run(["ovs-vsctl", f"--db={self.db}", f"--timeout={timeout}", *args],
                   env=self.oenv, timeout=timeout + 5)

    def ofctl(self, *args):
        return run(["ovs-ofctl", *args], env=self.oenv)

    def appctl(self, *args):
        return run(["ovs-appctl", "-t", self.ctl_path, "--timeout=10", *args], env=self.oenv,
                   timeout=15)

    def set_case(self, case):
        self.ofctl("del-flows", "br0")
        if case == "p2p":
            self.ofctl("add-flow", "br0", "in_port=1,actions=output:2")
            self.ofctl("add-flow", "br0", "in_port=2,actions=output:1")
        else:
            self.ofctl("add-flow", "br0", "actions=NORMAL")

    def connected(self):
        for port in ("p1", "p2"):
            st = self.vsctl("get", "Interface", port, "link_state").strip()
            if st != "up":
                return False
        return True

    def pmd_begin(self):
        self.appctl("dpif-netdev/pmd-stats-clear")

    def pmd_end(self, ghz):
        out = self.appctl("dpif-netdev/pmd-stats-show")
        # The section of the PMD on core 1 (not the "main thread" section).
        m = re.search(r"pmd thread numa_id \S+ core_id 1:\n(.*?)(?=\n\S|\Z)", out, re.S)
        if not m:
            raise Fail(f"no PMD on core 1 in pmd-stats-show:\n{out}")
        sec = m.group(1)

        def num(pat):
            mm = re.search(pat, sec)
            return float(mm.group(1)) if mm else None

        pkts = num(r"packets received:\s+(\d+)")
        idle = num(r"idle cycles:\s+(\d+)")
        busy = num(r"processing cycles:\s+(\d+)")
        cpp = num(r"avg processing cycles per packet:\s+([\d.]+)")
        total = (idle or 0) + (busy or 0)
        return {
            "switch_pkts": int(pkts or 0),
            "cyc_per_pkt": cpp if pkts else None,
            "idle_pct": 100.0 * idle / total if total else None,
            "pmd_total_cycles": total,
        }

    def pid(self):
        try:
            with open(f"{self.dir}/run/ovs-vswitchd.pid") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return self.p.pid

    def fdb(self):
        try:
            return self.appctl("fdb/show", "br0")
        except Fail as e:
            return str(e)

    def port_summary(self):
        out = {}
        for port in ("p1", "p2"):
            try:
                s = self.vsctl("get", "Interface", port, "statistics").strip()
                kv = dict(re.findall(r'"?([\w-]+)"?=(\d+)', s))
                out[port] = {k: int(kv.get(k, 0)) for k in ("rx_packets", "tx_packets",
                                                              "tx_dropped")}
            except Fail:
                pass
        return out

    def stop(self):
        try:
            run(["ovs-appctl", "-t", self.ctl_path, "--timeout=5", "exit"], env=self.oenv,
                timeout=10, check=False)
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.env.kill(self.p)
        self.env.kill(self.dbp)
        shutil.rmtree(os.path.join("/var/run/dpdk", self.prefix), ignore_errors=True)


# ---------------------------------------------------------------------------------------------


def measure(env, sw, tp, case, seconds, ghz, warm):
    """One window on a running switch and testpmd: returns a result dict."""
    _, rules, _, start = CASES[case]
    sw.set_case(rules)
    wait_until(f"{sw.name} ports connected", 30, sw.connected)
    wait_until("testpmd links up", 30, tp.links_up)
    tp.cmd(start)
    rx0 = tp.stats()[0]
    wait_until("frames looping through the switch", 15, lambda: tp.stats()[0] > rx0 + 10000)
    time.sleep(warm)
    load = loadavg1()
    sw.pmd_begin()
    rx_a, tx_a, t_a = tp.stats()
    time.sleep(seconds)
    rx_b, tx_b, t_b = tp.stats()
    pmd = sw.pmd_end(ghz)
    dt = t_b - t_a
    tp.cmd("stop")
    res = {
        "switch": sw.name, "case": case, "load1": load, "seconds": dt,
        "mpps": (rx_b - rx_a) / dt / 1e6,
        "testpmd_tx_mpps": (tx_b - tx_a) / dt / 1e6,
        "switch_rx_mpps": pmd["switch_pkts"] / dt / 1e6,
        "cyc_per_pkt": pmd["cyc_per_pkt"], "idle_pct": pmd["idle_pct"],
    }
    if "pmd_total_cycles" in pmd:
        res["ovs_tsc_ghz"] = pmd["pmd_total_cycles"] / dt / 1e9
    return res


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def run_switch_round(env, args, kind, rnd, ghz, results, rss):
    socks = [os.path.join(env.work, f"{kind}{rnd}-{i}.sock") for i in (0, 1)]
    tag = f"{kind}{rnd}"
    sw = None
    tp = None
    try:
        for case in args.cases:
            # A fresh testpmd per case (its seeded frames are the whole load); the switch's
            # client ports reconnect to it by themselves.
            tp = Testpmd(env, f"{tag}{args.cases.index(case)}", socks, args.huge, CASES[case][2])
            if sw is None:
                sw = Vswitch(env, args.bindir, tag, socks) if kind == "v" else Ovs(env, tag, socks)
            tp.wait_ready()
            r = measure(env, sw, tp, case, args.seconds, ghz, args.warm)
            r["round"] = rnd
            pid = sw.pid()
            rss[sw.name] = proc_status(pid)
            r["ports"] = sw.port_summary()
            r["fdb"] = sw.fdb() if CASES[case][1] == "normal" else ""
            results.append(r)
            extra = f" (OVS TSC from PMD cycles: {r['ovs_tsc_ghz']:.3f} GHz)" \
                if "ovs_tsc_ghz" in r else ""
            log(f"round {rnd} {sw.name:8s} {case:7s}: {r['mpps']:.3f} Mpps forwarded "
                f"(testpmd tx {r['testpmd_tx_mpps']:.3f}, switch rx {r['switch_rx_mpps']:.3f}), "
                f"{fmt(r['cyc_per_pkt'], '.0f')} cycles/pkt, idle {fmt(r['idle_pct'], '.1f')} %, "
                f"load1 {r['load1']:.2f}{extra}")
            tp.stop()
            tp = None
    finally:
        if tp:
            tp.stop()
        if sw:
            sw.stop()
        for s in socks:
            try:
                os.unlink(s)
            except FileNotFoundError:
                pass


def table(results, args, ghz, rss):
    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    lines = []
    hdr = (f"{'scenario':31s} {'switch':8s} {'Mpps median [min-max]':24s} {'cyc/pkt':>8s} "
           f"{'idle %':>7s} {'load1':>6s} {'vsw/OVS Mpps':>12s} {'vsw/OVS cyc/pkt':>15s}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for case in args.cases:
        meds = {}
        rows = []
        for sw in ("vswitch", "OVS 3.1"):
            rs = [r for r in results if r["case"] == case and r["switch"] == sw]
            if not rs:
                continue
            mp = [r["mpps"] for r in rs]
            m = med(mp)
            c = med([r["cyc_per_pkt"] for r in rs])
            meds[sw] = (m, c)
            rows.append((sw, f"{m:.2f} [{min(mp):.2f}-{max(mp):.2f}]", c,
                         med([r["idle_pct"] for r in rs]), med([r["load1"] for r in rs]), len(rs)))
        for sw, mpps, c, idle, load, n in rows:
            ratio_m = ratio_c = ""
            if sw == "vswitch" and "OVS 3.1" in meds and meds["OVS 3.1"][0]:
                ratio_m = f"{meds['vswitch'][0] / meds['OVS 3.1'][0]:.2f}"
                if meds["vswitch"][1] and meds["OVS 3.1"][1]:
                    ratio_c = f"{meds['vswitch'][1] / meds['OVS 3.1'][1]:.2f}"
            scen = CASES[case][0]
            lines.append(f"{scen:31s} {sw:8s} {mpps:24s} {fmt(c, '8.0f')} {fmt(idle, '7.1f')} "
                         f"{fmt(load, '6.2f')} {ratio_m:>12s} {ratio_c:>15s}")
    lines.append("")
    n = len({r['round'] for r in results})
    lines.append(f"vhost-user <-> switch <-> vhost-user, 64 B frames; {n} round(s) x "
                 f"{args.seconds:g} s windows, switches interleaved; medians over rounds. "
                 "Mpps = frames the switch delivered to testpmd (sum of RX over both testpmd ports "
                 "per second, both directions).")
    lines.append(f"cycles/packet: OVS = pmd-stats-show 'avg processing cycles per packet' (TSC "
                 f"cycles); vswitch = busy_ns x {ghz:.3f} GHz / packets (TSC frequency from "
                 "/proc/cpuinfo 'cpu MHz'). idle % = idle / (idle + busy) of the PMD on CPU1. "
                 "load1 = median 1-min load average at window start.")
    tsc = [r["ovs_tsc_ghz"] for r in results if "ovs_tsc_ghz" in r]
    if tsc:
        lines.append(f"cross-check: OVS PMD (idle + processing) cycles / window wall time = "
                     f"{statistics.median(tsc):.3f} GHz (median), the TSC rate OVS counts in.")
    for name, st in rss.items():
        extra = f"; plus hugepage socket-mem {OVS_SOCKET_MEM_MB} MiB reserved by DPDK" \
            if name == "OVS 3.1" else ""
        lines.append(f"memory {name}: VmRSS {st.get('VmRSS', 0) / 1024:.1f} MiB, HugetlbPages "
                     f"{st.get('HugetlbPages', 0) / 1024:.1f} MiB (mapped, incl. testpmd's "
                     f"guest memory){extra}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warm", type=float, default=2)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-huge", dest="huge", action="store_false")
    ap.add_argument("--cases", default="p2p,normal,p2p-1k")
    ap.add_argument("--switches", default="v,o")
    args = ap.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    for c in args.cases:
        if c not in CASES:
            sys.exit(f"unknown case {c!r} (known: {', '.join(CASES)})")
    switches = [s for s in args.switches.split(",") if s]
    if args.smoke:
        args.rounds, switches = 1, ["v"]
    env = Env(args.work)

    def on_term(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    ghz = cpu_ghz()
    log(f"CPU: {ghz:.3f} GHz TSC (cpu MHz), {os.cpu_count()} CPUs; testpmd on CPU0, "
        f"switch PMD on CPU1; {args.rounds} round(s) x {args.seconds:g} s; "
        f"testpmd hugepages: {'yes' if args.huge else 'no (--no-huge)'}")
    results, rss = [], {}
    rc = 0
    try:
        for rnd in range(1, args.rounds + 1):
            # Interleave, alternating which switch goes first.
            order = switches if rnd % 2 else list(reversed(switches))
            for kind in order:
                run_switch_round(env, args, kind, rnd, ghz, results, rss)
        print()
        print(table(results, args, ghz, rss))
        with open(os.path.join(args.work, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        if args.smoke and not all(r["mpps"] > 0 for r in results):
            log("SMOKE FAILED: a forwarded rate is 0")
            rc = 1
    except Fail as e:
        log(f"FAILED: {e}")
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        env.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
