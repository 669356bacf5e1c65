//! The Broadcast Assistant over BlueZ: bluebridge connects to an LE Audio receiver, finds its Broadcast Audio Scan
//! Service through BlueZ's GATT client (`org.bluez.GattCharacteristic1`, via bluer), writes the control point
//! operations [`crate::bap::bass::keeper::Keeper`] decides on and follows the receiver's Broadcast Receive State
//! notifications. `receivers = […]` on a broadcast output runs [`keep`] per receiver for the output's life;
//! `bluebridge assist` runs [`assist_once`].
//!
//! Why GATT and not `MediaAssistant1.Push` (read in BlueZ 5.87, `profiles/audio/bass.c`): Push with `Device` for
//! a local broadcast (5.85) sends the Broadcast_ID as 0 (`push_add_src`: "TODO: Add a way to recover BID",
//! `:1169`, tag 5.87), exists only while BlueZ's own stream is streaming, and cannot be used on 5.82. Direct GATT
//! works on any BlueZ, with one condition: when bluetoothd runs its own BASS plugin (`-E`), it claims the
//! receiver's BASS service, and writes to a claimed service are refused (`NotAuthorized`) unless
//! `/etc/bluetooth/main.conf` has `[GATT] ExportClaimedServices = read-write` (BlueZ ≥ 5.80; default read-only,
//! `src/gatt-client.c:1059-1064`, `src/device.c:4721-4724`). The error says so.

use crate::bap::bass::keeper::{Action, Keeper, OurBroadcast, ReceiverState};
use crate::bap::bass::{Operation, ReceiveState, SourceAddress};
use bluer::gatt::remote::{Characteristic, CharacteristicWriteRequest};
use bluer::gatt::WriteOp;
use bluer::{Address, AddressType};
use futures::stream::{SelectAll, StreamExt};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// Broadcast Audio Scan Service.
pub const BASS_UUID: &str = "0000184f-0000-1000-8000-00805f9b34fb";
/// Broadcast Audio Scan Control Point.
pub const CONTROL_POINT_UUID: &str = "00002bc7-0000-1000-8000-00805f9b34fb";
/// Broadcast Receive State.
pub const RECEIVE_STATE_UUID: &str = "00002bc8-0000-1000-8000-00805f9b34fb";
/// The Advertising_SID of a BlueZ broadcast: BlueZ passes none for a source, and the kernel's advertising set
/// for the BIG has SID 0 (seen in the rig: hci1's scan reports SID 0, FINDINGS.md `broadcast-discovery`).
pub const DEFAULT_SID: u8 = 0;
/// Longest wait for a connection and for BlueZ to resolve the receiver's services.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one GATT operation (read, subscribe, write): BlueZ's own D-Bus timeout is minutes (run 2 of
/// `broadcast-assist`: a read that started SMP pairing answered after 130 s).
const GATT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the link is checked while nothing happens.
const POLL: Duration = Duration::from_secs(1);
/// Most Broadcast Receive State characteristics read from one receiver.
const STATES_MAX: usize = 8;

/// Why assisting failed.
#[derive(Debug, thiserror::Error)]
pub enum AssistError {
    /// BlueZ said no.
    #[error("{what}: {err}")]
    Bluez {
        /// What we were doing.
        what: String,
        /// BlueZ's error.
        err: bluer::Error,
    },
    /// The receiver has no BASS.
    #[error(
        "{0} has no Broadcast Audio Scan Service (0x184F): not an LE Audio broadcast sink that takes an assistant"
    )]
    NoBass(Address),
    /// Took too long.
    #[error("{0} timed out after {CONNECT_TIMEOUT:?}")]
    Timeout(String),
    /// A GATT operation took too long.
    #[error("{0}: no answer within {1:?}")]
    Slow(String, Duration),
    /// A value from the receiver did not decode.
    #[error("{0}")]
    Protocol(String),
}

