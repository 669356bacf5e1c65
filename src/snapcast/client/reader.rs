//! The socket reader: reads, size-checks and decodes messages off the connection and hands them to the session
//! through a bounded channel, stamped with the local time each header arrived.

use super::SessionError;
use crate::snapcast::proto::{self, BaseHeader, Message, BASE_HEADER_SIZE};
use crate::timeline::{Clock, LocalTime};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;

/// One message from the socket reader.
pub(super) struct Incoming {
    pub(super) header: BaseHeader,
    pub(super) msg: Message,
    /// Local time at which its header had been read.
    pub(super) received: LocalTime,
}

/// Reads, size-checks and decodes messages until the first error, which it reports and then stops.
pub(super) async fn read_messages(
    mut rd: OwnedReadHalf,
    clock: Arc<dyn Clock>,
    tx: mpsc::Sender<Result<Incoming, SessionError>>,
) {
    loop {
        let mut raw = [0u8; BASE_HEADER_SIZE];
        if let Err(e) = rd.read_exact(&mut raw).await {
            let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                SessionError::Closed
            } else {
                SessionError::Read(e)
            };
            let _ = tx.send(Err(reason)).await;
            return;
        }
        let received = clock.now();
        let header = match BaseHeader::parse(&raw) {
            Ok(h) => h,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        // `parse` checked size ≤ MAX_PAYLOAD_SIZE (1 MB), so this allocation is bounded.
        let mut payload = vec![0u8; header.size as usize];
        if let Err(e) = rd.read_exact(&mut payload).await {
            let reason = SessionError::Truncated {
                what: proto::message_name(header.msg_type),
                size: header.size,
                source: e,
            };
            let _ = tx.send(Err(reason)).await;
            return;
        }
        let item = proto::decode(&header, &payload).map(|msg| Incoming { header, msg, received });
        let failed = item.is_err();
        if tx.send(item.map_err(SessionError::from)).await.is_err() || failed {
            return;
        }
    }
}
