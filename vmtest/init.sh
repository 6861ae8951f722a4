#!/bin/busybox sh
# /init of the vmtest guests: mount what the recorder needs, run the test driver, power off.
# Everything the host checks is printed by the driver on the serial console (stdout here).
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /out
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# aya finds tracepoint ids under tracefs; debugfs for tools that still look there.
mount -t tracefs nodev /sys/kernel/tracing
mount -t debugfs nodev /sys/kernel/debug
# The recorder's events carry the cgroup v2 id; the driver reads its own from here.
mount -t cgroup2 nodev /sys/fs/cgroup
# Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
ulimit -l unlimited
# The workload talks TCP/UDP over 127.0.0.1 and ::1: loopback must be up.
ip link set lo up
echo "vmtest-init: kernel $(uname -r), $(nproc) cpus, starting the driver"
# shellcheck disable=SC2046 # /args holds the driver's arguments, one word each
/bin/vmtest-guest $(cat /args)
echo "vmtest-init: driver exited with $?"
poweroff -f
