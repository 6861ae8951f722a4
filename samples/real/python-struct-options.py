import socket, struct
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 7))
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("qq", 1, 500000))
c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 280)   # cut to 100 bytes by --snaplen
c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)   # a 2.6-era struct
c.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
u1, u2 = socket.socketpair()
u1.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
