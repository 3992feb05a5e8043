#!/usr/bin/env python3
"""vsguest: start and drive QEMU test guests for vswitch (Python 3 stdlib only).

  vsguest.py run NAME [--net SPEC] [--mac MAC] [--net2 SPEC] [--mac2 MAC] [--ip A/P] [--vlan N] [--mtu N] [--queues N]
                      [--smp N] [--mem MiB] [--offload off] [--cmd CMD] [--foreground] ...
  vsguest.py wait-ready NAME [TIMEOUT]
  vsguest.py exec NAME [-t SECS] CMD...        # prints output, exits with CMD's status
  vsguest.py stop NAME... | stop-all | list | qemu-cmd NAME ... (print the QEMU line only)

--net SPEC:
  vhost:PATH           vhost-user, QEMU is the socket SERVER at PATH (vswitchd connects as client)
  stream-listen:PATH   QEMU 7.2 `-netdev stream` unix server (guest-to-guest wire, no host net)
  stream-connect:PATH  the other end of the above
  tap:IFNAME           an existing tap device (script=no); run inside a netns with `ip netns exec`
  none                 no NIC
State lives in $VSGUEST_RUN (default /tmp/vsguest)/NAME: qemu.pid, console.log (ttyS0),
qemu.log (QEMU stderr), ctl.sock (ttyS1 control channel), mon.sock (HMP monitor), info.json.
The image comes from $VSGUEST_IMG (default <repo>/target/guest-image), built by
build-guest.sh when missing.
"""
import argparse
import base64
import fcntl
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RUN = os.environ.get("VSGUEST_RUN", "/tmp/vsguest")
IMG = os.environ.get("VSGUEST_IMG", os.path.join(REPO, "target", "guest-image"))
QEMU = os.environ.get("VSGUEST_QEMU", "qemu-system-x86_64")


def die(msg, code=2):
    print(f"vsguest: {msg}", file=sys.stderr)
    sys.exit(code)


def gdir(name):
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        die(f"bad guest name {name!r}")
    return os.path.join(RUN, name)


def kvm_usable():
    """Real KVM only: /dev/kvm here may be PVM, which cannot run a stock kernel."""
    acc = os.environ.get("VSGUEST_ACCEL", "auto")
    if acc in ("tcg", "kvm"):
        return acc == "kvm"
    try:
        with open("/proc/modules") as f:
            mods = f.read()
    except OSError:
        return False
    return bool(re.search(r"^kvm_(intel|amd) ", mods, re.M)) and os.access("/dev/kvm", os.R_OK | os.W_OK)


def mac_for(name):
    # Stable locally administered MAC from the name, unless given.
    h = int.from_bytes(name.encode(), "big") % 250 + 1
    return f"52:54:00:00:00:{h:02x}"


def ensure_image():
    if not (os.path.exists(os.path.join(IMG, "vmlinuz")) and os.path.exists(os.path.join(IMG, "initramfs.cpio.gz"))):
        subprocess.run([os.path.join(HERE, "build-guest.sh"), IMG], check=True)


def pct_encode(s):
    out = []
    for b in s.encode():
        c = chr(b)
        if c.isalnum() or c in "-_./,:=@+":
            out.append(c)
        else:
            out.append(f"%{b:02x}")
    return "".join(out)


def second_mac(mac):
    """The second NIC's MAC: the first's with 0x10 added to its last byte."""
    head, last = mac.rsplit(":", 1)
    return f"{head}:{(int(last, 16) + 0x10) % 256:02x}"


def nic_argv(net, i, mac, queues, mtu=None):
    """QEMU arguments of NIC number i (eth<i> in the guest). With `mtu`, a vhost-user NIC offers
    it to the guest (host_mtu: VIRTIO_NET_F_MTU, as libvirt's <mtu size=.../> does)."""
    kind, _, arg = net.partition(":")
    argv, mq = [], []
    if kind == "vhost":
        argv += ["-chardev", f"socket,id=vu{i},path={arg},server=on"]
        q = f",queues={queues}" if queues > 1 else ""
        argv += ["-netdev", f"vhost-user,id=n{i},chardev=vu{i}{q}"]
        if queues > 1:
            mq = [",mq=on"]
        if mtu:
            mq.append(f",host_mtu={mtu}")
    elif kind == "stream-listen":
        argv += ["-netdev", f"stream,id=n{i},server=on,addr.type=unix,addr.path={arg}"]
    elif kind == "stream-connect":
        argv += ["-netdev", f"stream,id=n{i},server=off,addr.type=unix,addr.path={arg}"]
    elif kind == "tap":
        argv += ["-netdev", f"tap,id=n{i},ifname={arg},script=no,downscript=no"]
    else:
        die(f"unknown --net {net}")
    # vectors=0: MSI-X off. QEMU 7.2 + TCG + vhost-user segfaults in msix_set_vector_notifiers
    # otherwise. romfile=: no iPXE option ROM (direct kernel boot does not need it).
    argv += ["-device", f"virtio-net-pci,netdev=n{i},mac={mac},vectors=0,romfile={''.join(mq)}"]
    return argv


