"""The wire protocol (docs/protocol.md): COBS frames, host client, device server, transports."""
