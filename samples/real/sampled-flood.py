# A flood far above --max-rate: 200,000 SO_RCVBUF calls, then 30,000 of an option TCP does
# not have (ENOPROTOOPT), then 200,000 SO_SNDBUF, each in a tight loop.
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
for _ in range(200_000):
    s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
refused = 0
for _ in range(30_000):
    try:
        s.getsockopt(socket.IPPROTO_TCP, 9999)
    except OSError:
        refused += 1
for _ in range(200_000):
    s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
print("refused", refused)
