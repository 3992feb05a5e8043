#!/bin/sh
# run-guest.sh NAME [--net vhost:SOCK|stream-listen:P|stream-connect:P|tap:IF] [--mac M] [--ip A/P]
#              [--vlan N] [--queues N] [--mem MiB] [--cmd CMD --foreground] ...
# Starts one test guest in the background (see vsguest.py --help). Returns once QEMU's sockets
# exist; with --net vhost:SOCK QEMU then waits for the switch to connect to SOCK.
exec python3 "$(dirname "$0")/vsguest.py" run "$@"
