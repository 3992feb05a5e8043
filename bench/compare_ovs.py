#!/usr/bin/env python3
"""Side-by-side benchmark: vswitch vs Open vSwitch 3.1 (DPDK build), vhost-user loop and AF_XDP.

Driven by bench/compare-ovs.sh (which installs packages, builds, reserves hugepages and cleans
up after us as a last resort). Python 3 standard library only.

vhost-user cases (p2p, normal, p2p-1k), one switch at a time:

    dpdk-testpmd (CPU0, io forward)              switch (PMD on CPU1)
      port0 net_virtio_user0 server=1  <-- sock0 -->  p1 (vhost-user client)
      port1 net_virtio_user1 server=1  <-- sock1 -->  p2 (vhost-user client)

testpmd is seeded with `start tx_first 32` (32 bursts of 32 txonly frames per port); io forward
then sends whatever port1 receives out of port0 and vice versa, so the seeded frames loop
p1 -> switch -> p2 -> testpmd -> p1 ... for ever. The forwarded rate is the rate at which the
switch delivers frames to testpmd: the sum over both testpmd ports of RX packets, per second.

AF_XDP cases (afxdp, afxdp-1k): a generator netns with veths g0, g1 whose peers s0, s1 are in
the switch's netns; the switch has two afxdp ports on s0, s1 (OVS: xdp-mode=native; vswitch:
its default best-effort, which picks native on veth) and the rule in_port=1 -> port 2.
vswitch-pktgen (AF_XDP too, `taskset -c 0`) sends flat out on g0 and counts what comes back on
g1: its rx_mpps, loss and latency percentiles are the figures; the switch PMD's cycles/packet
and idle share are taken over the window as in the vhost-user cases.

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
    # The p2p loop with egress QoS on both ports at a rate no port reaches (the cost of having
    # it): vswitch's scheduler (`set-qos max-rate=100Gbit`, default queues, classes from the
    # DSCP); OVS's egress-policer (srTCM, cir 12.5 GB/s), the only QoS its userspace ports have.
    "p2p-qos": ("loop, p2p rules + egress QoS, 1 flow", "p2p-qos", [], "start tx_first 32"),
    # p1 is a DPDK ethdev port (type=dpdk) instead of a vhost-user port: DPDK's vhost PMD
    # (net_vhost, client of testpmd's port0 socket) as the "NIC", p2 stays vhost-user.
    "dpdk": ("loop, dpdk port + vhost-user, p2p rules, 1 flow", "p2p", [], "start tx_first 32"),
    "dpdk-1k": ("flowgen, dpdk port + vhost-user, p2p rules, 1000 flows", "p2p", FLOWGEN,
                "start"),
}
DPDK_CASES = ("dpdk", "dpdk-1k")
# The EAL arguments both switches get for their DPDK ports (OVS: dpdk-extra).
DPDK_EXTRA = "--no-pci --iova-mode=va"
# Switch kinds: "v" vswitch with the defaults a user runs, "t" vswitch tuned (--no-idle-backoff),
# "m" vswitch with --metrics on this port (in its own netns) scraped every second, "o" OVS.
METRICS_PORT = 9108
# AF_XDP cases: vswitch-pktgen (generator netns, CPU0) -> veth g0/s0 -> switch (afxdp ports, PMD
# on CPU1) -> veth s1/g1 -> vswitch-pktgen; one direction, flat out, rule in_port=1 -> port 2.
# name: (table label, flows)
AFXDP_CASES = {
    "afxdp": ("AF_XDP veth, p2p rule, 1 flow", 1),
    "afxdp-1k": ("AF_XDP veth, p2p rule, 1k flows", 1000),
}
DEFAULT_CASES = "p2p,normal,p2p-1k,afxdp,afxdp-1k"


def case_label(case):
    return CASES[case][0] if case in CASES else AFXDP_CASES[case][0]


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

    def del_netns(self, name):
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL, timeout=10)
        self.netns = [n for n in self.netns if n != name]

    def finish(self, ok, keep):
        """Cleans up; removes the work directory after a good run unless asked to keep it."""
        self.cleanup()
        if ok and not keep:
            subprocess.run(["rm", "-rf", self.work])
        else:
            log(f"logs kept in {self.work}")

    def cleanup(self):
        for _, p in reversed(list(self.procs)):
            self.kill(p)
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, timeout=10)
        self.netns = []
        for prefix in self.prefixes:
            remove_dpdk_files(prefix)
        self.prefixes = []


def remove_dpdk_files(prefix):
    """A DPDK process's runtime dir and hugepage files (<hugetlbfs mount>/<prefix>map_*): a
    killed process leaves its hugepages allocated in the files until they are removed."""
    shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2:3] == ["hugetlbfs"]]
    for m in mounts:
        for name in os.listdir(m) if os.path.isdir(m) else []:
            if name.startswith(prefix + "map_"):
                try:
                    os.unlink(os.path.join(m, name))
                except OSError:
                    pass


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


def remove_files(paths):
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def vhost_ports(kind, socks, dpdk=False):
    """p1, p2, ... as vhost-user clients of testpmd's sockets (vswitch, or OVS: kind "o").
    dpdk: p1 is a type=dpdk port on DPDK's vhost PMD (a client of the same socket)."""
    if kind != "o":
        ports = [(f"p{i + 1}", ["type=vhost-user", f"path={s}"]) for i, s in enumerate(socks)]
        if dpdk:
            ports[0] = ("p1", ["type=dpdk", f"devargs=net_vhost0,iface={socks[0]},client=1"])
        return ports
    ports = [(f"p{i + 1}", ["type=dpdkvhostuserclient", f"options:vhost-server-path={s}"])
             for i, s in enumerate(socks)]
    if dpdk:
        ports[0] = ("p1", ["type=dpdk",
                           f'options:dpdk-devargs="net_vhost0,iface={socks[0]},client=1"'])
    return ports


