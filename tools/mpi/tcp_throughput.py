#!/usr/bin/env python3
"""One TCP stream's throughput between two hosts: the `link_bandwidth` of the cost model
(docs/distributed.md) when iperf3 is not at hand. Standard library only.

    host2$ tools/mpi/tcp_throughput.py server 0.0.0.0 47800
    host1$ tools/mpi/tcp_throughput.py client host2 47800 --megabytes 400

Between the two namespace hosts of tools/mpi/netns-hosts.sh:

    ip netns exec llmft-b tools/mpi/tcp_throughput.py server 10.77.0.2 47800 &
    ip netns exec llmft-a tools/mpi/tcp_throughput.py client 10.77.0.2 47800

The server counts the bytes it receives until the client closes, and prints MB, seconds and
GB/s (and Gbit/s) from the first byte to the last.
"""
import argparse
import socket
import time


def serve(host, port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    connection, peer = listener.accept()
    buffer = bytearray(4 << 20)
    received, start = 0, None
    while True:
        count = connection.recv_into(buffer)
        if count == 0:
            break
        start = start or time.perf_counter()
        received += count
    seconds = time.perf_counter() - start
    print(f"received {received / 1e6:.1f} MB from {peer[0]} in {seconds:.3f} s: "
          f"{received / seconds / 1e9:.2f} GB/s = {8 * received / seconds / 1e9:.1f} Gbit/s")


def send(host, port, megabytes):
    for _ in range(100):  # the server may still be starting
        try:
            connection = socket.create_connection((host, port), timeout=10)
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit(f"tcp_throughput.py: cannot connect to {host}:{port}")
    chunk = bytes(4 << 20)
    for _ in range(max(1, megabytes * (1 << 20) // len(chunk))):
        connection.sendall(chunk)
    connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--megabytes", type=int, default=400, help="client: MiB to send (default 400)")
    args = parser.parse_args()
    if args.role == "server":
        serve(args.host, args.port)
    else:
        send(args.host, args.port, args.megabytes)


if __name__ == "__main__":
    main()