/// `op` (a BlueZ call doing `what`), given up after [`GATT_TIMEOUT`].
async fn bounded<T>(what: String, op: impl std::future::Future<Output = bluer::Result<T>>) -> Result<T, AssistError> {
    match tokio::time::timeout(GATT_TIMEOUT, op).await {
        Ok(r) => r.map_err(bz(what)),
        Err(_) => Err(AssistError::Slow(what, GATT_TIMEOUT)),
    }
}

fn bz(what: impl Into<String>) -> impl FnOnce(bluer::Error) -> AssistError {
    let what = what.into();
    move |err| AssistError::Bluez { what, err }
}

/// Each receiver's state, per output, for `status` (output → receiver address → state word).
static BOARD: Mutex<BTreeMap<String, BTreeMap<String, String>>> = Mutex::new(BTreeMap::new());

/// What `status` shows for `output`'s receivers: (address, state word), by address.
pub fn receivers(output: &str) -> Vec<(String, String)> {
    let b = BOARD.lock().expect("board lock");
    b.get(output)
        .map(|m| m.iter().map(|(a, s)| (a.clone(), s.clone())).collect())
        .unwrap_or_default()
}

fn publish(output: &str, receiver: Address, state: Option<&ReceiverState>) {
    let mut b = BOARD.lock().expect("board lock");
    match state {
        Some(s) => {
            b.entry(output.to_string())
                .or_default()
                .insert(receiver.to_string(), s.word());
        }
        None => {
            if let Some(m) = b.get_mut(output) {
                m.remove(&receiver.to_string());
                if m.is_empty() {
                    b.remove(output);
                }
            }
        }
    }
}

/// Our broadcast as a BASS source: `adapter`'s LE address and its type, `sid`, `broadcast_id` (0: unknown) and
/// the code.
pub async fn our_broadcast(
    session: &bluer::Session,
    adapter: &str,
    sid: u8,
    broadcast_id: u32,
    code: Option<[u8; 16]>,
) -> Result<OurBroadcast, AssistError> {
    let a = session.adapter(adapter).map_err(bz(format!("adapter {adapter}")))?;
    let address = a.address().await.map_err(bz(format!("{adapter}'s address")))?;
    let kind = a
        .address_type()
        .await
        .map_err(bz(format!("{adapter}'s address type")))?;
    Ok(OurBroadcast {
        source: SourceAddress {
            address_type: u8::from(kind == AddressType::LeRandom),
            address: address.0,
            adv_sid: sid,
            broadcast_id,
        },
        code,
    })
}

/// [`our_broadcast`] on a session of its own, with the SID the kernel gives a BlueZ broadcast ([`DEFAULT_SID`]).
pub async fn our_broadcast_on(
    adapter: &str,
    broadcast_id: u32,
    code: Option<[u8; 16]>,
) -> Result<OurBroadcast, AssistError> {
    let session = bluer::Session::new().await.map_err(bz("BlueZ session"))?;
    our_broadcast(&session, adapter, DEFAULT_SID, broadcast_id, code).await
}

type Notes = SelectAll<Pin<Box<dyn futures::Stream<Item = (usize, Vec<u8>)> + Send>>>;

/// A connected receiver's BASS.
struct Link {
    device: bluer::Device,
    control_point: Characteristic,
    notes: Notes,
}

fn decode(receiver: Address, i: usize, v: &[u8]) -> Option<ReceiveState> {
    match ReceiveState::decode(v) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("assist {receiver}: receive state {i} does not decode ({e}): {v:02x?}");
            None
        }
    }
}

