// Package adb speaks the ADB wire protocol: the transport between an adb
// host and a device's adbd, as carried on a phone's TCP port 5555.
//
// The transport is a sequence of messages, each a 24-byte little-endian
// header (command, arg0, arg1, data length, data checksum, command XOR
// 0xffffffff) followed by its data. A connection starts with CNXN from each
// side (protocol version, largest data block and a banner). Streams are then
// opened with OPEN(local-id, 0, "service\x00"), accepted with OKAY(local-id,
// remote-id) or refused with CLSE(0, remote-id), carry data in WRTE messages
// that the receiver acknowledges with one OKAY each (at most one WRTE is in
// flight per stream: that is the flow control), and end with CLSE. Any
// number of streams share one connection.
//
// On top of the transport sit the services a device offers; this package
// implements the framing of two of them on both sides: sync: (file transfer:
// STAT, LIST, SEND, RECV, DATA, DONE, OKAY, FAIL, QUIT) and shell,v2
// (packets of stdin, stdout, stderr and the exit code).
//
// Client is the host side: it dials a device's ADB endpoint directly (no adb
// server in between) and runs shell commands, moves files, takes
// screenshots, follows logcat and installs APKs. Device is the device side:
// it answers the handshake and hands each opened stream to a Handler.
package adb
