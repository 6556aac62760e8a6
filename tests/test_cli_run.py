"""``trionet run``: real commands in a namespace networked by the engine.

Each test starts the real command line (``python -m trionet.cli.main run``)
as a subprocess in this machine's namespace, so the guest reaches this test's
servers on 127.0.0.1 through the gateway, exactly as a user's would.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.host_http import BODY, http_port
from tests.support.leaks import assert_nothing_left, processes_in, snapshot
from tests.support.real import missing, need_tool
from tests.support.session_checks import own_temp_prefix

pytestmark = pytest.mark.root
__all__ = ["http_port"]  # a fixture

ROOT = Path(__file__).resolve().parent.parent
TRIONET = [sys.executable, "-m", "trionet.cli.main"]
GW4 = "172.16.0.1"
ALIAS = "host.trionet.internal"
#: What /proc/PID/exe shows for a sleep process.
SLEEP = os.path.realpath(shutil.which("sleep") or "/bin/sleep")


def trionet(*args: str, timeout: float = 30, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*TRIONET, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def test_curl_reaches_host_loopback_via_gateway_and_alias(http_port: int) -> None:
    script = (
        f"curl -sS --max-time 10 http://{GW4}:{http_port}/a && "
        f"curl -sS --max-time 10 http://{ALIAS}:{http_port}/b"
    )
    result = trionet("run", "--net", "public,host", "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == BODY * 2


def test_ping_gateway() -> None:
    ping = ["ping", "-c", "3", "-i", "0.2", "-W", "5", GW4]
    result = trionet("run", "--net", "public,host", "--", *ping)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 packets transmitted, 3 received" in result.stdout


def test_guest_interface_is_configured_from_the_guest_variables() -> None:
    script = "ip -o link show eth0; ip -o addr show eth0; ip route; ip -6 route; cat /etc/hosts"
    result = trionet(
        "run", "--slot", "2", "--mtu", "1400", "--ipv4", "--ipv6", "--", "sh", "-c", script
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mtu 1400" in out and "link/ether 02:6d:73:00:02:02" in out
    assert "inet 172.16.0.10/30" in out and "inet6 fd42:6d73:62:2::2/64" in out
    assert "default via 172.16.0.9 dev eth0" in out
    assert "default via fd42:6d73:62:2::1 dev eth0" in out
    assert f"172.16.0.9\t{ALIAS}" in out and f"fd42:6d73:62:2::1\t{ALIAS}" in out
    # eth0 and lo are the only interfaces.
    links = trionet("run", "--", "ip", "-o", "link").stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo", "eth0"]


def test_no_ipv6_leaves_only_ipv4() -> None:
    result = trionet(
        "run", "--no-ipv6", "--", "sh", "-c", "ip -o addr show eth0; cat /etc/resolv.conf"
    )
    assert result.returncode == 0, result.stderr
    assert "inet 172.16.0.2/30" in result.stdout
    assert "fd42:" not in result.stdout
    assert re.findall(r"^nameserver (\S+)$", result.stdout, re.M) == [GW4]


def test_exit_status_and_stdio_pass_through() -> None:
    assert trionet("run", "--", "sh", "-c", "exit 7").returncode == 7
    result = trionet("run", "--", "sh", "-c", "cat; echo err >&2", input="from stdin\n")
    assert result.returncode == 0
    assert result.stdout == "from stdin\n"
    assert result.stderr == "err\n"


def test_missing_command_is_127_with_one_line() -> None:
    result = trionet("run", "--", "/nonexistent/cmd")
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1
    assert "cannot run '/nonexistent/cmd'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mtu", "abc"], "'abc' is not a whole number"),
        (["--mtu", "70000"], "interface.mtu: 70000 is outside 68..65535"),
        (["--slot", "-1"], "is outside 0..65535"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--config", "/nonexistent.toml"], "cannot be read"),
    ],
)
def test_bad_options_are_one_line_and_status_2(args: list[str], message: str) -> None:
    result = trionet("run", *args, "--", "true")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


def test_no_command_is_a_usage_error() -> None:
    result = trionet("run")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1


def test_sigint_ends_command_and_engine_leaving_nothing(http_port: int) -> None:
    before = snapshot()
    process = subprocess.Popen(
        [*TRIONET, "run", "-v", "--", "sh", "-c", "echo $$; exec sleep 60"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # -v: run.start, run.abort or run.end, run.teardown
        text=True,
    )
    assert process.stdout is not None
    cmd = int(process.stdout.readline())
    netns = os.open(f"/proc/{cmd}/ns/net", os.O_RDONLY)  # held: see leaks.processes_in
    try:
        deadline = time.monotonic() + 5
        while _readlink(f"/proc/{cmd}/exe") != SLEEP:  # sh exec'd sleep
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert processes_in(netns) == [cmd]
        process.send_signal(signal.SIGINT)
        try:
            _, log = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, log = process.communicate()
            pytest.fail(f"still running 10 s after SIGINT; its log:\n{log}")
        assert process.returncode == 128 + signal.SIGINT, log
        assert processes_in(netns) == []  # so the namespace (and its TAP) is gone
    finally:
        os.close(netns)
    assert_nothing_left(before)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def test_daemons_left_in_the_namespace_are_killed() -> None:
    script = "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!; exit 3"
    result = trionet("run", "--", "sh", "-c", script)
    assert result.returncode == 3
    daemon = int(result.stdout)
    # Gone, or (rarely) its pid already reused by a process that is not a sleep.
    assert _readlink(f"/proc/{daemon}/exe") != SLEEP


def test_ctrl_c_from_a_terminal_reaches_command_once() -> None:
    """The terminal signals CMD itself; trionet must not forward a second SIGINT."""
    counter = (
        "import signal, time\n"
        "n = []\n"
        "signal.signal(signal.SIGINT, lambda *a: n.append(1))\n"
        "print('ready', flush=True)\n"
        "time.sleep(1.5)\n"
        "print('interrupts', len(n), flush=True)\n"
    )
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(ROOT)
        os.execv(sys.executable, [*TRIONET, "run", "--", sys.executable, "-c", counter])
    try:
        output = _read_until(master, b"ready", 10)
        os.write(master, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground group
        output += _read_until(master, b"interrupts", 10)
        output += _read_until(master, b"\n", 5)
        _, wait_status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    assert b"interrupts 1" in output, output
    assert os.waitstatus_to_exitcode(wait_status) == 0


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} in {data!r}"
        if select.select([fd], [], [], remaining)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_pcap_opens_in_tcpdump_and_shows_the_handshake(http_port: int, tmp_path: Path) -> None:
    need_tool("tcpdump", "tcpdump")
    capture = tmp_path / "run.pcap"
    url = f"http://{GW4}:{http_port}/"
    for offload in ([], ["--no-offload"]):
        result = trionet(
            "run", "--net", "all", "--pcap", str(capture), *offload, "--", "curl", "-sS", url
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.encode() == BODY
        shown = subprocess.run(
            ["tcpdump", "-nn", "-r", str(capture), "tcp"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        port = f"{GW4}.{http_port}"
        assert re.search(rf"172\.16\.0\.2\.\d+ > {re.escape(port)}: Flags \[S\]", shown), shown
        assert re.search(rf"{re.escape(port)} > 172\.16\.0\.2\.\d+: Flags \[S\.\]", shown), shown
        payloads = subprocess.run(
            ["tcpdump", "-nn", "-A", "-r", str(capture), "tcp"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "GET / HTTP/1.1" in payloads and BODY.decode().strip() in payloads


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@contextlib.contextmanager
def _tree_for_nobody() -> Iterator[Path]:
    """A directory user nobody may read, holding this checkout's trionet and its imports.

    The test's own packages may live where nobody cannot read (a venv under
    root's home, say), so what ``trionet run`` imports is copied into a fresh
    directory in /tmp, named so the session check would find it left behind.
    """
    probe = (
        "import json, sys, trionet.cli.main, trionet.cli.run\n"
        "tops = {m.__name__.split('.')[0]: m.__file__ for m in list(sys.modules.values())\n"
        "        if getattr(m, '__file__', None) and '.' not in m.__name__}\n"
        "print(json.dumps(tops))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    tree = Path(tempfile.mkdtemp(prefix=own_temp_prefix(), dir="/tmp"))
    try:
        tree.chmod(0o755)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name, file in json.loads(found).items():
            source = Path(file).resolve()
            if stdlib in source.parents or name in sys.stdlib_module_names:
                continue
            if source.name == "__init__.py":
                shutil.copytree(source.parent, tree / name, ignore=ignore)
            elif source.suffix == ".py" and not name.startswith("_"):  # .pth helpers skipped
                shutil.copy(source, tree)
        yield tree
    finally:
        shutil.rmtree(tree)


def _interpreter_for_nobody(tree: Path) -> list[str] | None:
    """A Python of this version that user nobody may run, importing from ``tree``."""
    env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"PYTHONPATH={tree}"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/python{version}", "/usr/bin/python3"):
        check = f"import sys, trionet.cli.run; assert sys.version[:4] == {version!r}"
        probe = [*NOBODY, *env, python, "-c", check]
        if subprocess.run(probe, capture_output=True, cwd="/", check=False).returncode == 0:
            return [*env, python]
    return None


def _with_tun_mode(mode: int, argv: list[str]) -> list[str]:
    """``argv`` in a private mount namespace whose /dev/net/tun has ``mode``.

    This is how a test grants user nobody the TUN device (or takes it away)
    for its own duration without changing the machine's: the node is a fresh
    one (same device numbers) on a tmpfs mounted over /dev/net in a mount
    namespace that ends with the command. The real /dev/net/tun keeps its
    mode even if the test is killed, and concurrent runs see nothing of it.
    """
    tun = os.stat("/dev/net/tun").st_rdev
    script = (
        "mount -t tmpfs -o mode=0755,size=64k trionet-tun /dev/net"
        f" && mknod -m {mode:04o} /dev/net/tun c {os.major(tun)} {os.minor(tun)}"
        ' && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def _run_as_nobody(
    tun_mode: int, command: list[str], options: list[str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``trionet run -- COMMAND`` as user nobody, with /dev/net/tun at ``tun_mode`` for it."""
    need_tool("setpriv", "util-linux")
    need_tool("unshare", "util-linux")
    machine_tun = os.stat("/dev/net/tun").st_mode
    with _tree_for_nobody() as tree:
        python = _interpreter_for_nobody(tree)
        if python is None:
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            missing(f"no Python {version} that user nobody may run (apt-get install python3)")
        trionet_run = [*python, "-m", "trionet.cli.main", "run", *(options or [])]
        argv = [*NOBODY, *trionet_run, "--", *command]
        result = subprocess.run(
            _with_tun_mode(tun_mode, argv),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert os.stat("/dev/net/tun").st_mode == machine_tun  # changed only in the test's namespace
    return result


def test_unprivileged_user_uses_a_user_namespace(http_port: int) -> None:
    """As nobody: a user namespace where the machine allows one, else a one-line reason."""
    script = f"id -u; curl -sS --max-time 10 http://{GW4}:{http_port}/"
    result = _run_as_nobody(0o666, ["sh", "-c", script], options=["--net", "host"])
    allowed = subprocess.run([*NOBODY, "unshare", "-rn", "true"], capture_output=True, check=False)
    if allowed.returncode == 0:
        assert result.returncode == 0, result.stderr
        assert result.stdout.encode() == b"0\n" + BODY  # root inside its own user namespace
    else:
        assert result.returncode == 125
        assert result.stderr.count("\n") == 1 and "run as root" in result.stderr


def test_unprivileged_user_without_the_tun_device_is_told_how_to_get_it() -> None:
    """A stock machine's /dev/net/tun (0600): nobody gets the one-line reason and the fix."""
    result = _run_as_nobody(0o600, ["true"])
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1, result.stderr
    assert "/dev/net/tun is not readable and writable by uid 65534" in result.stderr
    assert "chmod 0666 /dev/net/tun" in result.stderr


def test_readme_main_command_prints_what_readme_says() -> None:
    """The README's first command, minus the venv set-up, on a free port: output as documented."""
    readme = (ROOT / "README.md").read_text()
    command = next(line.strip() for line in readme.splitlines() if "trionet run --" in line)
    expected = re.search(r"``(# .*?)``", readme)
    setup, install, main = command.partition(" && .venv/bin/pip install -q . && ")
    assert setup.endswith("python3 -m venv .venv") and install and expected is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    script = main.replace("8000", port)
    script = script.replace(".venv/bin/trionet run", f"{sys.executable} -m trionet.cli.main run")
    assert ".venv" not in script
    result = subprocess.run(
        ["sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected.group(1) + "\n"