/// Connects to `receiver` from `adapter`, finds its BASS, reads and subscribes to its receive states.
async fn connect(
    adapter: &bluer::Adapter,
    receiver: Address,
) -> Result<(Link, Vec<Option<ReceiveState>>), AssistError> {
    let known = adapter
        .device_addresses()
        .await
        .map_err(bz("BlueZ's devices"))?
        .contains(&receiver);
    let device = if known {
        adapter.device(receiver).map_err(bz(format!("device {receiver}")))?
    } else {
        // Not paired nor seen: ask BlueZ to connect it by address (ConnectDevice, experimental: bluetoothd -E).
        adapter
            .connect_device(receiver, AddressType::LePublic)
            .await
            .map_err(bz(format!(
                "connecting to {receiver} (unknown to BlueZ; pair it first)"
            )))?
    };
    let ready = async {
        if !device.is_connected().await.unwrap_or(false) {
            device
                .connect()
                .await
                .map_err(bz(format!("connecting to {receiver}")))?;
        }
        while !device.is_services_resolved().await.unwrap_or(false) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<_, AssistError>(())
    };
    tokio::time::timeout(CONNECT_TIMEOUT, ready)
        .await
        .map_err(|_| AssistError::Timeout(format!("connecting to {receiver} and resolving its services")))??;
    let mut control_point = None;
    let mut states = Vec::new();
    for s in device.services().await.map_err(bz(format!("{receiver}'s services")))? {
        if s.uuid().await.map(|u| u.to_string()).ok().as_deref() != Some(BASS_UUID) {
            continue;
        }
        for c in s.characteristics().await.map_err(bz("BASS characteristics"))? {
            match c.uuid().await.map(|u| u.to_string()).ok().as_deref() {
                Some(CONTROL_POINT_UUID) => control_point = Some(c),
                Some(RECEIVE_STATE_UUID) if states.len() < STATES_MAX => states.push(c),
                _ => {}
            }
        }
    }
    let control_point = control_point.ok_or(AssistError::NoBass(receiver))?;
    let mut notes: Notes = SelectAll::new();
    let mut values = Vec::new();
    for (i, c) in states.iter().enumerate() {
        let v = bounded(format!("reading {receiver}'s receive state {i}"), c.read()).await?;
        values.push(decode(receiver, i, &v));
        let n = bounded(format!("subscribing to {receiver}'s receive state {i}"), c.notify()).await?;
        notes.push(Box::pin(n.map(move |v| (i, v))));
    }
    Ok((
        Link {
            device,
            control_point,
            notes,
        },
        values,
    ))
}

/// Writes `op` to the control point (a write request: the receiver acknowledges it).
async fn write(control_point: &Characteristic, receiver: Address, op: &Operation) -> Result<(), AssistError> {
    let bytes = op.encode().map_err(|e| AssistError::Protocol(e.to_string()))?;
    let req = CharacteristicWriteRequest {
        op_type: WriteOp::Request,
        ..Default::default()
    };
    let written = tokio::time::timeout(GATT_TIMEOUT, control_point.write_ext(&bytes, &req))
        .await
        .map_err(|_| {
            AssistError::Slow(
                format!("writing {} to {receiver}'s BASS control point", op_name(op)),
                GATT_TIMEOUT,
            )
        })?;
    written.map_err(|err| {
        let hint = if err.kind == bluer::ErrorKind::NotAuthorized {
            " (bluetoothd claims the receiver's BASS for its own plugin and exports it read-only: set \
             `ExportClaimedServices = read-write` in the [GATT] section of /etc/bluetooth/main.conf and restart \
             bluetoothd)"
        } else {
            ""
        };
        AssistError::Bluez {
            what: format!("writing {} to {receiver}'s BASS control point{hint}", op_name(op)),
            err,
        }
    })
}

fn op_name(op: &Operation) -> &'static str {
    match op {
        Operation::RemoteScanStopped => "Remote Scan Stopped",
        Operation::RemoteScanStarted => "Remote Scan Started",
        Operation::AddSource { .. } => "Add Source",
        Operation::ModifySource { .. } => "Modify Source",
        Operation::SetBroadcastCode { .. } => "Set Broadcast Code",
        Operation::RemoveSource { .. } => "Remove Source",
    }
}

