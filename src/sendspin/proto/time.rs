//! The clock exchange: `client/time` {client_transmitted} and `server/time` {client_transmitted, server_received,
//! server_transmitted}, all in microseconds (the client's clock for the first, the server's for the others).

use serde::{Deserialize, Serialize};

/// `client/time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClientTime {
    /// The client's clock when it sent this, µs.
    pub client_transmitted: i64,
}

impl ClientTime {
    /// The message text.
    pub fn encode(&self) -> String {
        super::encode("client/time", self)
    }
}

/// `server/time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ServerTimeReply {
    /// Echo of the request's `client_transmitted`, client µs.
    pub client_transmitted: i64,
    /// When the server received the request, server µs.
    pub server_received: i64,
    /// When the server sent this reply, server µs.
    pub server_transmitted: i64,
}

/// The two one-way differences of one exchange, ns, as [`ServerClock::add_exchange`] takes them.
///
/// [`ServerClock::add_exchange`]: crate::timeline::server_clock::ServerClock::add_exchange
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// `server_received − client_transmitted`, ns.
    pub c2s_ns: i64,
    /// `client_received − server_transmitted`, ns.
    pub s2c_ns: i64,
    /// The round trip minus the server's own processing, ns.
    pub rtt_ns: i64,
}

/// Largest round trip an exchange may have and still count, ns: a slower one says little about the offset.
pub const MAX_RTT_NS: i64 = 500_000_000;

impl ServerTimeReply {
    /// The exchange, given when the reply arrived (client µs); None when it is inconsistent (negative or over
    /// [`MAX_RTT_NS`] round trip, the server answering before it received) or the numbers overflow.
    pub fn exchange(&self, client_received_us: i64) -> Option<Exchange> {
        let c2s = self.server_received.checked_sub(self.client_transmitted)?;
        let s2c = client_received_us.checked_sub(self.server_transmitted)?;
        let server_hold = self.server_transmitted.checked_sub(self.server_received)?;
        let rtt = client_received_us
            .checked_sub(self.client_transmitted)?
            .checked_sub(server_hold)?;
        if server_hold < 0 || rtt < 0 {
            return None;
        }
        let ns = |us: i64| us.checked_mul(1000);
        let e = Exchange {
            c2s_ns: ns(c2s)?,
            s2c_ns: ns(s2c)?,
            rtt_ns: ns(rtt)?,
        };
        (e.rtt_ns <= MAX_RTT_NS).then_some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_gives_the_offset_as_the_estimator_computes_it() {
        // Server clock 1_000_000 µs ahead, 100 µs each way, 20 µs of server processing.
        let r = ServerTimeReply {
            client_transmitted: 5_000,
            server_received: 1_005_100,
            server_transmitted: 1_005_120,
        };
        let e = r.exchange(5_220).unwrap();
        assert_eq!((e.c2s_ns - e.s2c_ns) / 2, 1_000_000_000);
        assert_eq!(e.rtt_ns, 200_000);
    }

    #[test]
    fn inconsistent_or_slow_exchanges_are_dropped() {
        let r = ServerTimeReply {
            client_transmitted: 0,
            server_received: 10,
            server_transmitted: 5,
        };
        assert_eq!(r.exchange(100), None, "answered before received");
        let r = ServerTimeReply {
            client_transmitted: 1_000,
            server_received: 10,
            server_transmitted: 10,
        };
        assert_eq!(r.exchange(500), None, "received before sent");
        let r = ServerTimeReply {
            client_transmitted: 0,
            server_received: 0,
            server_transmitted: 0,
        };
        assert_eq!(r.exchange(600_000), None, "600 ms round trip");
        let r = ServerTimeReply {
            client_transmitted: i64::MIN,
            server_received: i64::MAX,
            server_transmitted: i64::MAX,
        };
        assert_eq!(r.exchange(0), None, "overflow");
    }

    #[test]
    fn the_request_is_the_client_clock_in_microseconds() {
        assert_eq!(
            ClientTime { client_transmitted: 42 }.encode(),
            r#"{"payload":{"client_transmitted":42},"type":"client/time"}"#
        );
    }
}
