"""A TCP forwarder that can play an outage, for tests of a store going away.

    python3 tcp_forwarder.py TARGET_HOST TARGET_PORT

Prints "forwarder listening on PORT". SIGUSR1 starts an outage: connections stop relaying
(their bytes wait unread) and new ones are accepted and never answered, as when a database
host stops answering. SIGUSR2 ends it: the connections held during it are closed, new ones are
relayed again.
"""
import select
import signal
import socket
import sys
import threading

target = (sys.argv[1], int(sys.argv[2]))
outage = threading.Event()
lock = threading.Lock()
held = []


def relay(client):
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        return
    with lock:
        held.append(client)
        held.append(upstream)
    pairs = {client: upstream, upstream: client}
    try:
        while True:
            if outage.is_set():
                threading.Event().wait(0.1)
                continue
            readable, _, _ = select.select(list(pairs), [], [], 0.1)
            for s in readable:
                if outage.is_set():
                    break
                data = s.recv(65536)
                if not data:
                    return
                pairs[s].sendall(data)
    except OSError:
        pass
    finally:
        client.close()
        upstream.close()


def accept(listener):
    while True:
        client, _ = listener.accept()
        if outage.is_set():
            with lock:
                held.append(client)
            continue
        threading.Thread(target=relay, args=(client,), daemon=True).start()


def start_outage(*_):
    outage.set()


def end_outage(*_):
    with lock:
        for s in held:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        held.clear()
    outage.clear()


# The test runner may start us with these blocked (the mask is inherited across exec).
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1, signal.SIGUSR2])
signal.signal(signal.SIGUSR1, start_outage)
signal.signal(signal.SIGUSR2, end_outage)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
print("forwarder listening on %d" % listener.getsockname()[1], flush=True)
threading.Thread(target=accept, args=(listener,), daemon=True).start()
while True:
    signal.pause()
