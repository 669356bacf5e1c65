//! The control socket: a unix socket on which the CLI (`bluebridge status`, `set-offset`, …) talks to the running
//! service.
//!
//! - [`protocol`]: the versioned, line-delimited JSON messages and the reports they carry (pure, no I/O).
//! - [`server`]: the tokio listener, hardened against hostile clients (bounded lines, timeouts, a connection cap).
//! - [`client`]: the blocking client the CLI uses.
//!
//! One request per line, one reply per line, any number of requests per connection:
//! ```text
//! → {"v":1,"cmd":"set-volume","name":"kitchen","pct":40}
//! ← {"v":1,"ok":true,"result":{…}}
//! → {"v":1,"cmd":"enable","name":"kitchn"}
//! ← {"v":1,"ok":false,"error":{"code":"unknown-output","message":"no output \"kitchn\"; outputs: kitchen, hall"}}
//! ```

pub mod client;
pub mod protocol;
pub mod server;