def afxdp_ports(kind, ifaces, first=1):
    """AF_XDP ports on the kernel interfaces: vswitch names them p<first>, ...; OVS opens the
    interface named like the port."""
    if kind != "o":
        return [(f"p{first + i}", ["type=afxdp", f"iface={s}"]) for i, s in enumerate(ifaces)]
    return [(s, ["type=afxdp", "options:xdp-mode=native"]) for s in ifaces]


def pmd_tid(pid):
    """The thread id of the process's PMD thread (comm `pmd*`: vswitchd's `pmd0`, OVS's
    `pmd-c01/id:N`)."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().startswith("pmd"):
                    return int(tid)
    except OSError:
        pass
    return None


class UserShare:
    """The share of a PMD thread's time spent in user mode over a window, from `perf record -e
    cpu-clock -t TID` samples (each sample says whether the thread was in the kernel). The
    kernel's own utime/stime split is tick-sampled and rescaled over the thread's lifetime,
    which skews a window's delta; /proc/stat's per-CPU ticks proved as unreliable on this VM."""

    def __init__(self, env, pid, seconds, out):
        self.p = None
        self.out = out
        tid = pmd_tid(pid)
        if tid is None or not shutil.which("perf"):
            return
        self.p = env.spawn(os.path.basename(out), [
            "perf", "record", "-q", "-e", "cpu-clock", "-t", str(tid), "-o", out, "--",
            "sleep", f"{seconds:g}"])

    def result(self):
        """User share in % (None without perf), once the window is over."""
        if self.p is None:
            return None
        try:
            self.p.wait(timeout=30)
            text = run(["perf", "report", "-i", self.out, "--stdio", "-q", "--sort", "dso"],
                       timeout=60)
        except (Fail, subprocess.TimeoutExpired):
            return None
        # BPF programs (the XDP redirect) run in the kernel too.
        kernel = sum(float(m) for m in re.findall(r"^\s*([\d.]+)%\s+(?:\[kernel|bpf_)",
                                                  text, re.M))
        total = sum(float(m) for m in re.findall(r"^\s*([\d.]+)%", text, re.M))
        return 100.0 * (total - kernel) / total if total else None


def user_split(share_pct, dt, pkts, ghz):
    """Userspace cycles per packet: the user share x the window's TSC cycles / packets (the PMD
    thread runs the whole window)."""
    if share_pct is None or not pkts:
        return {"user_cyc_per_pkt": None, "user_pct": share_pct}
    return {"user_cyc_per_pkt": share_pct / 100.0 * dt * ghz * 1e9 / pkts,
            "user_pct": share_pct}


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
        remove_files(socks)
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
        remove_dpdk_files(self.prefix)


# ---------------------------------------------------------------------------------------------
# switches


class Vswitch:
    name = "vswitch"

    def __init__(self, env, bindir, tag, ports, ns=None, kind="v"):
        """ports: [(name, [option, ...])] for `vswitchctl add-port br0 NAME OPTION...`;
        ns: an existing network namespace to run in (else a fresh one); kind "v": the default
        flags, "t": tuned (--no-idle-backoff), "m": default flags, serving --metrics scraped
        every second (curl, as a Prometheus server would)."""
        metrics = kind == "m"
        self.env = env
        self.name = {"m": "vswitch+metrics", "t": "vswitch tuned"}.get(kind, "vswitch")
        self.scraper = None
        self.bindir = bindir
        self.dir = os.path.join(env.work, f"vsw{tag}")
        os.makedirs(self.dir)
        self.ctl_sock = os.path.join(self.dir, "ctl.sock")
        self.pidfile = os.path.join(self.dir, "vswitchd.pid")
        self.ports = [name for name, _ in ports]
        self.afxdp = any("type=afxdp" in opts for _, opts in ports)
        self.dpdk = any("type=dpdk" in opts for _, opts in ports)
        if ns is None:
            ns = f"vswcmp{os.getpid()}v{tag}"
            env.add_netns(ns)
        self.ns = ns
        self.p = env.spawn(f"vswitchd-{tag}", [
            "ip", "netns", "exec", self.ns,
            os.path.join(bindir, "vswitchd"), "--socket", self.ctl_sock,
            "--state", os.path.join(self.dir, "state.json"), "--pidfile", self.pidfile,
            "--pmd-cores", "1", *(["--no-idle-backoff"] if kind == "t" else []),
            f"--dpdk-eal={DPDK_EXTRA}",
            *([f"--metrics=127.0.0.1:{METRICS_PORT}"] if metrics else [])])
        wait_until("vswitchd's socket", 20, lambda: self._alive() and os.path.exists(self.ctl_sock))
        if metrics:
            url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
            self.scraper = env.spawn(f"scraper-{tag}", [
                "ip", "netns", "exec", self.ns, "sh", "-c",
                f"while sleep 1; do curl -s -o /dev/null {url}; done"])
        self.ctl("add-br", "br0")
        for name, opts in ports:
            self.ctl("add-port", "br0", name, *opts)

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
        for p in self.ports:
            self.ctl("clear-qos", p)
        if case in ("p2p", "p2p-1way", "p2p-qos"):
            self.ctl("add-flow", "br0", "in_port=p1,actions=output:p2")
        if case in ("p2p", "p2p-qos"):
            self.ctl("add-flow", "br0", "in_port=p2,actions=output:p1")
        if case == "p2p-qos":
            for p in self.ports:
                self.ctl("set-qos", p, "max-rate=100Gbit")
        # no rules: NORMAL

    def connected(self):
        if self.afxdp:  # add-port fails if the socket cannot be bound: opened = ready
            return self.ctl("show").count("xdp_mode=") >= 2
        if self.dpdk:  # the vhost-user port connected, the DPDK port's link up
            show = self.ctl("show")
            return show.count("connected=yes") >= 1 and show.count("link: up") >= 2
        return self.ctl("show").count("connected=yes") >= 2

    def xdp_modes(self):
        return ",".join(sorted(set(re.findall(r"xdp_mode=(\w+)", self.ctl("show")))))

    def pmd_packets(self):
        return self.pmd_snapshot()["packets"]

    def port_counters(self):
        """AF_XDP socket counters of each port from `show` (xsk_rx_dropped, xsk_rx_ring_full,
        xsk_fill_ring_empty, ...), as {"p1.xsk_rx_dropped": n, ...}."""
        out, port = {}, None
        for line in self.ctl("show").splitlines():
            m = re.match(r"\s*Port (\S+)", line)
            if m:
                port = m.group(1)
            for k, v in re.findall(r"(xsk_\w+|xdp_\w+)=(\d+)", line):
                out[f"{port}.{k}"] = int(v)
        return out

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
            return {p["name"]: {k: p.get(k, 0) for k in ("rx_packets", "rx_dropped",
                                                         "tx_packets", "tx_dropped")}
                    | {"drops": p.get("drops", {})} for p in ports}
        except Fail:
            return {}

    def stop(self):
        if self.scraper:
            self.env.kill(self.scraper)
        self.env.kill(self.p)


class Ovs:
    name = "OVS 3.1"
    VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"

    def __init__(self, env, tag, ports, ns=None, dpdk=True):
        """ports: [(name, [Interface column=value, ...])], ofport 1, 2, ... in that order;
        ns: an existing network namespace to run in (else a fresh one); dpdk: initialise DPDK
        (hugepage socket memory; vhost-user ports need it, AF_XDP ports do not)."""
        self.env = env
        self.ports = [name for name, _ in ports]
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
        if dpdk:
            self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                       "other_config:dpdk-init=true",
                       f'other_config:dpdk-extra="{DPDK_EXTRA} --file-prefix={self.prefix}"',
                       f"other_config:dpdk-socket-mem={OVS_SOCKET_MEM_MB}",
                       "other_config:dpdk-lcore-mask=0x1")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x2")
        if ns is None:
            ns = f"vswcmp{os.getpid()}o{tag}"
            env.add_netns(ns)
        self.ns = ns
        self.p = env.spawn(f"ovs-vswitchd-{tag}", [
            "ip", "netns", "exec", self.ns, self.VSWITCHD, self.db,
            f"--pidfile={d}/run/ovs-vswitchd.pid", f"--unixctl={self.ctl_path}",
            f"--log-file={d}/log/ovs-vswitchd.log"], env=self.oenv)
        wait_until("ovs-vswitchd's control socket", 60,
                   lambda: self._alive(self.p) and os.path.exists(self.ctl_path))
        # DPDK initialised (dpdk_initialized=true) before we add DPDK ports.
        if dpdk:
            wait_until("OVS DPDK initialisation", 60, lambda: self._alive(self.p) and self.vsctl(
                "get", "Open_vSwitch", ".", "dpdk_initialized").strip() == "true")
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   timeout=60)
        for i, (name, opts) in enumerate(ports):
            self.vsctl("add-port", "br0", name, "--", "set", "Interface", name, *opts,
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
        for p in self.ports:
            self.vsctl("clear", "Port", p, "qos")
        self.vsctl("--all", "destroy", "QoS")
        if case in ("p2p", "p2p-1way", "p2p-qos"):
            self.ofctl("add-flow", "br0", "in_port=1,actions=output:2")
        if case in ("p2p", "p2p-qos"):
            self.ofctl("add-flow", "br0", "in_port=2,actions=output:1")
        if case == "p2p-qos":
            for p in self.ports:
                self.vsctl("set", "Port", p, "qos=@q", "--", "--id=@q", "create", "QoS",
                           "type=egress-policer", "other-config:cir=12500000000",
                           "other-config:cbs=1048576")
        elif case == "normal":
            self.ofctl("add-flow", "br0", "actions=NORMAL")

    def connected(self):
        for port in self.ports:
            err = self.vsctl("get", "Interface", port, "error").strip()
            if err not in ("[]", '""'):
                raise Fail(f"OVS port {port}: {err}; see {self.dir}/log/ovs-vswitchd.log")
            st = self.vsctl("get", "Interface", port, "link_state").strip()
            if st != "up":
                return False
        return True

    def xdp_modes(self):
        modes = set()
        for port in self.ports:
            st = self.vsctl("get", "Interface", port, "status").strip()
            m = re.search(r'xdp-mode(?:_in_use)?"?="?([\w-]+)', st)
            if not m:  # else the log: "PORT: Setting XDP mode to native."
                try:
                    with open(f"{self.dir}/log/ovs-vswitchd.log", errors="replace") as f:
                        m = list(re.finditer(rf"{re.escape(port)}: Setting XDP mode to ([\w-]+)",
                                             f.read()))[-1:] or [None]
                        m = m[0]
                except OSError:
                    m = None
            modes.add(m.group(1) if m else "?")
        return ",".join(sorted(modes))

    def port_counters(self):
        """Each Interface's statistics column (OVS afxdp adds the XSK socket's counters)."""
        out = {}
        for i, port in enumerate(self.ports):
            try:
                st = self.vsctl("get", "Interface", port, "statistics").strip()
            except Fail:
                continue
            for k, v in re.findall(r'"?([\w-]+)"?=(\d+)', st):
                out[f"p{i + 1}.{k}"] = int(v)
        return out

    def pmd_packets(self):
        out = self.appctl("dpif-netdev/pmd-stats-show")
        m = re.search(r"pmd thread numa_id \S+ core_id 1:\n(.*?)(?=\n\S|\Z)", out, re.S)
        mm = re.search(r"packets received:\s+(\d+)", m.group(1)) if m else None
        return int(mm.group(1)) if mm else 0

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
        for port in self.ports:
            try:
                s = self.vsctl("get", "Interface", port, "statistics").strip()
                kv = dict(re.findall(r'"?([\w-]+)"?=(\d+)', s))
                out[port] = {k: int(kv.get(k, 0)) for k in ("rx_packets", "rx_dropped",
                                                              "tx_packets", "tx_dropped")}
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


class VethRig:
    """The AF_XDP topology: a generator netns with veths g0, g1, their peers s0, s1 in the
    switch's netns. Both namespaces are ours (unique names, recorded for the shell trap);
    deleting them deletes the veths."""

    def __init__(self, env, tag):
        self.env = env
        pid = os.getpid()
        self.gen_ns = f"vswcmp{pid}g{tag}"
        self.sw_ns = f"vswcmp{pid}s{tag}"
        # Interface names live in these fresh namespaces; still unique (<= 15 chars).
        short = f"vx{pid}{tag[:1]}{int(tag[1:]) % 100}"
        self.g = [f"{short}g0", f"{short}g1"]
        self.s = [f"{short}s0", f"{short}s1"]
        for ns in (self.gen_ns, self.sw_ns):
            env.add_netns(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for g, sw in zip(self.g, self.s):
            run(["ip", "link", "add", g, "netns", self.gen_ns, "type", "veth",
                 "peer", "name", sw, "netns", self.sw_ns])
            for ns, ifc in ((self.gen_ns, g), (self.sw_ns, sw)):
                # No IPv6 (router solicitations would show up as foreign frames).
                run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                     f"net.ipv6.conf.{ifc}.disable_ipv6=1"], check=False)
                run(["ip", "-n", ns, "link", "set", ifc, "up"])

    def pktgen(self, bindir, flows, warm, seconds):
        """vswitch-pktgen's command line: flat out on CPU0 from g0, counting what comes back on
        g1, for warm + seconds (killed 40 s after that)."""
        return [
            "timeout", "-k", "5", str(int(warm + seconds + 40)),
            "ip", "netns", "exec", self.gen_ns, "taskset", "-c", "0",
            os.path.join(bindir, "vswitch-pktgen"), "--tx-iface", self.g[0],
            "--rx-iface", self.g[1], "--flows", str(flows), "--warmup", f"{warm:g}",
            "--seconds", f"{seconds:g}"]

    def delete(self):
        for ns in (self.gen_ns, self.sw_ns):
            self.env.del_netns(ns)

    def counters(self):
        """Kernel counters of the four veths: `ethtool -S` (veth per-queue XDP stats) and the
        link's RX/TX dropped, as {"s0.rx_queue_0_xdp_drops": n, ...}."""
        out = {}
        for i, (ns, ifc) in enumerate([(self.gen_ns, g) for g in self.g]
                                      + [(self.sw_ns, s) for s in self.s]):
            short = ("g0", "g1", "s0", "s1")[i]
            try:
                text = run(["ip", "netns", "exec", ns, "ethtool", "-S", ifc], check=False)
                for k, v in re.findall(r"^\s+(\w+): (\d+)$", text, re.M):
                    if k != "peer_ifindex":
                        out[f"{short}.{k}"] = int(v)
                link = json.loads(run(["ip", "-n", ns, "-j", "-s", "link", "show", ifc]))[0]
                for d in ("rx", "tx"):
                    st = link.get("stats64", {}).get(d, {})
                    for k in ("packets", "dropped"):
                        out[f"{short}.{d}_{k}"] = int(st.get(k, 0))
            except (Fail, ValueError, IndexError, OSError):
                pass
        return out


def measure_afxdp(env, sw, rig, tag, case, args, ghz):
    """One window: vswitch-pktgen flat out from g0, back on g1, through the switch."""
    flows = AFXDP_CASES[case][1]
    sw.set_case("p2p-1way")
    wait_until(f"{sw.name} AF_XDP ports up", 30, sw.connected)
    warm, seconds = args.warm, args.seconds
    # pktgen counts from its start + warm for seconds + 1 s: the switch's PMD window (the same
    # warm-up after frames first reach the switch, then `seconds`) lies inside it.
    kc0 = rig.counters()
    sc0 = sw.port_counters()
    name = f"pktgen-{tag}-{case}"
    logf = os.path.join(env.work, f"{name}.log")
    p = env.spawn(name, rig.pktgen(args.bindir, flows, warm, seconds + 1))

    def pktgen_alive():
        if p.poll() is not None:
            with open(logf, errors="replace") as f:
                raise Fail(f"vswitch-pktgen exited ({p.returncode}) early:\n{f.read()[-2000:]}")
        return True

    base = sw.pmd_packets()
    wait_until("frames reaching the switch", 20,
               lambda: pktgen_alive() and sw.pmd_packets() > base + 1000)
    time.sleep(warm)
    pktgen_alive()
    load = loadavg1()
    sw.pmd_begin()
    t_a = time.monotonic()
    user = UserShare(env, sw.pid(), seconds, os.path.join(env.work, f"perf-{tag}-{case}.data"))
    time.sleep(seconds)
    pmd = sw.pmd_end(ghz)
    dt = time.monotonic() - t_a
    try:
        p.wait(timeout=warm + seconds + 30)
    except subprocess.TimeoutExpired:
        raise Fail("vswitch-pktgen did not finish")
    env.kill(p)
    kc1 = rig.counters()
    sc1 = sw.port_counters()
    sdelta = {k: sc1[k] - sc0.get(k, 0) for k in sc1 if sc1[k] != sc0.get(k, 0)}
    # Where frames were lost, over the whole pktgen run (kernel counters that moved).
    kdelta = {k: kc1[k] - kc0.get(k, 0) for k in kc1 if kc1[k] != kc0.get(k, 0)}
    with open(logf, errors="replace") as f:
        text = f.read()
    m = re.findall(r"PKTGEN_RESULT (.*)", text)
    # exit 3 = nothing came back: a result (0 Mpps), not an error of the harness.
    if p.returncode not in (0, 3) or not m:
        raise Fail(f"vswitch-pktgen failed ({p.returncode}):\n{text[-2000:]}")
    kv = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m[-1])}
    res = {
        "switch": sw.name, "case": case, "load1": load, "seconds": dt,
        "mpps": kv["rx_mpps"], "gen_tx_mpps": kv["tx_mpps"], "loss_pct": kv["loss_pct"],
        # (no latency without a received frame)
        "p50_us": kv["p50_us"] if kv["received"] else None,
        "p99_us": kv["p99_us"] if kv["received"] else None,
        "switch_rx_mpps": pmd["switch_pkts"] / dt / 1e6,
        "cyc_per_pkt": pmd["cyc_per_pkt"], "idle_pct": pmd["idle_pct"],
        **user_split(user.result(), dt, pmd["switch_pkts"], ghz),
        "pktgen": kv, "veth_counters": kdelta, "switch_port_counters": sdelta,
    }
    if "pmd_total_cycles" in pmd:
        res["ovs_tsc_ghz"] = pmd["pmd_total_cycles"] / dt / 1e9
    return res


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def run_switch_round(env, args, kind, rnd, ghz, results, rss):
    vcases = [c for c in args.cases if c in CASES and c not in DPDK_CASES]
    dcases = [c for c in args.cases if c in DPDK_CASES]
    xcases = [c for c in args.cases if c in AFXDP_CASES]
    if vcases:
        run_vhost_round(env, args, kind, rnd, ghz, results, rss, vcases)
    if dcases:
        run_vhost_round(env, args, kind, rnd, ghz, results, rss, dcases, dpdk=True)
    if xcases:
        run_afxdp_round(env, args, kind, rnd, ghz, results, rss, xcases)


def run_afxdp_round(env, args, kind, rnd, ghz, results, rss, cases):
    """One switch instance with two AF_XDP ports on s0, s1; one pktgen run per case."""
    tag = f"{kind}{rnd}"
    rig = VethRig(env, tag)
    sw = None
    try:
        ports = afxdp_ports(kind, rig.s)
        if kind != "o":
            sw = Vswitch(env, args.bindir, f"{tag}x", ports, ns=rig.sw_ns, kind=kind)
        else:
            sw = Ovs(env, f"{tag}x", ports, ns=rig.sw_ns)
        for case in cases:
            r = measure_afxdp(env, sw, rig, tag, case, args, ghz)
            r["round"] = rnd
            r["xdp_mode"] = sw.xdp_modes()
            rss[f"{sw.name} (AF_XDP)"] = proc_status(sw.pid())
            r["ports"] = sw.port_summary()
            results.append(r)
            extra = f" (OVS TSC from PMD cycles: {r['ovs_tsc_ghz']:.3f} GHz)" \
                if "ovs_tsc_ghz" in r else ""
            log(f"round {rnd} {sw.name:8s} {case:8s}: {r['mpps']:.3f} Mpps received "
                f"(pktgen tx {r['gen_tx_mpps']:.3f}, switch rx {r['switch_rx_mpps']:.3f}), "
                f"loss {r['loss_pct']:.1f} %, P50 {fmt(r['p50_us'], '.0f')} us, "
                f"P99 {fmt(r['p99_us'], '.0f')} us, "
                f"{fmt(r['cyc_per_pkt'], '.0f')} cycles/pkt "
                f"({fmt(r['user_cyc_per_pkt'], '.0f')} user), "
                f"idle {fmt(r['idle_pct'], '.1f')} %, "
                f"xdp {r['xdp_mode']}, load1 {r['load1']:.2f}{extra}")
            for what, key in (("veth", "veth_counters"), ("switch port", "switch_port_counters")):
                drops = {k: v for k, v in r[key].items()
                         if any(w in k for w in ("drop", "error", "full", "empty", "invalid"))}
                if drops:
                    log(f"    {what} drop counters during the pktgen run: "
                        + ", ".join(f"{k} {v}" for k, v in sorted(drops.items())))
    finally:
        if sw:
            sw.stop()
        rig.delete()


def run_memory(env, args, kind, rss):
    """The memory goal's set-up: one switch with 4 ports, p1 p2 vhost-user (testpmd io forward
    loop) and p3 p4 AF_XDP (pktgen g0 -> g1), both pairs forwarding at once for a few seconds;
    then the switch's VmRSS and HugetlbPages."""
    tag = f"{kind}99"
    rig = VethRig(env, tag)
    socks = [os.path.join(env.work, f"{tag}-{i}.sock") for i in (0, 1)]
    sw = tp = None
    try:
        tp = Testpmd(env, f"{tag}m", socks, args.huge)
        ports = vhost_ports(kind, socks) + afxdp_ports(kind, rig.s, first=3)
        if kind != "o":
            sw = Vswitch(env, args.bindir, f"{tag}m", ports, ns=rig.sw_ns, kind=kind)
            sw.set_case("p2p")
            sw.ctl("add-flow", "br0", "in_port=p3,actions=output:p4")
        else:
            sw = Ovs(env, f"{tag}m", ports, ns=rig.sw_ns)
            sw.set_case("p2p")
            sw.ofctl("add-flow", "br0", "in_port=3,actions=output:4")
        tp.wait_ready()
        wait_until("testpmd links up", 30, tp.links_up)
        tp.cmd("start tx_first 32")
        rx0 = tp.stats()[0]
        logf = os.path.join(env.work, f"pktgen-{tag}-memory.log")
        gen = env.spawn(f"pktgen-{tag}-memory", rig.pktgen(args.bindir, 1000, 1, 4))
        try:
            gen.wait(timeout=50)
        except subprocess.TimeoutExpired:
            raise Fail("vswitch-pktgen did not finish")
        looped = tp.stats()[0] - rx0
        st = proc_status(sw.pid())
        with open(logf, errors="replace") as f:
            m = re.findall(r"PKTGEN_RESULT .*received=(\d+)", f.read())
        received = int(m[-1]) if m else 0
        if looped <= 0 or received <= 0:
            raise Fail(f"{sw.name} 4-port memory run: vhost-user looped {looped}, "
                       f"AF_XDP received {received}")
        rss[f"{sw.name} (4 ports)"] = st
        log(f"memory {sw.name:8s} 4 ports: VmRSS {st.get('VmRSS', 0) / 1024:.1f} MiB, "
            f"HugetlbPages {st.get('HugetlbPages', 0) / 1024:.1f} MiB; vhost-user frames "
            f"looped {looped}, AF_XDP frames received {received}")
    finally:
        if tp:
            tp.stop()
        if sw:
            sw.stop()
        rig.delete()
        remove_files(socks)


def run_vhost_round(env, args, kind, rnd, ghz, results, rss, cases, dpdk=False):
    tag = f"{kind}{rnd}{'d' if dpdk else ''}"
    socks = [os.path.join(env.work, f"{tag}-{i}.sock") for i in (0, 1)]
    sw = None
    tp = None
    try:
        for case in cases:
            # A fresh testpmd per case (its seeded frames are the whole load); the switch's
            # client ports reconnect to it by themselves.
            tp = Testpmd(env, f"{tag}{cases.index(case)}", socks, args.huge, CASES[case][2])
            if sw is None:
                ports = vhost_ports(kind, socks, dpdk)
                if kind != "o":
                    sw = Vswitch(env, args.bindir, tag, ports, kind=kind)
                else:
                    sw = Ovs(env, tag, ports)
            tp.wait_ready()
            r = measure(env, sw, tp, case, args.seconds, ghz, args.warm)
            r["round"] = rnd
            pid = sw.pid()
            rss[sw.name + (" (a dpdk port)" if dpdk else "")] = proc_status(pid)
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
        remove_files(socks)


def table(results, args, ghz, rss):
    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    lines = []
    hdr = (f"{'scenario':31s} {'switch':8s} {'Mpps median [min-max]':24s} {'cyc/pkt':>8s} "
           f"{'user cyc':>8s} {'idle %':>7s} {'loss %':>7s} {'P50/P99 us':>11s} {'load1':>6s} "
           f"{'vsw/OVS Mpps':>12s} {'vsw/OVS cyc/pkt':>15s} {'vsw/OVS user cyc':>16s}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for case in args.cases:
        meds = {}
        rows = []
        for sw in ("vswitch", "vswitch tuned", "vswitch+metrics", "OVS 3.1"):
            rs = [r for r in results if r["case"] == case and r["switch"] == sw]
            if not rs:
                continue
            mp = [r["mpps"] for r in rs]
            m = med(mp)
            c = med([r["cyc_per_pkt"] for r in rs])
            u = med([r.get("user_cyc_per_pkt") for r in rs])
            meds[sw] = (m, c, u)
            loss = med([r.get("loss_pct") for r in rs])
            p50, p99 = med([r.get("p50_us") for r in rs]), med([r.get("p99_us") for r in rs])
            lat = f"{p50:.0f}/{p99:.0f}" if p50 is not None else "-"
            rows.append((sw, f"{m:.2f} [{min(mp):.2f}-{max(mp):.2f}]", c, u,
                         med([r["idle_pct"] for r in rs]), "-" if loss is None else f"{loss:.1f}",
                         lat, med([r["load1"] for r in rs])))
        for sw, mpps, c, u, idle, loss, lat, load in rows:
            ratio_m = ratio_c = ratio_u = ""
            if sw.startswith("vswitch") and "OVS 3.1" in meds and meds["OVS 3.1"][0]:
                v, o = meds[sw], meds["OVS 3.1"]
                ratio_m = f"{v[0] / o[0]:.2f}"
                if v[1] and o[1]:
                    ratio_c = f"{v[1] / o[1]:.2f}"
                if v[2] and o[2]:
                    ratio_u = f"{v[2] / o[2]:.2f}"
            lines.append(f"{case_label(case):31s} {sw:8s} {mpps:24s} {fmt(c, '8.0f')} "
                         f"{fmt(u, '8.0f')} {fmt(idle, '7.1f')} {loss:>7s} {lat:>11s} "
                         f"{fmt(load, '6.2f')} {ratio_m:>12s} {ratio_c:>15s} {ratio_u:>16s}")
    lines.append("")
    n = len({r['round'] for r in results})
    lines.append(f"64 B frames; {n} round(s) x {args.seconds:g} s windows after a {args.warm:g} s "
                 "warm-up, switches interleaved; medians over rounds.")
    if any(c in CASES for c in args.cases):
        lines.append("vhost-user loop (testpmd <-> switch <-> testpmd): Mpps = frames the switch "
                     "delivered to testpmd (sum of RX over both testpmd ports per second, both "
                     "directions).")
    if any(c in AFXDP_CASES for c in args.cases):
        modes = {}
        for r in results:
            if "xdp_mode" in r:
                modes.setdefault(r["switch"], set()).add(r["xdp_mode"])
        mode_s = "; ".join(f"{k} {'/'.join(sorted(v))}" for k, v in modes.items())
        lines.append("AF_XDP (vswitch-pktgen in its netns on CPU0, flat out, g0 -> s0 -> switch -> "
                     "s1 -> g1, one direction, copy mode on veth): Mpps = pktgen rx_mpps (frames "
                     "back at the generator per second), loss % = 1 - received/sent, P50/P99 = "
                     "pktgen's send-to-receive latency; pktgen counts over the window + 1 s, the "
                     f"PMD figures over the window. XDP mode in use: {mode_s or 'n/a'}.")
    lines.append(f"cycles/packet: OVS = pmd-stats-show 'avg processing cycles per packet' (TSC "
                 f"cycles); vswitch = busy_ns x {ghz:.3f} GHz / packets (TSC frequency from "
                 "/proc/cpuinfo 'cpu MHz'). user cyc (AF_XDP) = the user-mode share of the PMD "
                 "thread's `perf record -e cpu-clock` samples over the window x the window's TSC "
                 "cycles / packets: its cycles outside the kernel, idle polling included; cyc/pkt "
                 "also holds the sendto/recvfrom kernel work done in the PMD's context (the "
                 "vhost-user PMDs make no syscalls). idle % "
                 "= idle / (idle + busy) of the PMD on CPU1. load1 = median 1-min load average at "
                 "window start.")
    tsc = [r["ovs_tsc_ghz"] for r in results if "ovs_tsc_ghz" in r]
    if tsc:
        lines.append(f"cross-check: OVS PMD (idle + processing) cycles / window wall time = "
                     f"{statistics.median(tsc):.3f} GHz (median), the TSC rate OVS counts in.")
    for name, st in rss.items():
        extra = f"; plus hugepage socket-mem {OVS_SOCKET_MEM_MB} MiB reserved by DPDK" \
            if name.startswith("OVS 3.1") else ""
        incl = "" if name.endswith("(AF_XDP)") else ", incl. testpmd's guest memory"
        if name.endswith("(4 ports)"):
            name = name.replace("(4 ports)", "(4 ports: 2 vhost-user + 2 AF_XDP, all forwarding)")
        lines.append(f"memory {name}: VmRSS {st.get('VmRSS', 0) / 1024:.1f} MiB, HugetlbPages "
                     f"{st.get('HugetlbPages', 0) / 1024:.1f} MiB (mapped{incl}){extra}")
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
    ap.add_argument("--cases", default=DEFAULT_CASES)
    ap.add_argument("--switches", default="v,o")
    ap.add_argument("--no-memory", dest="memory", action="store_false",
                    help="skip the 4-port memory run")
    args = ap.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    for c in args.cases:
        if c not in CASES and c not in AFXDP_CASES:
            sys.exit(f"unknown case {c!r} (known: {', '.join([*CASES, *AFXDP_CASES])})")
    switches = [s for s in args.switches.split(",") if s]
    if args.smoke:
        args.rounds, switches = 1, ["v"]
    env = Env(args.work)

    def on_term(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    ghz = cpu_ghz()
    log(f"CPU: {ghz:.3f} GHz TSC (cpu MHz), {os.cpu_count()} CPUs; testpmd/pktgen on CPU0, "
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
        both = any(c in CASES for c in args.cases) and any(c in AFXDP_CASES for c in args.cases)
        if both and not args.smoke and args.memory:
            for kind in switches:
                if kind != "m":
                    run_memory(env, args, kind, rss)
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