def qemu_argv(a, d):
    mem = a.mem
    mac = a.mac or mac_for(a.name)
    append = ["console=ttyS0", "quiet", "mitigations=off", "tsc=reliable", "no_timer_check",
              "panic=-1", f"vs.name={a.name}"]
    if a.ip:
        append.append(f"vs.ip={a.ip}")
    if a.vlan:
        append.append(f"vs.vlan={a.vlan}")
    if a.mtu:
        append.append(f"vs.mtu={a.mtu}")
    if a.offload:
        append.append(f"vs.offload={a.offload}")
    if a.ipv6:
        append.append("vs.ipv6=1")
    if a.carrier is not None:
        append.append(f"vs.carrier={a.carrier}")
    if a.cmd is not None:
        append.append("vs.cmd64=" + base64.b64encode(a.cmd.encode()).decode())
    if a.append:
        append.append(a.append)

    if kvm_usable():
        accel = ["-enable-kvm", "-cpu", "host"]
    else:
        accel = ["-accel", "tcg,thread=multi", "-cpu", "max,-la57"]
    argv = [QEMU, "-name", a.name, *accel, "-smp", str(a.smp), "-m", str(mem),
            "-object", f"memory-backend-memfd,id=mem,size={mem}M,share=on",
            "-numa", "node,memdev=mem",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none", "-no-reboot",
            "-kernel", os.path.join(IMG, "vmlinuz"), "-initrd", os.path.join(IMG, "initramfs.cpio.gz"),
            "-append", " ".join(append),
            # -chardev objects are created before netdevs, so ctl.sock/mon.sock exist even while
            # QEMU waits for the vhost-user back-end.
            "-chardev", f"file,id=con,path={d}/console.log",
            "-serial", "chardev:con",
            "-chardev", f"socket,id=ctl,path={d}/ctl.sock,server=on,wait=off",
            "-serial", "chardev:ctl",
            "-monitor", f"unix:{d}/mon.sock,server=on,wait=off"]
    if a.net == "none":
        return argv
    argv += nic_argv(a.net, 0, mac, a.queues, a.mtu)
    if a.net2:
        argv += nic_argv(a.net2, 1, a.mac2 or second_mac(mac), a.queues, a.mtu)
    return argv


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def read_pid(d):
    try:
        with open(os.path.join(d, "qemu.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def cmd_run(a):
    d = gdir(a.name)
    old = read_pid(d)
    if old and alive(old):
        die(f"guest {a.name} already running (pid {old})")
    os.makedirs(d, exist_ok=True)
    for f in ("console.log", "qemu.log", "ctl.sock", "mon.sock", "qemu.pid", "info.json"):
        try:
            os.unlink(os.path.join(d, f))
        except FileNotFoundError:
            pass
    ensure_image()
    argv = qemu_argv(a, d)
    if a.print_only:
        print(" ".join(shlex.quote(x) for x in argv))
        return 0
    if a.net.startswith("vhost:"):
        p = a.net.split(":", 1)[1]
        if os.path.exists(p):
            os.unlink(p)  # stale socket from an earlier run: QEMU would fail to bind
    with open(os.path.join(d, "qemu.log"), "wb") as log:
        log.write((" ".join(shlex.quote(x) for x in argv) + "\n").encode())
        log.flush()
        t0 = time.time()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
    with open(os.path.join(d, "qemu.pid"), "w") as f:
        f.write(f"{p.pid}\n")
    info = {"name": a.name, "pid": p.pid, "start": t0, "net": a.net, "mac": a.mac or mac_for(a.name),
            "ip": a.ip, "vlan": a.vlan, "cmd": a.cmd, "argv": argv}
    with open(os.path.join(d, "info.json"), "w") as f:
        json.dump(info, f)
    # Wait (bounded) for QEMU's sockets, so the caller can plug the vhost-user socket into the
    # switch right away.
    want = [os.path.join(d, "ctl.sock")]
    if a.net.startswith(("vhost:", "stream-listen:")):
        want.append(a.net.split(":", 1)[1])
    deadline = time.time() + 20
    while time.time() < deadline and not all(os.path.exists(w) for w in want):
        if p.poll() is not None:
            sys.stderr.write(open(os.path.join(d, "qemu.log")).read())
            die(f"QEMU for {a.name} exited with {p.returncode}", 1)
        time.sleep(0.05)
    if not all(os.path.exists(w) for w in want):
        die(f"QEMU for {a.name} did not create {want}", 1)
    if not a.foreground:
        print(f"{a.name} pid={p.pid} dir={d}")
        return 0
    # Foreground: wait for QEMU to exit (the guest powers off after vs.cmd), bounded.
    try:
        p.wait(timeout=a.timeout)
    except subprocess.TimeoutExpired:
        kill_pid(p.pid)
        print(f"vsguest: {a.name} timed out after {a.timeout}s", file=sys.stderr)
        sys.stdout.write(open(os.path.join(d, "console.log"), errors="replace").read())
        return 124
    con = open(os.path.join(d, "console.log"), errors="replace").read()
    sys.stdout.write(con)
    m = re.search(r"VSGUEST-CMD-EXIT status=(\d+)", con)
    return int(m.group(1)) if m else 1


def kill_pid(pid, grace=3.0):
    if not alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        if not alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cmd_stop(a):
    names = a.names
    if a.all:
        names = sorted(os.listdir(RUN)) if os.path.isdir(RUN) else []
    for n in names:
        d = gdir(n)
        pid = read_pid(d)
        if pid:
            # only kill it if it really is our QEMU for this guest
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cl = f.read().split(b"\0")
                ours = any((d + "/ctl.sock").encode() in x for x in cl)
            except OSError:
                ours = False
            if ours:
                kill_pid(pid)
            try:
                os.unlink(os.path.join(d, "qemu.pid"))
            except FileNotFoundError:
                pass
    return 0


def cmd_list(a):
    if not os.path.isdir(RUN):
        return 0
    for n in sorted(os.listdir(RUN)):
        pid = read_pid(os.path.join(RUN, n))
        print(f"{n}\t{pid or '-'}\t{'running' if pid and alive(pid) else 'stopped'}")
    return 0


def console(d):
    try:
        with open(os.path.join(d, "console.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_marker(name, timeout, marker):
    """Waits for MARKER on the console; returns (ok, line). Fails fast if QEMU died."""
    d = gdir(name)
    deadline = time.time() + timeout
    while True:
        con = console(d)
        m = re.search(r"^(" + re.escape(marker) + r".*)$", con, re.M)
        if m:
            return True, m.group(1)
        f = re.search(r"^(VSGUEST-FAIL.*)$", con, re.M)
        if f:
            return False, f.group(1)
        pid = read_pid(d)
        if not pid or not alive(pid):
            return False, f"QEMU for {name} is not running"
        if time.time() >= deadline:
            return False, f"{name}: no {marker} within {timeout}s"
        time.sleep(0.1)


def cmd_wait_ready(a):
    ok, line = wait_marker(a.name, a.timeout, "VSGUEST-READY")
    if ok:
        try:
            with open(os.path.join(gdir(a.name), "info.json")) as f:
                t0 = json.load(f)["start"]
            line += f" host_elapsed={time.time() - t0:.1f}"
        except (OSError, KeyError, ValueError):
            pass
    print(line, file=sys.stdout if ok else sys.stderr)
    if ok and " carrier=0 " in line:
        return 3  # booted, address set, but the link never came up (vs.carrier timeout)
    if not ok:
        tail = console(gdir(a.name)).splitlines()[-15:]
        print("\n".join("  | " + x for x in tail), file=sys.stderr)
    return 0 if ok else 1


def guest_exec(name, cmd, timeout=60, out=None):
    """Runs CMD in the live guest NAME; returns (status, output). Status 124 on host timeout,
    125 on channel failure."""
    d = gdir(name)
    ok, why = wait_marker(name, timeout, "VSGUEST-CTL-READY")
    if not ok:
        return 125, f"vsguest: {why}\n"
    tok = secrets.token_hex(6)
    gt = max(1, int(timeout))
    req = f"{tok} {gt} {base64.b64encode(cmd.encode()).decode()}\n".encode()
    begin = f"VSG-BEGIN {tok}\n".encode()
    end_re = re.compile(rb"\nVSG-END " + tok.encode() + rb" (\d+)\n")
    lock = open(os.path.join(d, "ctl.lock"), "w")
    deadline = time.time() + gt + 10
    try:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    return 125, "vsguest: control channel busy\n"
                time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.2)
        s.connect(os.path.join(d, "ctl.sock"))
        s.sendall(req)
        buf = b""
        started = False
        emitted = 0
        hold = len(tok) + 32
        while True:
            if time.time() > deadline:
                return 124, (buf.decode(errors="replace") + f"\nvsguest: host timeout after {gt + 10}s\n")
            try:
                chunk = s.recv(65536)
                if not chunk:
                    return 125, buf.decode(errors="replace") + "\nvsguest: control channel closed\n"
                buf += chunk
            except socket.timeout:
                pid = read_pid(d)
                if not pid or not alive(pid):
                    return 125, buf.decode(errors="replace") + "\nvsguest: QEMU exited\n"
                continue
            if not started:
                i = buf.find(begin)
                if i < 0:
                    buf = buf[-len(begin):]  # stale output of an earlier command
                    continue
                buf = buf[i + len(begin):]
                started = True
            m = end_re.search(buf)
            if m:
                body = buf[:m.start()]
                if out:
                    out.write(body[emitted:].decode(errors="replace"))
                    out.flush()
                return int(m.group(1)), body.decode(errors="replace")
            if out and len(buf) - hold > emitted:
                out.write(buf[emitted:len(buf) - hold].decode(errors="replace"))
                out.flush()
                emitted = len(buf) - hold
    finally:
        try:
            s.close()
        except Exception:
            pass
        lock.close()


def cmd_exec(a):
    cmd = " ".join(a.cmd) if len(a.cmd) != 1 else a.cmd[0]
    st, body = guest_exec(a.name, cmd, a.timeout, out=sys.stdout)
    if st in (124, 125):
        sys.stderr.write("".join(x + "\n" for x in body.splitlines() if x.startswith("vsguest:")))
    return st


def main():
    ap = argparse.ArgumentParser(prog="vsguest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="op", required=True)
    for opname in ("run", "qemu-cmd"):
        r = sp.add_parser(opname)
        r.add_argument("name")
        r.add_argument("--net", default="none")
        r.add_argument("--mac")
        r.add_argument("--net2", help="a second NIC (eth1), same SPEC forms as --net")
        r.add_argument("--mac2", help="its MAC (default: --mac with 0x10 added to the last byte)")
        r.add_argument("--ip", help="A.B.C.D/P (default 10.0.0.<last MAC byte>/24)")
        r.add_argument("--vlan", type=int)
        r.add_argument("--mtu", type=int)
        r.add_argument("--queues", type=int, default=1)
        r.add_argument("--smp", type=int, default=1)
        r.add_argument("--mem", type=int, default=256, help="MiB (default 256)")
        r.add_argument("--offload", choices=["off"])
        r.add_argument("--ipv6", action="store_true")
        r.add_argument("--carrier", type=int, help="seconds the guest waits for carrier (60)")
        r.add_argument("--cmd", help="run this in the guest, then power off")
        r.add_argument("--append", help="extra kernel command line")
        r.add_argument("--foreground", action="store_true",
                       help="wait for QEMU to exit; print the console; exit with --cmd's status")
        r.add_argument("--timeout", type=float, default=300, help="for --foreground")
        r.set_defaults(print_only=(opname == "qemu-cmd"), fn=cmd_run)
    w = sp.add_parser("wait-ready")
    w.add_argument("name")
    w.add_argument("timeout", type=float, nargs="?", default=120)
    w.set_defaults(fn=cmd_wait_ready)
    e = sp.add_parser("exec")
    e.add_argument("-t", "--timeout", type=int, default=60)
    e.add_argument("name")
    e.add_argument("cmd", nargs=argparse.REMAINDER)
    e.set_defaults(fn=cmd_exec)
    s = sp.add_parser("stop")
    s.add_argument("names", nargs="*")
    s.set_defaults(fn=cmd_stop, all=False)
    s2 = sp.add_parser("stop-all")
    s2.set_defaults(fn=cmd_stop, all=True, names=[])
    ls = sp.add_parser("list")
    ls.set_defaults(fn=cmd_list)
    a = ap.parse_args()
    if a.op == "exec" and not a.cmd:
        die("exec: no command")
    sys.exit(a.fn(a))


if __name__ == "__main__":
    main()
