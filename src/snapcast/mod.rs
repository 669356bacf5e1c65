//! Snapcast ingest: the binary protocol, the client connection, time sync and the decoders.
