"""Small helpers several test files share (imported as `helpers`, like `reference`)."""
import json
import signal
import struct
import subprocess
import sys
import time
import zlib


def with_header(data, edit):
    """The model file `data` with its JSON header changed by `edit(header)` and its
    checksum recomputed: only the loader's own checks can catch the change."""
    hlen = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[16:16 + hlen])
    edit(header)
    head = json.dumps(header).encode()
    body = data[:12] + struct.pack("<I", len(head)) + head + data[16 + hlen:-4]
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def interrupt_child(code, cwd, delay, timeout):
    """Run `code` in a fresh interpreter in `cwd` (outside the source tree, so the
    installed pynn is imported); once it prints READY, wait `delay` seconds and send
    SIGINT. The child must exit 0 and print a JSON object as its last line.
    Returns (that object, the time the signal was sent).

    The child installs Python's own SIGINT handler first: a process started in
    the background by a shell without job control (`(cmd &)`, nohup) inherits
    SIGINT ignored, as does every interpreter it starts, and Python leaves it
    ignored: the signal would be lost before pynn could handle it."""
    code = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n" + code
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(delay)
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), sent