/// One step of the keeper loop: carries out `keeper`'s next action and waits for what follows. Returns when the
/// state may have changed.
async fn step(
    adapter: &bluer::Adapter,
    receiver: Address,
    keeper: &mut Keeper,
    link: &mut Option<Link>,
    clock: &tokio::time::Instant,
) {
    let now = || clock.elapsed().as_nanos() as u64;
    match keeper.next(now()) {
        Action::Connect => match connect(adapter, receiver).await {
            Ok((l, states)) => {
                tracing::info!("assist {receiver}: connected, {} receive states", states.len());
                *link = Some(l);
                keeper.connection(now(), true, states);
            }
            Err(e) => {
                tracing::warn!("assist {receiver}: {e}; retrying");
                *link = None;
                keeper.connection(now(), false, Vec::new());
            }
        },
        Action::Write(op) => {
            let Some(cp) = link.as_ref().map(|l| l.control_point.clone()) else {
                return;
            };
            tracing::info!("assist {receiver}: {}", op_name(&op));
            if let Err(e) = write(&cp, receiver, &op).await {
                tracing::warn!("assist {receiver}: {e}");
                keeper.fail(now());
            }
        }
        Action::WaitUntil(t) => {
            let wait = Duration::from_nanos(t.saturating_sub(now())).min(POLL);
            let note = async {
                match link.as_mut() {
                    Some(l) => l.notes.next().await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                n = note => match n {
                    Some((i, v)) => keeper.receive_state(i, decode(receiver, i, &v)),
                    None => {
                        tracing::info!("assist {receiver}: notifications ended (disconnected)");
                        *link = None;
                        keeper.connection(now(), false, Vec::new());
                    }
                },
                _ = tokio::time::sleep(wait) => {
                    if let Some(d) = link.as_ref().map(|l| l.device.clone()) {
                        if !d.is_connected().await.unwrap_or(false) {
                            tracing::info!("assist {receiver}: disconnected");
                            *link = None;
                            keeper.connection(now(), false, Vec::new());
                        }
                    }
                }
            }
        }
    }
}

/// Keeps `output`'s broadcast on `receiver` while `alive` says so: connects (again after it drops), adds the
/// source, hands over the code, tells it again when it loses the sync; logs each change of its state and shows it
/// in `status`.
pub async fn keep(
    output: String,
    adapter_name: String,
    receiver: Address,
    ours: OurBroadcast,
    alive: impl Fn() -> bool + Send,
) {
    let session = match bluer::Session::new().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(output, "assist {receiver}: no BlueZ session: {e}");
            return;
        }
    };
    let Ok(adapter) = session.adapter(&adapter_name) else {
        tracing::warn!(output, "assist {receiver}: no adapter {adapter_name}");
        return;
    };
    let clock = tokio::time::Instant::now();
    let mut keeper = Keeper::new(ours);
    let mut link = None;
    let mut last = None;
    while alive() {
        let s = keeper.state();
        if last.as_ref() != Some(&s) {
            tracing::info!(output, "assist {receiver}: {}", s.word());
            publish(&output, receiver, Some(&s));
            last = Some(s);
        }
        step(&adapter, receiver, &mut keeper, &mut link, &clock).await;
    }
    publish(&output, receiver, None);
}

/// Tells `receiver` once about `ours` and waits up to `wait` for it to play; the states it went through, the last
/// one final.
pub async fn assist_once(
    adapter_name: &str,
    receiver: Address,
    ours: OurBroadcast,
    wait: Duration,
) -> Result<Vec<ReceiverState>, AssistError> {
    let session = bluer::Session::new().await.map_err(bz("BlueZ session"))?;
    let adapter = session
        .adapter(adapter_name)
        .map_err(bz(format!("adapter {adapter_name}")))?;
    let (l, states) = connect(&adapter, receiver).await?;
    let clock = tokio::time::Instant::now();
    let mut keeper = Keeper::new(ours);
    keeper.connection(0, true, states);
    let mut link = Some(l);
    let mut seen = vec![keeper.state()];
    while clock.elapsed() < wait && !keeper.state().playing() {
        step(&adapter, receiver, &mut keeper, &mut link, &clock).await;
        let s = keeper.state();
        if seen.last() != Some(&s) {
            tracing::info!("assist {receiver}: {}", s.word());
            seen.push(s);
        }
    }
    Ok(seen)
}
